//! End-to-end tests of `bgw-watchdog`: the real process, a real SQLite file,
//! HTTP on loopback, real SMTP and a Slack receiver for alerts.

#[path = "watchdog/alerting.rs"]
mod alerting;
#[path = "watchdog/bounds.rs"]
mod bounds;
#[path = "watchdog/hardening.rs"]
mod hardening;
#[path = "watchdog/ingest.rs"]
mod ingest;
#[path = "watchdog/restart.rs"]
mod restart;
