//! The bgw watchdog.
