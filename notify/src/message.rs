//! What a notification says: the [`Notification`] every channel renders, its
//! subject line and its plain-text body.
//!
//! The subject is part of the product contract (`[bgw] DOWN blue`,
//! `[bgw] UP blue`, `[bgw] ROLLBACK green -> blue`); operators filter mail on
//! it, so it never changes shape. The text body is shared by every channel (it
//! is the email's text part and the Slack fallback), so a message reads the
//! same wherever it lands.

use std::fmt::Write as _;

use bgw_wire::{Color, HumanDuration};
use chrono::{DateTime, SecondsFormat, Utc};

/// One alert, as the watchdog's outbox stores it and every channel sends it.
///
/// Its JSON (`serde_json::to_string(&notification)`) is also the webhook body:
/// `at` is RFC 3339 UTC, `down_for` a human duration (`"3m12s"`), colors are
/// `"blue"`/`"green"`, `kind` is snake_case, absent values are `null`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Notification {
    /// Id of the event that caused it (0 if none).
    pub event_id: i64,
    pub kind: Kind,
    /// The check it is about: `"blue"`, `"nightly-backup"`, `"checker"`, `"watchdog"`;
    /// for [`Kind::DeliveryFailed`] the channel that failed (`"slack"`).
    pub check: String,
    /// The check's color, when it has one.
    pub color: Option<Color>,
    /// The new state: `"down"`, `"up"`, ...
    pub state: String,
    /// Why, in words: `no heartbeat for 12s (period 5s, grace 5s)`.
    pub reason: String,
    /// When it happened (the event's real time, not when it was noticed).
    pub at: DateTime<Utc>,
    /// On recovery: how long the check was down.
    pub down_for: Option<HumanDuration>,
    /// The live color at the time.
    pub live: Option<Color>,
    /// Rollback / switch: from this color ...
    pub from: Option<Color>,
    /// ... to this one.
    pub to: Option<Color>,
    /// Grouped checks (one message for a whole color) or the all-is-well rows.
    pub members: Vec<Member>,
    /// Who sent it: `"watchdog"` or `"prober"`.
    pub source: String,
}

/// One row of a grouped message or of the all-is-well summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Member {
    pub check: String,
    pub color: Option<Color>,
    pub state: String,
    pub reason: String,
}

/// What kind of news a notification carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A check went down.
    Down,
    /// A check recovered.
    Up,
    /// A check is still down (`notify.repeat`).
    Reminder,
    /// A check flips too often; quiet until it settles.
    Flapping,
    /// The watchdog switched back to the previous color.
    Rollback,
    /// A rollback was warranted but not done (the reason says why).
    RollbackRefused,
    /// A switch failed (nginx test or reload); the old color stays live.
    SwitchFailed,
    /// A channel gave up on a message (permanent error).
    DeliveryFailed,
    /// The scheduled summary of every check.
    AllIsWell,
}

impl Kind {
    /// The word of the subject line: `DOWN`, `STILL DOWN`, ...
    pub fn headline(self) -> &'static str {
        match self {
            Kind::Down => "DOWN",
            Kind::Up => "UP",
            Kind::Reminder => "STILL DOWN",
            Kind::Flapping => "FLAPPING",
            Kind::Rollback => "ROLLBACK",
            Kind::RollbackRefused => "ROLLBACK REFUSED",
            Kind::SwitchFailed => "SWITCH FAILED",
            Kind::DeliveryFailed => "DELIVERY FAILED",
            Kind::AllIsWell => "ALL IS WELL",
        }
    }
}

/// States a summary row counts as a problem.
fn is_bad_state(state: &str) -> bool {
    matches!(state, "down" | "late")
}

impl Notification {
    /// The subject line: `[bgw] DOWN blue`, `[bgw] UP blue`,
    /// `[bgw] ROLLBACK green -> blue`, `[bgw] STILL DOWN blue`,
    /// `[bgw] FLAPPING blue`, `[bgw] ROLLBACK REFUSED green`,
    /// `[bgw] SWITCH FAILED blue -> green`, `[bgw] DELIVERY FAILED slack`,
    /// `[bgw] ALL IS WELL` or `[bgw] SUMMARY: 2 down`.
    pub fn subject(&self) -> String {
        let what = match self.kind {
            Kind::Rollback | Kind::SwitchFailed => match (self.from, self.to) {
                (Some(from), Some(to)) => format!("{from} -> {to}"),
                (None, Some(to)) => format!("to {to}"),
                (Some(from), None) => from.to_string(),
                (None, None) => self.check.clone(),
            },
            Kind::RollbackRefused => match self.from {
                Some(from) => from.to_string(),
                None => self.check.clone(),
            },
            Kind::AllIsWell => {
                let down = self.members.iter().filter(|m| m.state == "down").count();
                let late = self.members.iter().filter(|m| m.state == "late").count();
                return match (down, late) {
                    (0, 0) => "[bgw] ALL IS WELL".to_string(),
                    (d, 0) => format!("[bgw] SUMMARY: {d} down"),
                    (0, l) => format!("[bgw] SUMMARY: {l} late"),
                    (d, l) => format!("[bgw] SUMMARY: {d} down, {l} late"),
                };
            }
            _ => self.check.clone(),
        };
        format!("[bgw] {} {}", self.kind.headline(), what)
    }

    /// Whether this is bad news (red) or good news (green).
    pub fn is_bad(&self) -> bool {
        match self.kind {
            Kind::Up => false,
            Kind::AllIsWell => self.members.iter().any(|m| is_bad_state(&m.state)),
            Kind::Down
            | Kind::Reminder
            | Kind::Flapping
            | Kind::Rollback
            | Kind::RollbackRefused
            | Kind::SwitchFailed
            | Kind::DeliveryFailed => true,
        }
    }

    /// `at` as RFC 3339 UTC to the second: `2026-11-26T14:03:20Z`.
    pub fn when(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// The labelled facts of the message, in display order. Every channel
    /// renders these same rows, so they never disagree.
    pub fn facts(&self) -> Vec<(&'static str, String)> {
        let mut rows = Vec::new();
        if self.kind != Kind::AllIsWell {
            rows.push(("Check", self.check.clone()));
            if let Some(color) = self.color {
                rows.push(("Color", color.to_string()));
            }
            rows.push(("State", self.state.clone()));
        }
        rows.push(("When", self.when()));
        if let Some(down_for) = self.down_for {
            rows.push(("Down for", down_for.to_string()));
        }
        if let (Some(from), Some(to)) = (self.from, self.to) {
            rows.push(("Switch", format!("{from} -> {to}")));
        }
        rows.push((
            "Live color",
            self.live
                .map_or_else(|| "unknown".to_string(), |c| c.to_string()),
        ));
        rows
    }

    /// One line per member: `blue-direct (blue): down, GET /ping returned 502`.
    pub fn member_lines(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| {
                let mut line = m.check.clone();
                if let Some(color) = m.color {
                    let _ = write!(line, " ({color})");
                }
                let _ = write!(line, ": {}", m.state);
                if !m.reason.is_empty() {
                    let _ = write!(line, ", {}", m.reason);
                }
                line
            })
            .collect()
    }

    /// Who sent it, for the footer: `sent by watchdog (event 42)`.
    pub fn footer(&self) -> String {
        if self.event_id > 0 {
            format!("sent by bgw {} (event {})", self.source, self.event_id)
        } else {
            format!("sent by bgw {}", self.source)
        }
    }

    /// The plain-text body shared by every channel.
    pub fn text(&self) -> String {
        let mut out = self.subject();
        out.push_str("\n\n");
        if !self.reason.is_empty() {
            let _ = writeln!(out, "{}\n", self.reason);
        }
        for (label, value) in self.facts() {
            let _ = writeln!(out, "{:<11} {value}", format!("{label}:"));
        }
        if !self.members.is_empty() {
            let title = if self.kind == Kind::AllIsWell {
                "Checks"
            } else {
                "Members"
            };
            let _ = writeln!(out, "\n{title}:");
            for line in self.member_lines() {
                let _ = writeln!(out, "  - {line}");
            }
        }
        let _ = write!(out, "\n-- \n{}\n", self.footer());
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    /// A DOWN notification as the watchdog would send it.
    pub(crate) fn down_blue() -> Notification {
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

    fn with_kind(kind: Kind) -> Notification {
        Notification {
            kind,
            ..down_blue()
        }
    }

    #[test]
    fn subjects_match_the_contract_for_every_kind() {
        assert_eq!(down_blue().subject(), "[bgw] DOWN blue");
        assert_eq!(with_kind(Kind::Up).subject(), "[bgw] UP blue");
        assert_eq!(with_kind(Kind::Reminder).subject(), "[bgw] STILL DOWN blue");
        assert_eq!(with_kind(Kind::Flapping).subject(), "[bgw] FLAPPING blue");
        let switch = |kind| Notification {
            from: Some(Color::Green),
            to: Some(Color::Blue),
            ..with_kind(kind)
        };
        assert_eq!(
            switch(Kind::Rollback).subject(),
            "[bgw] ROLLBACK green -> blue"
        );
        assert_eq!(
            switch(Kind::RollbackRefused).subject(),
            "[bgw] ROLLBACK REFUSED green"
        );
        assert_eq!(
            switch(Kind::SwitchFailed).subject(),
            "[bgw] SWITCH FAILED green -> blue"
        );
        let failed = Notification {
            check: "slack".into(),
            ..with_kind(Kind::DeliveryFailed)
        };
        assert_eq!(failed.subject(), "[bgw] DELIVERY FAILED slack");
    }

    #[test]
    fn summary_subject_counts_down_checks_or_says_all_is_well() {
        let member = |check: &str, state: &str| Member {
            check: check.into(),
            color: None,
            state: state.into(),
            reason: String::new(),
        };
        let mut n = with_kind(Kind::AllIsWell);
        n.members = vec![member("blue", "up"), member("green", "up")];
        assert_eq!(n.subject(), "[bgw] ALL IS WELL");
        assert!(!n.is_bad());
        n.members.push(member("checker", "down"));
        n.members.push(member("nightly-backup", "down"));
        assert_eq!(n.subject(), "[bgw] SUMMARY: 2 down");
        assert!(n.is_bad());
        n.members.push(member("prober", "late"));
        assert_eq!(n.subject(), "[bgw] SUMMARY: 2 down, 1 late");
    }

    #[test]
    fn only_recovery_and_a_clean_summary_are_good_news() {
        assert!(down_blue().is_bad());
        assert!(!with_kind(Kind::Up).is_bad());
        for kind in [
            Kind::Reminder,
            Kind::Flapping,
            Kind::Rollback,
            Kind::RollbackRefused,
            Kind::SwitchFailed,
            Kind::DeliveryFailed,
        ] {
            assert!(with_kind(kind).is_bad(), "{kind:?}");
        }
    }

    #[test]
    fn text_names_check_color_state_reason_time_and_live_color() {
        let text = down_blue().text();
        for needle in [
            "[bgw] DOWN blue",
            "no heartbeat for 12s (period 5s, grace 5s)",
            "Check:      blue",
            "Color:      blue",
            "State:      down",
            "When:       2026-11-26T14:03:20Z",
            "Live color: blue",
            "event 42",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
        assert!(!text.contains("Down for"));
    }

    #[test]
    fn recovery_text_says_how_long_it_was_down() {
        let n = Notification {
            kind: Kind::Up,
            state: "up".into(),
            down_for: Some(HumanDuration(Duration::from_secs(192))),
            ..down_blue()
        };
        assert!(n.text().contains("Down for:   3m12s"), "{}", n.text());
    }

    #[test]
    fn webhook_json_uses_readable_field_values() {
        let n = Notification {
            down_for: Some(HumanDuration(Duration::from_secs(5))),
            ..down_blue()
        };
        let v = serde_json::to_value(&n).unwrap();
        assert_eq!(v["kind"], "down");
        assert_eq!(v["color"], "blue");
        assert_eq!(v["at"], "2026-11-26T14:03:20Z");
        assert_eq!(v["down_for"], "5s");
        assert_eq!(v["from"], serde_json::Value::Null);
        let back: Notification = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
    }
}
