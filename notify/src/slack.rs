//! Slack incoming webhooks: the Block Kit payload and its delivery.
//!
//! The payload has a plain `text` fallback (what Slack shows in push
//! notifications and old clients), a `header` block with the subject, and an
//! attachment coloured red or green holding the reason, the facts as
//! `mrkdwn` fields, the grouped members and a context footer. Every text is
//! escaped for `mrkdwn` and cut to Slack's limits (header 150 characters,
//! section text 3000, field 2000, 50 blocks), so a long reason or a summary of
//! a thousand checks is shortened rather than refused with `invalid_blocks`.

use serde_json::{json, Value};

use crate::error::SendError;
use crate::http::HttpTarget;
use crate::message::{Kind, Notification};
use crate::settings::{check_timeout, parse_http_url, read_secret, SlackSettings};
use crate::ConfigError;

/// Slack's limits on Block Kit texts, in characters.
pub const HEADER_MAX: usize = 150;
pub const SECTION_TEXT_MAX: usize = 3000;
pub const FIELD_TEXT_MAX: usize = 2000;
/// Slack shows at most this much of the top-level `text`.
pub const TEXT_MAX: usize = 3000;

/// Attachment colours: Slack's own red and green.
pub const RED: &str = "#e01e5a";
pub const GREEN: &str = "#2eb67d";

/// The JSON Slack's incoming webhook receives for `n`.
pub fn payload(n: &Notification) -> Value {
    let subject = n.subject();
    let emoji = if n.is_bad() {
        ":red_circle:"
    } else {
        ":large_green_circle:"
    };
    let fallback = if n.reason.is_empty() {
        subject.clone()
    } else {
        format!("{subject}: {}", n.reason)
    };

    let mut details = Vec::new();
    if !n.reason.is_empty() {
        details.push(section(&format!("*Reason:* {}", escape(&n.reason))));
    }
    let fields: Vec<Value> = n
        .facts()
        .into_iter()
        .take(10)
        .map(|(label, value)| {
            json!({
                "type": "mrkdwn",
                "text": truncate(&format!("*{label}*\n{}", escape(&value)), FIELD_TEXT_MAX),
            })
        })
        .collect();
    details.push(json!({"type": "section", "fields": fields}));
    if !n.members.is_empty() {
        let title = if n.kind == Kind::AllIsWell {
            "Checks"
        } else {
            "Members"
        };
        details.push(section(&member_list(title, &n.member_lines())));
    }
    details.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(&escape(&n.footer()), SECTION_TEXT_MAX)}],
    }));

    json!({
        "text": truncate(&escape(&fallback), TEXT_MAX),
        "blocks": [{
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": truncate(&format!("{emoji} {subject}"), HEADER_MAX),
                "emoji": true,
            },
        }],
        "attachments": [{
            "color": if n.is_bad() { RED } else { GREEN },
            "blocks": details,
        }],
    })
}

fn section(text: &str) -> Value {
    json!({
        "type": "section",
        "text": {"type": "mrkdwn", "text": truncate(text, SECTION_TEXT_MAX)},
    })
}

/// `*Members*` and one bullet per line, as many as fit in one section text;
/// the rest are counted (`…and 940 more`).
fn member_list(title: &str, lines: &[String]) -> String {
    // Room for the "and N more" line.
    let budget = SECTION_TEXT_MAX - 40;
    let mut out = format!("*{title}*");
    let mut used = out.chars().count();
    for (i, line) in lines.iter().enumerate() {
        let bullet = format!("\n• {}", escape(line));
        let len = bullet.chars().count();
        if used + len > budget {
            out.push_str(&format!("\n…and {} more", lines.len() - i));
            break;
        }
        used += len;
        out.push_str(&bullet);
    }
    out
}

/// Escapes the three characters `mrkdwn` treats as control characters.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A configured Slack incoming webhook.
#[derive(Debug)]
pub(crate) struct Slack {
    target: HttpTarget,
}

impl Slack {
    pub(crate) fn new(settings: &SlackSettings) -> Result<Self, ConfigError> {
        const KEY: &str = "notify.slack.webhook_url";
        let url = read_secret(
            settings.webhook_url.as_ref(),
            settings.webhook_url_file.as_deref(),
            KEY,
            "notify.slack.webhook_url_file",
        )?
        .ok_or_else(|| ConfigError::new(KEY, "missing: set webhook_url or webhook_url_file"))?;
        let url = parse_http_url(&url, KEY)?;
        let timeout = check_timeout(settings.timeout, "notify.slack.timeout")?;
        let target = HttpTarget::new(url, timeout).map_err(|e| ConfigError::new(KEY, e))?;
        Ok(Slack { target })
    }

    pub(crate) async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let body = serde_json::to_vec(&payload(n)).expect("a JSON value always serializes");
        self.target.post_json(body, &[]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::down_blue;
    use crate::message::Member;
    use bgw_wire::HumanDuration;
    use std::time::Duration;

    fn all_texts(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                if let (Some(Value::String(t)), Some(Value::String(text))) =
                    (map.get("type"), map.get("text"))
                {
                    if t == "mrkdwn" || t == "plain_text" {
                        out.push(text.clone());
                    }
                }
                map.values().for_each(|v| all_texts(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| all_texts(v, out)),
            _ => {}
        }
    }

    #[test]
    fn down_payload_has_fallback_header_red_attachment_and_every_fact() {
        let p = payload(&down_blue());
        assert_eq!(
            p["text"],
            "[bgw] DOWN blue: no heartbeat for 12s (period 5s, grace 5s)"
        );
        assert_eq!(p["blocks"][0]["type"], "header");
        assert_eq!(p["blocks"][0]["text"]["type"], "plain_text");
        assert!(p["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .ends_with("[bgw] DOWN blue"));
        assert_eq!(p["attachments"][0]["color"], RED);
        let mut texts = Vec::new();
        all_texts(&p["attachments"], &mut texts);
        let joined = texts.join("\n");
        for needle in [
            "*Check*\nblue",
            "*Color*\nblue",
            "*State*\ndown",
            "*When*\n2026-11-26T14:03:20Z",
            "*Live color*\nblue",
            "no heartbeat for 12s",
            "event 42",
        ] {
            assert!(joined.contains(needle), "missing {needle:?} in {joined}");
        }
    }

    #[test]
    fn recovery_is_green_and_says_how_long_it_was_down() {
        let n = Notification {
            kind: Kind::Up,
            state: "up".into(),
            down_for: Some(HumanDuration(Duration::from_secs(75))),
            ..down_blue()
        };
        let p = payload(&n);
        assert_eq!(p["attachments"][0]["color"], GREEN);
        assert!(p.to_string().contains("*Down for*\\n1m15s"), "{p}");
    }

    #[test]
    fn long_texts_and_many_members_stay_within_slack_limits() {
        let n = Notification {
            check: "x".repeat(400),
            reason: "<&>".repeat(2000),
            members: (0..1000)
                .map(|i| Member {
                    check: format!("check-{i}"),
                    color: None,
                    state: "down".into(),
                    reason: "GET /ping returned 502".into(),
                })
                .collect(),
            ..down_blue()
        };
        let p = payload(&n);
        assert!(p["text"].as_str().unwrap().chars().count() <= TEXT_MAX);
        let header = p["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(header.chars().count() <= HEADER_MAX);
        let blocks = p["attachments"][0]["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        let mut texts = Vec::new();
        all_texts(&p, &mut texts);
        for t in &texts {
            assert!(t.chars().count() <= SECTION_TEXT_MAX, "{} chars", t.len());
            assert!(!t.contains('<'), "unescaped < in {t}");
        }
        assert!(
            p.to_string().contains("more"),
            "the cut members are counted"
        );
    }

    #[test]
    fn mrkdwn_control_characters_are_escaped() {
        assert_eq!(escape("a<b>&c"), "a&lt;b&gt;&amp;c");
        assert_eq!(truncate("héllo", 3), "hé…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
