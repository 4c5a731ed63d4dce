use super::*;
use crate::ledger::ToggleRecord;
use crate::state::{InstanceChange, State};
use bgw_wire::Target;

fn at() -> DateTime<Utc> {
    "2026-11-26T14:03:07Z".parse().unwrap()
}

fn state(from: State, to: State) -> Event {
    Event::new(
        at(),
        EventKind::State {
            check: "blue".into(),
            color: Some(Color::Blue),
            from,
            to,
            reason: "no heartbeat for 10s (period 5s, grace 5s)".into(),
            down_for: None,
        },
    )
}

fn target(down: bool, reason: &str) -> Event {
    Event::new(
        at(),
        EventKind::Target {
            observer: "checker".into(),
            target: Target::BlueDirect,
            color: Some(Color::Blue),
            down,
            reason: reason.into(),
        },
    )
}

#[test]
fn down_and_recovery_notify_late_and_new_do_not() {
    assert_eq!(classify(&state(State::Up, State::Down)), Some(Kind::Down));
    assert_eq!(classify(&state(State::Down, State::Up)), Some(Kind::Up));
    assert_eq!(classify(&state(State::Late, State::Up)), None);
    assert_eq!(classify(&state(State::New, State::Up)), None);
    assert_eq!(classify(&state(State::Up, State::Late)), None);
    let instance = Event::new(
        at(),
        EventKind::Instance {
            check: "blue".into(),
            color: Some(Color::Blue),
            instance: "a1".into(),
            change: InstanceChange::Missing,
            reason: "x".into(),
        },
    );
    assert_eq!(classify(&instance), None);
    assert_eq!(classify(&target(true, "502")), Some(Kind::Down));
    assert_eq!(classify(&target(false, "ok")), Some(Kind::Up));
    let rollback = Event::new(
        at(),
        EventKind::Rollback {
            from: Color::Green,
            to: Color::Blue,
            reason: "x".into(),
            took_ms: 1,
        },
    );
    assert_eq!(classify(&rollback), Some(Kind::Rollback));
    let just_started = Event::new(
        at(),
        EventKind::RollbackRefused {
            from: Some(Color::Green),
            to: Color::Blue,
            rule: Rule::JustStarted,
            reason: "x".into(),
        },
    );
    assert_eq!(classify(&just_started), None, "the watchdog's own restart");
    let toggle = ToggleRecord {
        id: 0,
        at: at(),
        from: None,
        to: Color::Blue,
        automatic: false,
        reason: String::new(),
        ok: true,
        error: None,
    };
    let toggled = Event::new(
        toggle.at,
        EventKind::Toggle {
            from: toggle.from,
            to: toggle.to,
            automatic: false,
            why: toggle.reason,
            took_ms: 0,
        },
    );
    assert_eq!(classify(&toggled), None);
}

#[test]
fn a_colors_failures_share_a_group_key() {
    let a = state(State::Up, State::Down);
    let b = target(true, "502");
    assert_eq!(group_key(Kind::Down, &a), group_key(Kind::Down, &b));
    assert_ne!(group_key(Kind::Down, &a), group_key(Kind::Up, &a));
    let job = Event::new(
        at(),
        EventKind::State {
            check: "nightly-backup".into(),
            color: None,
            from: State::Up,
            to: State::Down,
            reason: "x".into(),
            down_for: None,
        },
    );
    assert_eq!(group_key(Kind::Down, &job), None);
}

#[test]
fn silences_match_check_color_or_observer() {
    let silence = |target: &str| Silence {
        id: 1,
        target: target.into(),
        until: at() + chrono::TimeDelta::hours(1),
        reason: "x".into(),
        created_at: at(),
    };
    let e = Event::new(
        at(),
        EventKind::Target {
            observer: "checker".into(),
            target: Target::LiveProxy,
            color: Some(Color::Blue),
            down: true,
            reason: "x".into(),
        },
    );
    assert!(silence("blue").covers(&e, at()));
    assert!(silence("checker").covers(&e, at()));
    assert!(silence("checker:live-proxy").covers(&e, at()));
    assert!(!silence("green").covers(&e, at()));
    assert!(!silence("blue").covers(&e, at() + chrono::TimeDelta::hours(2)));
}

#[test]
fn merged_messages_name_every_member() {
    let n1 = notification(
        &state(State::Up, State::Down),
        Kind::Down,
        Some(Color::Blue),
    );
    let n2 = notification(
        &target(true, "GET /ping returned 502"),
        Kind::Down,
        Some(Color::Blue),
    );
    let m = merge(vec![n1.clone(), n2]);
    assert_eq!(m.members.len(), 2);
    assert_eq!(m.check, "blue");
    assert_eq!(m.subject(), "[bgw] DOWN blue");
    assert!(
        m.reason
            .contains("checker:blue-direct (GET /ping returned 502)"),
        "{}",
        m.reason
    );
    assert_eq!(merge(vec![n1.clone()]), n1);
}

#[test]
fn rollback_notifications_carry_from_and_to() {
    let e = Event::new(
        at(),
        EventKind::Rollback {
            from: Color::Green,
            to: Color::Blue,
            reason: "x".into(),
            took_ms: 1,
        },
    );
    let n = notification(&e, Kind::Rollback, Some(Color::Blue));
    assert_eq!(n.subject(), "[bgw] ROLLBACK green -> blue");
    assert_eq!((n.from, n.to), (Some(Color::Green), Some(Color::Blue)));
    assert_eq!(n.state, "rollback");
}

#[test]
fn reminders_follow_the_last_one() {
    let t0 = Utc::now();
    let h = Duration::from_secs(3600);
    assert_eq!(next_reminder(h, t0, None), t0 + h);
    assert_eq!(next_reminder(h, t0, Some(t0 + h)), t0 + h + h);
}
