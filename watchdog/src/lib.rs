//! The bgw watchdog.
pub mod control;
pub mod proxy;
pub mod rollback;
