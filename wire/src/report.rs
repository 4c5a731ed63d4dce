//! The checker's and prober's report: one round of probe results.

use crate::Color;
use std::fmt;

/// What was probed. The checker reports the first four, the prober the last two.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    BlueDirect,
    GreenDirect,
    LiveProxy,
    IdleProxy,
    Public,
    Watchdog,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::BlueDirect,
        Target::GreenDirect,
        Target::LiveProxy,
        Target::IdleProxy,
        Target::Public,
        Target::Watchdog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::BlueDirect => "blue-direct",
            Target::GreenDirect => "green-direct",
            Target::LiveProxy => "live-proxy",
            Target::IdleProxy => "idle-proxy",
            Target::Public => "public",
            Target::Watchdog => "watchdog",
        }
    }

    /// The color a direct target always means, whatever is live.
    pub fn direct_color(self) -> Option<Color> {
        match self {
            Target::BlueDirect => Some(Color::Blue),
            Target::GreenDirect => Some(Color::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeResult {
    pub target: Target,
    /// The color that served the answer (from `X-Bgw-Color`), or the direct
    /// target's color.
    #[serde(default)]
    pub color: Option<Color>,
    pub url: String,
    pub ok: bool,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub latency_ms: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// `POST /api/v1/report` body.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub observer: String,
    pub results: Vec<ProbeResult>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_example_parses() {
        let r: Report = serde_json::from_str(
            r#"{"observer": "checker", "results": [
              {"target": "blue-direct", "color": "blue", "url": "http://127.0.0.1:3000/ping",
               "ok": true, "status": 200, "latency_ms": 3, "error": null}]}"#,
        )
        .unwrap();
        assert_eq!(r.results[0].target, Target::BlueDirect);
        assert_eq!(r.results[0].latency_ms, Some(3));
    }

    #[test]
    fn target_names_match_serde() {
        for t in Target::ALL {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(json, format!("\"{}\"", t.as_str()));
        }
    }
}
