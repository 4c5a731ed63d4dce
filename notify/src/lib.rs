//! Notification channels shared by the watchdog and the external prober.
