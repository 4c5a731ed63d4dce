//! Wire types shared by everything that talks to the watchdog: the agent's
//! heartbeat, the checker's and prober's report, colors, human durations and
//! the jittered backoff every client uses while the watchdog is unreachable.
//!
//! This crate depends on `serde` only, so the agent that links it stays small.

pub mod backoff;
pub mod color;
pub mod duration;
pub mod heartbeat;
pub mod report;
#[cfg(feature = "settings")]
pub mod settings;

pub use backoff::Backoff;
pub use color::{Color, ParseColorError};
pub use duration::{format_duration, parse_duration, HumanDuration, ParseDurationError};
pub use heartbeat::{Heartbeat, HeartbeatAck, HeartbeatStatus};
pub use report::{ProbeResult, Report, Target};

/// The body of every error answer of the watchdog's HTTP API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// Largest request body the watchdog accepts (64 KiB); larger ones get `413`.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Response header the rendered nginx config stamps on every proxied answer.
pub const COLOR_HEADER: &str = "X-Bgw-Color";
