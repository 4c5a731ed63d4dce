//! The bgw watchdog.
pub mod reports;
