//! One test per rule of [`super::decide`]. The baseline world: blue was
//! live, an operator toggled to green 43 s ago, green is failing for the
//! agents and the checker, blue is healthy: the policy switches back.

use super::*;
use chrono::TimeZone;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap()
}

fn now() -> DateTime<Utc> {
    t0() + chrono::Duration::seconds(43)
}

fn failing(observer: &str, color: Color, consecutive: u32, reason: &str) -> ObserverVerdict {
    ObserverVerdict {
        observer: observer.into(),
        color,
        verdict: Verdict::Failing {
            consecutive,
            reason: reason.into(),
        },
    }
}

fn unknown(observer: &str, color: Color, reason: &str) -> ObserverVerdict {
    ObserverVerdict {
        observer: observer.into(),
        color,
        verdict: Verdict::Unknown {
            reason: reason.into(),
        },
    }
}

fn healthy(observer: &str, color: Color) -> ObserverVerdict {
    ObserverVerdict {
        observer: observer.into(),
        color,
        verdict: Verdict::Healthy,
    }
}

/// Green went live 43 s ago by hand and is seen failing by two observers.
fn bad_toggle() -> View {
    View {
        live: Some(Color::Green),
        previous: Some(Color::Blue),
        last_toggle: Some(Toggle {
            at: t0(),
            from: Some(Color::Blue),
            to: Color::Green,
            automatic: false,
        }),
        observers: vec![
            failing("agents:green", Color::Green, 3, "no heartbeat"),
            failing("checker", Color::Green, 4, "502"),
            healthy("prober", Color::Green),
            healthy("agents:blue", Color::Blue),
        ],
        previous_healthy_direct: Some(true),
        previous_health_reason: String::new(),
        deployed_to_previous_since_toggle: false,
        last_automatic_switch: None,
        latched: false,
        disabled: false,
        watchdog_started: t0() - chrono::Duration::hours(1),
        heard_from_all: true,
    }
}

fn settings() -> RollbackSettings {
    RollbackSettings::default()
}

fn refused(d: Decision) -> (Rule, String) {
    match d {
        Decision::Refuse {
            would_switch_to,
            rule,
            reason,
        } => {
            assert_eq!(would_switch_to, Color::Blue);
            (rule, reason)
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_failing_new_color_within_the_window_is_switched_back_with_the_contracts_reason() {
    assert_eq!(
        decide(&bad_toggle(), &settings(), now()),
        Decision::Switch {
            to: Color::Blue,
            reason: "green failed 43s after toggle (agents: no heartbeat, checker: 502)".into()
        }
    );
}

#[test]
fn disabled_in_config_or_at_runtime_does_nothing() {
    let off = RollbackSettings {
        enabled: false,
        ..settings()
    };
    assert_eq!(decide(&bad_toggle(), &off, now()), Decision::Nothing);
    let view = View {
        disabled: true,
        ..bad_toggle()
    };
    assert_eq!(decide(&view, &settings(), now()), Decision::Nothing);
}

#[test]
fn an_undefined_live_color_does_nothing() {
    let view = View {
        live: None,
        ..bad_toggle()
    };
    assert_eq!(decide(&view, &settings(), now()), Decision::Nothing);
}

#[test]
fn nothing_failing_is_nothing_to_consider() {
    let mut view = bad_toggle();
    view.observers = vec![
        healthy("agents:green", Color::Green),
        healthy("checker", Color::Green),
    ];
    assert_eq!(decide(&view, &settings(), now()), Decision::Nothing);
}

#[test]
fn failures_of_the_idle_color_are_not_a_reason_to_switch() {
    let mut view = bad_toggle();
    view.observers = vec![
        failing("agents:blue", Color::Blue, 9, "no heartbeat"),
        failing("checker", Color::Blue, 9, "502"),
    ];
    assert_eq!(decide(&view, &settings(), now()), Decision::Nothing);
}

#[test]
fn an_observer_counts_only_after_fail_after_consecutive_failures() {
    let mut view = bad_toggle();
    view.observers[1] = failing("checker", Color::Green, 2, "502");
    let (rule, reason) = refused(decide(&view, &settings(), now()));
    assert_eq!(rule, Rule::Quorum);
    assert!(reason.contains("checker: 2 of 3 failures"), "{reason}");
    // With every observer below fail_after, nothing is even considered.
    view.observers[0] = failing("agents:green", Color::Green, 2, "no heartbeat");
    assert_eq!(decide(&view, &settings(), now()), Decision::Nothing);
}

#[test]
fn quorum_counts_distinct_observers_so_many_agents_are_one() {
    let mut view = bad_toggle();
    view.observers = vec![
        failing("agents:green", Color::Green, 5, "no heartbeat"),
        failing("agents:green", Color::Green, 5, "GET /ping returned 500"),
        healthy("checker", Color::Green),
    ];
    let (rule, reason) = refused(decide(&view, &settings(), now()));
    assert_eq!(rule, Rule::Quorum);
    assert!(
        reason.starts_with("green failed 43s after toggle (agents: no heartbeat); not switching to blue: 1 of 2 observers needed see green failing"),
        "{reason}"
    );
    // A quorum of one is met by the agents alone.
    let one = RollbackSettings {
        quorum: 1,
        ..settings()
    };
    assert!(matches!(
        decide(&view, &one, now()),
        Decision::Switch {
            to: Color::Blue,
            ..
        }
    ));
}

#[test]
fn unknown_verdicts_never_count_toward_the_quorum() {
    let mut view = bad_toggle();
    view.observers = vec![
        failing("agents:green", Color::Green, 3, "no heartbeat"),
        unknown("checker", Color::Green, "no report for 40s"),
        unknown("prober", Color::Green, "no report for 40s"),
    ];
    let (rule, reason) = refused(decide(&view, &settings(), now()));
    assert_eq!(rule, Rule::Quorum);
    assert!(
        reason.contains("checker: unknown (no report for 40s)"),
        "{reason}"
    );
}

#[test]
fn outside_the_window_a_failure_is_an_alert_not_a_rollback() {
    let late = t0() + chrono::Duration::minutes(16);
    assert_eq!(decide(&bad_toggle(), &settings(), late), Decision::Nothing);
    // At the window's edge it still counts.
    let edge = t0() + chrono::Duration::minutes(15);
    assert!(matches!(
        decide(&bad_toggle(), &settings(), edge),
        Decision::Switch { .. }
    ));
}

#[test]
fn a_toggle_to_another_color_than_the_live_one_opens_no_window() {
    // The live file says green, but the last recorded toggle made blue live
    // (someone edited the file by hand): no rollback window.
    let mut view = bad_toggle();
    view.last_toggle = Some(Toggle {
        at: t0(),
        from: Some(Color::Green),
        to: Color::Blue,
        automatic: false,
    });
    assert_eq!(decide(&view, &settings(), now()), Decision::Nothing);
}

#[test]
fn failover_switches_outside_the_window_under_the_same_rules() {
    let with_failover = RollbackSettings {
        failover: true,
        ..settings()
    };
    let late = t0() + chrono::Duration::hours(2);
    match decide(&bad_toggle(), &with_failover, late) {
        Decision::Switch { to, reason } => {
            assert_eq!(to, Color::Blue);
            assert_eq!(
                reason,
                "green is failing, failover to the idle color (agents: no heartbeat, checker: 502)"
            );
        }
        other => panic!("{other:?}"),
    }
    // No toggle on record at all: failover still applies.
    let view = View {
        last_toggle: None,
        previous: None,
        ..bad_toggle()
    };
    assert!(matches!(
        decide(&view, &with_failover, late),
        Decision::Switch {
            to: Color::Blue,
            ..
        }
    ));
    // Same rules: an unhealthy idle color is refused.
    let view = View {
        previous_healthy_direct: Some(false),
        ..bad_toggle()
    };
    assert_eq!(
        refused(decide(&view, &with_failover, late)).0,
        Rule::TargetUnhealthy
    );
}

#[test]
fn the_previous_color_must_be_healthy_checked_directly() {
    let view = View {
        previous_healthy_direct: Some(false),
        previous_health_reason: "blue-direct: GET /ping returned 502".into(),
        ..bad_toggle()
    };
    let (rule, reason) = refused(decide(&view, &settings(), now()));
    assert_eq!(rule, Rule::TargetUnhealthy);
    assert_eq!(
        reason,
        "green failed 43s after toggle (agents: no heartbeat, checker: 502); not switching to blue: blue is not healthy either, checked directly (blue-direct: GET /ping returned 502)"
    );
}

#[test]
fn an_unknown_health_of_the_previous_color_is_not_healthy() {
    let view = View {
        previous_healthy_direct: None,
        previous_health_reason: "no direct probe of blue in the last 15s".into(),
        ..bad_toggle()
    };
    assert_eq!(
        refused(decide(&view, &settings(), now())).0,
        Rule::TargetUnknown
    );
}

#[test]
fn a_deploy_to_the_previous_color_since_the_toggle_disarms_rollback() {
    let view = View {
        deployed_to_previous_since_toggle: true,
        ..bad_toggle()
    };
    let (rule, reason) = refused(decide(&view, &settings(), now()));
    assert_eq!(rule, Rule::Redeployed);
    assert!(
        reason.contains("blue was redeployed since the toggle"),
        "{reason}"
    );
}

#[test]
fn a_just_started_watchdog_that_has_not_heard_from_everyone_refuses() {
    let view = View {
        heard_from_all: false,
        watchdog_started: now() - chrono::Duration::seconds(4),
        ..bad_toggle()
    };
    let (rule, reason) = refused(decide(&view, &settings(), now()));
    assert_eq!(rule, Rule::JustStarted);
    assert!(reason.contains("started 4s ago"), "{reason}");
}

#[test]
fn cooldown_blocks_a_second_automatic_switch() {
    let view = View {
        last_automatic_switch: Some(now() - chrono::Duration::minutes(3)),
        ..bad_toggle()
    };
    let (rule, reason) = refused(decide(&view, &settings(), now()));
    assert_eq!(rule, Rule::Cooldown);
    assert!(reason.contains("3m ago (cooldown 10m)"), "{reason}");
    let view = View {
        last_automatic_switch: Some(now() - chrono::Duration::minutes(11)),
        ..bad_toggle()
    };
    assert!(matches!(
        decide(&view, &settings(), now()),
        Decision::Switch { .. }
    ));
}

#[test]
fn latched_after_an_automatic_rollback_until_rearmed() {
    let view = View {
        latched: true,
        ..bad_toggle()
    };
    let (rule, reason) = refused(decide(&view, &settings(), now()));
    assert_eq!(rule, Rule::Latched);
    assert!(reason.contains("rollback rearm"), "{reason}");
}

#[test]
fn dry_run_says_what_it_would_do_and_does_not_switch() {
    let dry = RollbackSettings {
        mode: Mode::DryRun,
        ..settings()
    };
    assert_eq!(
        decide(&bad_toggle(), &dry, now()),
        Decision::DryRun {
            to: Color::Blue,
            reason: "green failed 43s after toggle (agents: no heartbeat, checker: 502)".into()
        }
    );
}

#[test]
fn an_automatic_rollback_is_never_undone_automatically() {
    // blue went live by an automatic rollback 43 s ago; the operator re-armed
    // (not latched, no cooldown): blue failing still does not flip back.
    let view = View {
        live: Some(Color::Blue),
        previous: Some(Color::Green),
        last_toggle: Some(Toggle {
            at: t0(),
            from: Some(Color::Green),
            to: Color::Blue,
            automatic: true,
        }),
        observers: vec![
            failing("agents:blue", Color::Blue, 3, "no heartbeat"),
            failing("checker", Color::Blue, 3, "502"),
        ],
        ..bad_toggle()
    };
    match decide(&view, &settings(), now()) {
        Decision::Refuse {
            would_switch_to,
            rule,
            ..
        } => {
            assert_eq!((would_switch_to, rule), (Color::Green, Rule::FlipFlop));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_first_toggle_with_no_previous_color_cannot_be_undone() {
    let mut view = View {
        previous: None,
        ..bad_toggle()
    };
    view.last_toggle.as_mut().unwrap().from = None;
    assert_eq!(
        refused(decide(&view, &settings(), now())).0,
        Rule::NoPrevious
    );
}

#[test]
fn decide_is_pure() {
    let view = bad_toggle();
    assert_eq!(
        decide(&view, &settings(), now()),
        decide(&view, &settings(), now())
    );
}
