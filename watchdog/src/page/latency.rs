//! Latency history of the probe targets for the sparklines: a bounded
//! in-memory ring per target, fed from the monitor's snapshots (each report
//! of the checker or the prober publishes one, with every target's last
//! latency and when it was measured). Kept in memory on purpose: it is a
//! picture of the last hour, not a record, and costs no write on the
//! ingest path; a restart starts the picture afresh.

use super::view::Sample;
use crate::reports::TargetState;
use std::collections::{HashMap, VecDeque};

/// Samples kept per target: an hour of 1 s rounds.
pub const RING: usize = 3_600;
/// Targets kept (a misbehaving reporter cannot grow the map without end).
pub const MAX_TARGETS: usize = 64;

/// One ring per `observer/target`.
#[derive(Debug, Default)]
pub struct Rings {
    rings: HashMap<String, VecDeque<Sample>>,
}

impl Rings {
    /// Records each target's last result unless it is already recorded.
    pub fn feed(&mut self, targets: &[TargetState]) {
        for t in targets {
            let key = format!("{}/{}", t.observer, t.target.as_str());
            if !self.rings.contains_key(&key) && self.rings.len() >= MAX_TARGETS {
                continue;
            }
            let ring = self.rings.entry(key).or_default();
            if ring.back().is_some_and(|s| s.at >= t.last_at) {
                continue;
            }
            if ring.len() == RING {
                ring.pop_front();
            }
            ring.push_back(Sample {
                at: t.last_at,
                latency_ms: t.last_latency_ms,
                ok: t.ok,
            });
        }
    }

    /// A copy of every ring, oldest sample first.
    pub fn samples(&self) -> HashMap<String, Vec<Sample>> {
        self.rings
            .iter()
            .map(|(k, r)| (k.clone(), r.iter().copied().collect()))
            .collect()
    }
}
