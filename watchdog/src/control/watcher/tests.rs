use super::*;
use crate::store::InstanceRow;
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

fn row(name: &str, state: &str, last_signal: Option<DateTime<Utc>>) -> CheckRow {
    CheckRow {
        name: name.into(),
        kind: "service".into(),
        color: None,
        state: state.into(),
        since: t(0),
        reason: "because".into(),
        last_signal,
        next_deadline: None,
        down_since: None,
        instances: vec![],
        id: 0,
    }
}

fn instance(status: &str, fails: u32) -> InstanceRow {
    InstanceRow {
        instance: "i1".into(),
        color: Some("green".into()),
        version: None,
        status: status.into(),
        detail: Some("GET /ping returned 500".into()),
        seq: 7,
        last_seen: t(0),
        deadline: t(2000),
        consecutive_failures: fails,
    }
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
    let mut green = row("green", "down", Some(t(900)));
    green.instances = vec![instance("fail", 2)];
    let rows = vec![
        green,
        row("blue", "up", Some(t(900))),
        row("checker", "up", Some(t(900))),
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
        &specs(),
        &rows,
        &targets,
        t(-60_000),
        Duration::from_secs(1),
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
    let rows = vec![
        row("green", "down", Some(t(0))),
        row("checker", "up", Some(t(0))),
    ];
    let o = observations(
        Color::Green,
        &specs(),
        &rows,
        &[],
        t(-60_000),
        Duration::ZERO,
        t(3500),
    );
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
    let rows = vec![
        row("green", "up", Some(t(0))),
        row("checker", "down", Some(t(0))),
        row("prober", "up", Some(t(0))),
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
        &specs(),
        &rows,
        &targets,
        t(-60_000),
        Duration::ZERO,
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
    let rows = vec![row("checker", "up", Some(t(0)))];
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
        &specs(),
        &rows,
        &targets,
        t(-60_000),
        Duration::ZERO,
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
        &specs(),
        &rows,
        &targets,
        t(-60_000),
        Duration::ZERO,
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
fn not_heard_from_everyone_until_each_signals_or_the_grace_passes() {
    let started = t(0);
    let rows = vec![
        row("green", "up", Some(t(100))),
        row("checker", "up", Some(t(-5000))),
        row("prober", "up", Some(t(200))),
        row("blue", "new", None),
    ];
    let grace = Duration::from_secs(30);
    let o = observations(Color::Green, &specs(), &rows, &[], started, grace, t(1000));
    assert!(
        !o.heard_from_all,
        "the checker has not reported since the start"
    );
    let mut rows = rows;
    rows[1].last_signal = Some(t(500));
    let o = observations(Color::Green, &specs(), &rows, &[], started, grace, t(1000));
    assert!(
        o.heard_from_all,
        "blue's agents are not needed while green is live"
    );
    rows[1].last_signal = None;
    let o = observations(
        Color::Green,
        &specs(),
        &rows,
        &[],
        started,
        grace,
        t(31_000),
    );
    assert!(
        o.heard_from_all,
        "after the startup grace, silence is a signal again"
    );
}
