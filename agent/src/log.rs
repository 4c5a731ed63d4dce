//! The agent's whole logging: one line per event on stderr, as text or JSON.
//!
//! No tracing stack: the agent logs a handful of lines in its life (start,
//! outages, config errors, the child's exit), so a tiny function keeps the
//! binary small. Callers never pass secrets here.

use std::fmt::Display;
use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// How log lines are written (`log_format` key, `--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `2026-11-26T09:40:00Z INFO watchdog unreachable: ...`
    #[default]
    Text,
    /// `{"ts":"2026-11-26T09:40:00Z","level":"INFO","target":"bgw-agent","msg":"..."}`
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "invalid log format {other:?}: expected \"text\" or \"json\""
            )),
        }
    }
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Sets the format once at start; later calls are ignored.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
}

pub fn info(msg: impl Display) {
    write("INFO", msg);
}

pub fn warn(msg: impl Display) {
    write("WARN", msg);
}

pub fn error(msg: impl Display) {
    write("ERROR", msg);
}

fn write(level: &str, msg: impl Display) {
    let line = format_line(
        FORMAT.get().copied().unwrap_or_default(),
        SystemTime::now(),
        level,
        &msg.to_string(),
    );
    // A closed stderr must not take the app down with it.
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

fn format_line(format: LogFormat, now: SystemTime, level: &str, msg: &str) -> String {
    let ts = rfc3339(now);
    match format {
        LogFormat::Text => format!("{ts} {level} bgw-agent: {msg}\n"),
        LogFormat::Json => {
            let obj =
                serde_json::json!({"ts": ts, "level": level, "target": "bgw-agent", "msg": msg});
            format!("{obj}\n")
        }
    }
}

/// UTC `YYYY-MM-DDTHH:MM:SSZ` without a date crate (Howard Hinnant's
/// days-to-civil algorithm).
fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_utc_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_692_007); // 2026-11-26T11:20:07Z
        assert_eq!(rfc3339(t), "2026-11-26T11:20:07Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn json_lines_are_one_parseable_object() {
        let line = format_line(LogFormat::Json, UNIX_EPOCH, "WARN", "say \"hi\"\nthere");
        assert_eq!(line.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["msg"], "say \"hi\"\nthere");
    }
}
