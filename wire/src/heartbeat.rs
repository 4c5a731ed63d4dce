//! The agent's heartbeat and the watchdog's acknowledgement.

use crate::{Color, HumanDuration};

/// What an instance says about its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HeartbeatStatus {
    /// The app answered its local probe well.
    Ok,
    /// The app answered badly, or the agent's child died; `detail` says how.
    Fail,
    /// Planned shutdown: the instance leaves without an alert.
    Stopping,
}

impl HeartbeatStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HeartbeatStatus::Ok => "ok",
            HeartbeatStatus::Fail => "fail",
            HeartbeatStatus::Stopping => "stopping",
        }
    }
}

/// `POST /api/v1/heartbeat` body. Unknown fields are rejected (`400`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub check: String,
    pub instance: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<Color>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub status: HeartbeatStatus,
    /// Increases by one per heartbeat of this instance; lets the watchdog
    /// tell a retried heartbeat from a new one.
    #[serde(default)]
    pub seq: u64,
    /// The agent's own interval, so the watchdog can report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<HumanDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// `202` answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeartbeatAck {
    pub state: String,
    /// RFC 3339, or `null` when the check has no deadline (paused).
    pub next_deadline: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_example_parses() {
        let hb: Heartbeat = serde_json::from_str(
            r#"{"check": "blue", "instance": "a1b2c3", "color": "blue", "version": "1.0.4",
                "status": "ok", "seq": 42, "interval": "5s", "detail": "GET /ping 200 in 3 ms"}"#,
        )
        .unwrap();
        assert_eq!(hb.status, HeartbeatStatus::Ok);
        assert_eq!(hb.color, Some(Color::Blue));
        assert_eq!(hb.interval.unwrap().0, std::time::Duration::from_secs(5));
    }

    #[test]
    fn unknown_fields_and_statuses_are_rejected() {
        assert!(serde_json::from_str::<Heartbeat>(
            r#"{"check":"b","instance":"i","status":"ok","extra":1}"#
        )
        .is_err());
        assert!(serde_json::from_str::<Heartbeat>(
            r#"{"check":"b","instance":"i","status":"maybe"}"#
        )
        .is_err());
    }
}
