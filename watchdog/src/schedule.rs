//! Placeholder until the real schedule module lands (periods only).
use chrono::{DateTime, Utc};
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Cadence {
    Period(Duration),
    Cron(String),
}

impl Cadence {
    pub fn cron(expr: &str, _tz: &str) -> Result<Cadence, String> {
        Ok(Cadence::Cron(expr.to_string()))
    }
    pub fn next_expected(&self, after: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Cadence::Period(p) => after + *p,
            Cadence::Cron(_) => after + Duration::from_secs(86400),
        }
    }
    pub fn describe(&self) -> String {
        match self {
            Cadence::Period(p) => format!("every {}", bgw_wire::format_duration(*p)),
            Cadence::Cron(e) => e.clone(),
        }
    }
}

pub fn deadlines(c: &Cadence, grace: Duration, last: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let late = c.next_expected(last);
    (late, late + grace)
}
