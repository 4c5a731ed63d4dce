use super::*;
use crate::schedule::Cadence;
use crate::state::{Runtime, State};
use chrono::TimeZone;

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000, 0).unwrap() + chrono::Duration::milliseconds(s)
}

fn spec(name: &str, kind: CheckKind) -> CheckSpec {
    CheckSpec {
        name: name.into(),
        kind,
        cadence: Cadence::Period(Duration::from_secs(1)),
        grace: Duration::from_secs(1),
        token: None,
        max_instances: 64,
    }
}

fn specs() -> Vec<CheckSpec> {
    let service = |c| CheckKind::Service {
        color: Some(c),
        min_instances: 1,
    };
    vec![
        spec("blue", service(Color::Blue)),
        spec("green", service(Color::Green)),
        spec("checker", CheckKind::Reporter),
        spec("prober", CheckKind::Reporter),
    ]
}

fn rt(state: State, last_signal: Option<DateTime<Utc>>) -> Runtime {
    Runtime {
        state,
        since: t(0),
        reason: "because".into(),
        last_signal,
        late_at: None,
        down_at: None,
        started: None,
        down_since: None,
        instances: Default::default(),
        evaluated_at: None,
    }
}

fn failing_instance(fails: u32) -> crate::state::Instance {
    crate::state::Instance {
        color: Some(Color::Green),
        version: None,
        status: HeartbeatStatus::Fail,
        detail: Some("GET /ping returned 500".into()),
        seq: 7,
        last_seen: t(0),
        late_at: t(1000),
        down_at: t(2000),
        consecutive_fails: fails,
    }
}

/// The observer checks with these runtimes (by name).
fn with<'a>(
    specs: &'a [CheckSpec],
    rts: &'a [(&str, Runtime)],
) -> Vec<(&'a CheckSpec, &'a Runtime)> {
    rts.iter()
        .map(|(name, rt)| (specs.iter().find(|s| s.name == *name).unwrap(), rt))
        .collect()
}

fn target(
    observer: &str,
    target: Target,
    color: Option<Color>,
    ok: bool,
    fails: u32,
    at: DateTime<Utc>,
) -> TargetState {
    TargetState {
        observer: observer.into(),
        target,
        color,
        ok,
        consecutive_failures: fails,
        consecutive_ok: 0,
        alerting: false,
        last_error: (!ok).then(|| "GET /ping returned 500".into()),
        last_latency_ms: Some(3),
        last_at: at,
    }
}

fn verdict<'a>(o: &'a Observations, name: &str) -> &'a Verdict {
    &o.observers
        .iter()
        .find(|v| v.observer == name)
        .unwrap_or_else(|| panic!("no verdict of {name}: {o:?}"))
        .verdict
}

#[test]
fn failing_agents_count_their_fail_heartbeats_and_the_checker_its_rounds() {
    let mut green = rt(State::Down, Some(t(900)));
    green.instances.insert("i1".into(), failing_instance(2));
    let specs = specs();
    let rts = [
        ("green", green),
        ("blue", rt(State::Up, Some(t(900)))),
        ("checker", rt(State::Up, Some(t(900)))),
    ];
    let targets = vec![
        target(
            "checker",
            Target::LiveProxy,
            Some(Color::Green),
            false,
            3,
            t(900),
        ),
        target(
            "checker",
            Target::BlueDirect,
            Some(Color::Blue),
            true,
            0,
            t(900),
        ),
    ];
    let o = observations(
        Color::Green,
        &with(&specs, &rts),
        &targets,
        t(-60_000),
        t(1000),
    );
    assert_eq!(
        verdict(&o, "agents:green"),
        &Verdict::Failing {
            consecutive: 2,
            reason: "GET /ping returned 500".into()
        }
    );
    assert_eq!(
        verdict(&o, "checker"),
        &Verdict::Failing {
            consecutive: 3,
            reason: "live-proxy: GET /ping returned 500".into()
        }
    );
    assert_eq!(
        o.observers.len(),
        2,
        "blue's agents and blue-direct say nothing about green"
    );
    assert!(o.heard_from_all);
}

#[test]
fn silent_agents_vote_failing_once_per_missed_period() {
    let specs = specs();
    let rts = [
        ("green", rt(State::Down, Some(t(0)))),
        ("checker", rt(State::Up, Some(t(0)))),
    ];
    let o = observations(Color::Green, &with(&specs, &rts), &[], t(-60_000), t(3500));
    assert_eq!(
        verdict(&o, "agents:green"),
        &Verdict::Failing {
            consecutive: 3,
            reason: "no heartbeat for 3s".into()
        }
    );
}

#[test]
fn a_silent_or_stale_reporter_is_unknown_never_failing() {
    let specs = specs();
    let rts = [
        ("green", rt(State::Up, Some(t(0)))),
        ("checker", rt(State::Down, Some(t(0)))),
        ("prober", rt(State::Up, Some(t(0)))),
    ];
    let targets = vec![
        target(
            "checker",
            Target::LiveProxy,
            Some(Color::Green),
            false,
            9,
            t(0),
        ),
        target("prober", Target::Public, Some(Color::Green), false, 9, t(0)),
    ];
    let o = observations(
        Color::Green,
        &with(&specs, &rts),
        &targets,
        t(-60_000),
        t(10_000),
    );
    assert!(
        matches!(verdict(&o, "checker"), Verdict::Unknown { reason } if reason.starts_with("silent")),
        "{o:?}"
    );
    assert!(
        matches!(verdict(&o, "prober"), Verdict::Unknown { reason } if reason == "no report for 10s"),
        "{o:?}"
    );
    assert_eq!(verdict(&o, "agents:green"), &Verdict::Healthy);
}

#[test]
fn a_proxy_target_served_by_the_other_color_says_nothing_about_the_live_one() {
    let specs = specs();
    let rts = [("checker", rt(State::Up, Some(t(0))))];
    let targets = vec![target(
        "checker",
        Target::LiveProxy,
        Some(Color::Blue),
        false,
        4,
        t(0),
    )];
    let o = observations(
        Color::Green,
        &with(&specs, &rts),
        &targets,
        t(-60_000),
        t(100),
    );
    assert!(
        matches!(verdict(&o, "checker"), Verdict::Unknown { .. }),
        "{o:?}"
    );
    // Nothing answered at all: the live port points at the live color.
    let targets = vec![target("checker", Target::LiveProxy, None, false, 4, t(0))];
    let o = observations(
        Color::Green,
        &with(&specs, &rts),
        &targets,
        t(-60_000),
        t(100),
    );
    assert!(
        matches!(
            verdict(&o, "checker"),
            Verdict::Failing { consecutive: 4, .. }
        ),
        "{o:?}"
    );
}

#[test]
fn not_heard_from_everyone_until_each_signals_or_has_had_its_period_and_grace() {
    let started = t(0);
    let specs = specs();
    let mut rts = [
        ("green", rt(State::Up, Some(t(100)))),
        ("checker", rt(State::Up, Some(t(-5000)))),
        ("prober", rt(State::Up, Some(t(200)))),
        ("blue", rt(State::New, None)),
    ];
    let o = observations(Color::Green, &with(&specs, &rts), &[], started, t(1000));
    assert!(
        !o.heard_from_all,
        "the checker has not reported since the start"
    );
    rts[1].1.last_signal = Some(t(500));
    let o = observations(Color::Green, &with(&specs, &rts), &[], started, t(1000));
    assert!(
        o.heard_from_all,
        "blue's agents are not needed while green is live"
    );
    rts[1].1.last_signal = None;
    // The checker's period (1s) + grace (1s) since the start: its silence
    // is its own now, not the watchdog's.
    let o = observations(Color::Green, &with(&specs, &rts), &[], started, t(2000));
    assert!(o.heard_from_all);
    let o = observations(Color::Green, &with(&specs, &rts), &[], started, t(1999));
    assert!(!o.heard_from_all);
}

fn refusal(rule: Rule) -> Evaluation {
    Evaluation {
        view: super::super::evaluate::view(
            Some(Color::Green),
            &Default::default(),
            Observations {
                observers: vec![],
                watchdog_started: t(0),
                heard_from_all: true,
            },
        ),
        decision: Decision::Refuse {
            would_switch_to: Color::Blue,
            rule,
            reason: "x".into(),
        },
        switched: None,
    }
}

#[test]
fn a_quorum_refusal_is_recorded_once_it_has_held_for_the_settle_time_and_only_once() {
    let settle = Duration::from_secs(1);
    let mut memory = Memory::default();
    assert!(decision_event(
        Color::Green,
        refusal(Rule::Quorum),
        settle,
        &mut memory,
        t(0)
    )
    .is_none());
    assert!(decision_event(
        Color::Green,
        refusal(Rule::Quorum),
        settle,
        &mut memory,
        t(999)
    )
    .is_none());
    let e = decision_event(
        Color::Green,
        refusal(Rule::Quorum),
        settle,
        &mut memory,
        t(1000),
    )
    .unwrap();
    assert_eq!(e.columns().kind, "rollback_refused");
    assert!(decision_event(
        Color::Green,
        refusal(Rule::Quorum),
        settle,
        &mut memory,
        t(5000)
    )
    .is_none());
    // Another rule is news at once.
    assert!(decision_event(
        Color::Green,
        refusal(Rule::Cooldown),
        settle,
        &mut memory,
        t(5001)
    )
    .is_some());
}
