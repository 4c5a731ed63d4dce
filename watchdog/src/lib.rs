//! The bgw watchdog.

pub mod logfile;
pub mod schedule;
