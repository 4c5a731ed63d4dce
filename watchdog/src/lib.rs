//! The bgw watchdog: receives heartbeats and reports, keeps every check's
//! state and deadline in SQLite, writes the daily log, alerts, and controls
//! the blue/green switch.

pub mod config;
pub mod schedule;
pub mod state;
