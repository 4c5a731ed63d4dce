//! Tests of the view model: what each check state and each rollback state
//! looks like, and that the page stays bounded whatever the input.

use super::*;
use crate::ledger::{RollbackState, ToggleRecord};
use crate::store::InstanceRow;
use bgw_wire::Target;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn secs(n: i64) -> chrono::TimeDelta {
    chrono::TimeDelta::seconds(n)
}

fn check(name: &str, state: &str, reason: &str) -> CheckRow {
    CheckRow {
        name: name.into(),
        kind: "service".into(),
        color: Some("blue".into()),
        state: state.into(),
        since: now() - secs(90),
        reason: reason.into(),
        last_signal: Some(now() - secs(7)),
        next_deadline: Some(now() + secs(3)),
        down_since: None,
        instances: vec![],
        id: 1,
    }
}

fn instance(name: &str, version: &str, status: &str, deadline_in: i64) -> InstanceRow {
    InstanceRow {
        instance: name.into(),
        color: Some("blue".into()),
        version: Some(version.into()),
        status: status.into(),
        detail: None,
        seq: 1,
        last_seen: now() - secs(2),
        deadline: now() + secs(deadline_in),
        consecutive_failures: 0,
    }
}

struct World {
    checks: Vec<CheckRow>,
    live: LiveState,
    toggle: Option<ToggleRecord>,
    state: RollbackState,
    settings: RollbackSettings,
    targets: Vec<TargetState>,
    latency: HashMap<String, Vec<Sample>>,
    events: Vec<EventRow>,
    deliveries: Vec<Delivery>,
    page: usize,
}

impl World {
    fn new(checks: Vec<CheckRow>) -> World {
        World {
            checks,
            live: LiveState::Live(Color::Blue),
            toggle: None,
            state: RollbackState::default(),
            settings: RollbackSettings::default(),
            targets: vec![],
            latency: HashMap::new(),
            events: vec![],
            deliveries: vec![],
            page: 1,
        }
    }

    fn view(&self) -> View {
        build(&Input {
            now: now(),
            checks: &self.checks,
            live: &self.live,
            last_toggle: self.toggle.as_ref(),
            rollback_state: &self.state,
            rollback: &self.settings,
            targets: &self.targets,
            latency: &self.latency,
            threshold_ms: 2000,
            events: &self.events,
            deliveries: &self.deliveries,
            uptime: &HashMap::new(),
            hours: &HashMap::new(),
            page: self.page,
            timeline_page: 1,
            timeline_more: false,
        })
    }
}

fn toggle(automatic: bool, ago_secs: i64) -> ToggleRecord {
    ToggleRecord {
        id: 1,
        at: now() - secs(ago_secs),
        from: Some(Color::Blue),
        to: Color::Green,
        automatic,
        reason: "release 1.0.5".into(),
        ok: true,
        error: None,
    }
}

#[test]
fn each_check_state_has_its_tone_and_problems_come_first() {
    let w = World::new(vec![
        check("a-up", "up", "ok"),
        check("b-late", "late", "deadline passed"),
        check("c-new", "new", "no signal yet"),
        check("d-down", "down", "no heartbeat for 12s"),
        check("e-paused", "paused", "paused by an operator"),
    ]);
    let v = w.view();
    let got: Vec<(&str, Tone)> = v.checks.iter().map(|c| (c.name.as_str(), c.tone)).collect();
    assert_eq!(
        got,
        vec![
            ("d-down", Tone::Bad),
            ("b-late", Tone::Warn),
            ("a-up", Tone::Ok),
            ("c-new", Tone::Muted),
            ("e-paused", Tone::Muted),
        ]
    );
    assert_eq!(
        (
            v.summary.up,
            v.summary.late,
            v.summary.down,
            v.summary.other
        ),
        (1, 1, 1, 2)
    );
    let down = &v.checks[0];
    assert_eq!(down.for_, "1m30s");
    assert_eq!(down.last_signal_ago.as_deref(), Some("7s"));
    assert_eq!(down.deadline_in.as_deref(), Some("in 3s"));
}

#[test]
fn an_overdue_deadline_counts_up_and_instances_show_up_over_total_with_versions() {
    let mut c = check("blue", "late", "1 of 2 instances up");
    c.next_deadline = Some(now() - secs(4));
    c.instances = vec![
        instance("a1", "1.0.4", "ok", 5),
        instance("a2", "1.0.4", "ok", -1),
        instance("a3", "1.0.5", "fail", 5),
    ];
    let w = World::new(vec![c]);
    let v = w.view();
    let row = &v.checks[0];
    assert_eq!(row.deadline_in.as_deref(), Some("overdue 4s"));
    assert_eq!((row.instances_up, row.instances_total), (1, 3));
    let status: Vec<(&str, &str)> = row
        .instances
        .iter()
        .map(|i| (i.name.as_str(), i.status.as_str()))
        .collect();
    assert!(status.contains(&("a2", "missing")), "{status:?}");
    assert!(status.contains(&("a3", "fail")), "{status:?}");
    // Only instances that are up count as what a color runs.
    assert_eq!(v.banner.versions[0].versions, vec!["1.0.4".to_string()]);
}

#[test]
fn rollback_states_read_disabled_then_latched_then_dry_run_then_armed() {
    let mut w = World::new(vec![]);
    assert_eq!(w.view().banner.rollback.status, RollbackStatus::Armed);
    assert_eq!(w.view().banner.rollback.tone, Tone::Ok);
    w.settings.mode = Mode::DryRun;
    assert_eq!(w.view().banner.rollback.status, RollbackStatus::DryRun);
    w.state.latched = true;
    w.state.latched_at = Some(now() - secs(60));
    w.state.latch_reason = Some("green failed 43s after toggle".into());
    let r = w.view().banner.rollback;
    assert_eq!((r.status, r.tone), (RollbackStatus::Latched, Tone::Bad));
    assert!(
        r.text.contains("green failed 43s after toggle"),
        "{}",
        r.text
    );
    assert!(r.text.contains("1m ago"), "{}", r.text);
    w.state.disabled = true;
    let r = w.view().banner.rollback;
    assert_eq!(r.status, RollbackStatus::Disabled);
    assert!(r.text.contains("operator"), "{}", r.text);
    w.settings.enabled = false;
    assert!(w.view().banner.rollback.text.contains("configuration"));
}

#[test]
fn window_and_cooldown_count_down_and_vanish_once_over() {
    let mut w = World::new(vec![]);
    w.live = LiveState::Live(Color::Green);
    w.toggle = Some(toggle(false, 60));
    w.state.last_automatic_at = Some(now() - secs(30));
    let b = w.view().banner;
    assert_eq!(b.rollback.window_remaining.as_deref(), Some("14m"));
    assert_eq!(b.rollback.cooldown_remaining.as_deref(), Some("9m30s"));
    assert_eq!(b.since_ago.as_deref(), Some("1m"));
    assert_eq!(b.idle, Some(Color::Blue));
    let s = b.last_switch.unwrap();
    assert_eq!(
        (s.from, s.to, s.by.as_str()),
        (Some(Color::Blue), Color::Green, "an operator")
    );
    w.toggle = Some(toggle(true, 16 * 60));
    w.state.last_automatic_at = Some(now() - secs(16 * 60));
    let b = w.view().banner;
    assert_eq!(b.rollback.window_remaining, None);
    assert_eq!(b.rollback.cooldown_remaining, None);
    assert_eq!(b.last_switch.unwrap().by, "the watchdog (automatic)");
}

#[test]
fn an_undefined_live_color_says_why_and_has_no_idle_color() {
    let mut w = World::new(vec![]);
    w.live = LiveState::Invalid("\"purple\"".into());
    let b = w.view().banner;
    assert_eq!((b.live, b.idle), (None, None));
    assert!(b.live_error.unwrap().contains("purple"));
}

#[test]
fn a_page_never_grows_with_the_number_of_checks_or_the_length_of_reasons() {
    let long = "x".repeat(1_000);
    let checks: Vec<CheckRow> = (0..3_000)
        .map(|i| {
            let mut c = check(&format!("check-{i:05}-{long}"), "down", &long);
            c.instances = (0..MAX_INSTANCES + 1)
                .map(|n| instance(&format!("i{n}{long}"), &long, "ok", 5))
                .collect();
            c
        })
        .collect();
    let mut w = World::new(checks);
    w.events = (0..500)
        .map(|i| EventRow {
            id: i,
            at: now(),
            noticed_at: now(),
            check: Some(long.clone()),
            kind: "state".into(),
            from: Some("up".into()),
            to: Some("down".into()),
            instance: None,
            color: None,
            reason: long.clone(),
            down_for: None,
            silenced: None,
            data: None,
        })
        .collect();
    w.page = 7;
    let v = w.view();
    assert_eq!((v.paging.page, v.paging.pages), (7, 60));
    assert_eq!(v.checks.len(), PAGE_SIZE);
    assert_eq!(v.timeline.len(), TIMELINE);
    assert!(v.checks.iter().all(|c| c.instances.len() == MAX_INSTANCES));
    let html = super::super::html::page(&v, None);
    assert!(html.len() < 1_000_000, "page of {} bytes", html.len());
    assert!(!html.contains(&long), "every string is cut");
    w.page = 1_000;
    assert_eq!(
        w.view().paging.page,
        60,
        "a page past the end shows the last"
    );
}

#[test]
fn the_timeline_says_who_toggled_and_each_channels_delivery() {
    let mut w = World::new(vec![]);
    let event = |id, kind: &str, data: serde_json::Value, reason: &str| EventRow {
        id,
        at: now(),
        noticed_at: now(),
        check: None,
        kind: kind.into(),
        from: None,
        to: None,
        instance: None,
        color: None,
        reason: reason.into(),
        down_for: None,
        silenced: None,
        data: Some(data),
    };
    w.events = vec![
        event(
            3,
            "rollback_refused",
            serde_json::json!({"from": "green", "to": "blue", "rule": "cooldown"}),
            "cooldown 9m left",
        ),
        event(
            2,
            "rollback",
            serde_json::json!({"from": "green", "to": "blue"}),
            "green failed 43s after toggle",
        ),
        event(
            1,
            "toggle",
            serde_json::json!({"from": "blue", "to": "green", "automatic": false, "why": "release 1.0.5"}),
            "",
        ),
    ];
    w.deliveries = vec![
        Delivery {
            event_id: 2,
            channel: "slack".into(),
            state: "delivered".into(),
        },
        Delivery {
            event_id: 2,
            channel: "email".into(),
            state: "pending".into(),
        },
    ];
    let v = w.view();
    let texts: Vec<&str> = v.timeline.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts[0],
        "rollback green → blue refused (cooldown): cooldown 9m left"
    );
    assert_eq!(
        texts[1],
        "ROLLBACK green → blue: green failed 43s after toggle"
    );
    assert_eq!(
        texts[2],
        "toggle blue → green by an operator: release 1.0.5"
    );
    assert_eq!(
        v.timeline[1].deliveries,
        vec![
            ("slack".into(), "delivered".into()),
            ("email".into(), "pending".into())
        ]
    );
    assert!(v.timeline[2].deliveries.is_empty());
}

#[test]
fn a_sparkline_scales_to_the_threshold_and_marks_failed_minutes() {
    let mut w = World::new(vec![]);
    w.targets = vec![TargetState {
        observer: "checker".into(),
        target: Target::BlueDirect,
        color: Some(Color::Blue),
        ok: false,
        consecutive_failures: 1,
        consecutive_ok: 0,
        alerting: false,
        last_error: Some("GET /ping returned 502".into()),
        last_latency_ms: Some(3000),
        last_at: now(),
    }];
    w.latency.insert(
        "checker/blue-direct".into(),
        vec![
            Sample {
                at: now() - secs(7200),
                latency_ms: Some(9_999_999),
                ok: true,
            },
            Sample {
                at: now() - secs(600),
                latency_ms: Some(1000),
                ok: true,
            },
            Sample {
                at: now(),
                latency_ms: Some(3000),
                ok: false,
            },
        ],
    );
    let v = w.view();
    let s = &v.targets[0].spark;
    assert_eq!(s.max_ms, 3000, "samples older than an hour are left out");
    assert_eq!(s.points.len(), 2);
    assert_eq!(
        s.points[1],
        (100, 0),
        "the newest point is at the right, at the top"
    );
    assert_eq!(
        s.threshold_y, 7,
        "2000 of 3000 ms: a third from the top of 20"
    );
    assert_eq!(s.fails, vec![100]);
    assert_eq!(
        v.banner.versions[0].health.tone,
        Tone::Bad,
        "blue-direct failing"
    );
}
