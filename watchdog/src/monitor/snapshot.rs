//! What the monitor publishes after each commit that changed the inputs of
//! the rollback decision: the observers' checks, the probe targets, the
//! control ledger and the silences. Readers (the rollback watcher, the API)
//! get it from a `watch` channel; they never read SQLite for it.

use crate::alerting::Silence;
use crate::ledger::ControlState;
use crate::reports::TargetState;
use crate::state::Runtime;
use chrono::{DateTime, Utc};

/// The monitor's state as of one commit.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Increases with every snapshot.
    pub version: u64,
    /// When the watchdog process started.
    pub started: DateTime<Utc>,
    /// The checks that observe the live color: colored services (their
    /// agents) and reporters (the checker, the prober).
    pub observers: Vec<ObserverCheck>,
    pub targets: Vec<TargetState>,
    pub control: ControlState,
    pub silences: Vec<Silence>,
}

/// One observer's check: its index in the catalog and its runtime.
#[derive(Debug, Clone)]
pub struct ObserverCheck {
    pub idx: usize,
    pub runtime: Runtime,
}
