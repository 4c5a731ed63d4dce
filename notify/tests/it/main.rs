//! Integration tests of the channels against real receivers on loopback: the
//! Slack receiver of the e2e harness (which judges payloads as Slack does),
//! a real aiosmtpd SMTP server, and a small HTTP server for the webhook.

mod email;
mod slack;
mod webhook;

use bgw_notify::{Kind, Member, Notification};
use bgw_wire::Color;

/// A DOWN notification as the watchdog sends it.
pub fn down_blue() -> Notification {
    Notification {
        event_id: 42,
        kind: Kind::Down,
        check: "blue".into(),
        color: Some(Color::Blue),
        state: "down".into(),
        reason: "no heartbeat for 12s (period 5s, grace 5s)".into(),
        at: "2026-11-26T14:03:20Z".parse().unwrap(),
        down_for: None,
        live: Some(Color::Blue),
        from: None,
        to: None,
        members: vec![],
        source: "watchdog".into(),
    }
}

/// One notification of every kind, with the fields that kind uses.
pub fn one_of_each_kind() -> Vec<Notification> {
    let member = |check: &str, state: &str, reason: &str| Member {
        check: check.into(),
        color: Some(Color::Blue),
        state: state.into(),
        reason: reason.into(),
    };
    let base = down_blue();
    vec![
        Notification {
            members: vec![
                member("blue", "down", "no heartbeat for 12s"),
                member("blue-direct", "down", "GET /ping returned 502"),
            ],
            ..base.clone()
        },
        Notification {
            kind: Kind::Up,
            state: "up".into(),
            reason: "heartbeat received".into(),
            down_for: Some(std::time::Duration::from_secs(192).into()),
            ..base.clone()
        },
        Notification {
            kind: Kind::Reminder,
            ..base.clone()
        },
        Notification {
            kind: Kind::Flapping,
            state: "flapping".into(),
            reason: "changed state 6 times in 10m".into(),
            ..base.clone()
        },
        Notification {
            kind: Kind::Rollback,
            check: "green".into(),
            color: Some(Color::Green),
            state: "rolled back".into(),
            reason: "green failed 43s after toggle (agents silent, checker: 502)".into(),
            from: Some(Color::Green),
            to: Some(Color::Blue),
            ..base.clone()
        },
        Notification {
            kind: Kind::RollbackRefused,
            check: "green".into(),
            state: "down".into(),
            reason: "blue is not healthy (GET /ping returned 502)".into(),
            from: Some(Color::Green),
            to: Some(Color::Blue),
            ..base.clone()
        },
        Notification {
            kind: Kind::SwitchFailed,
            state: "failed".into(),
            reason: "nginx -t failed: unexpected \"}\" in /etc/nginx/nginx.conf:12".into(),
            from: Some(Color::Blue),
            to: Some(Color::Green),
            ..base.clone()
        },
        Notification {
            kind: Kind::DeliveryFailed,
            check: "slack".into(),
            color: None,
            state: "failed".into(),
            reason: "HTTP 404: no_service".into(),
            ..base.clone()
        },
        Notification {
            kind: Kind::AllIsWell,
            check: String::new(),
            color: None,
            state: "summary".into(),
            reason: String::new(),
            members: (0..300)
                .map(|i| member(&format!("check-{i}"), "up", "heartbeat 3s ago"))
                .collect(),
            ..base
        },
    ]
}
