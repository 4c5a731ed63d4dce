//! `bgw-prober`, the watcher outside the cluster: probes the public URL and
//! the watchdog's `/healthz`, reports both to the watchdog, and when the
//! watchdog stays silent for `silence_after` alerts on its own channels.

pub mod deliver;
pub mod outage;
pub mod outbox;
pub mod round;
pub mod state;
