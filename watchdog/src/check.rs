//! Checks as data: what is monitored ([`CheckSpec`], [`CheckKind`]), how it
//! is judged ([`rules_of`]) and the [`Catalog`] the watchdog looks checks
//! up in (by name, by ping UUID). Fixed at start from the configuration.

use crate::schedule::Cadence;
use crate::state::Rules;
use bgw_wire::Color;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::time::Duration;

/// One monitored check, as configured.
#[derive(Debug, Clone)]
pub struct CheckSpec {
    pub name: String,
    pub kind: CheckKind,
    pub cadence: Cadence,
    pub grace: Duration,
    pub token: Option<SecretString>,
    /// Instances a service tracks at most (`max_instances`, per check or
    /// the top-level default); beyond it a new instance id is refused.
    pub max_instances: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// Instances heartbeat through `bgw-agent`; down below `min_instances` up.
    Service {
        color: Option<Color>,
        min_instances: u32,
    },
    /// A healthchecks.io-style ping URL `/ping/<uuid>`.
    Heartbeat { uuid: String },
    /// The checker or the prober: each report is its heartbeat.
    Reporter,
}

impl CheckKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            CheckKind::Service { .. } => "service",
            CheckKind::Heartbeat { .. } => "heartbeat",
            CheckKind::Reporter => "reporter",
        }
    }
}

impl CheckSpec {
    pub fn color(&self) -> Option<Color> {
        match &self.kind {
            CheckKind::Service { color, .. } => *color,
            _ => None,
        }
    }

    /// The part of the spec that defines behaviour, without secrets: stored
    /// so a restart can tell a changed check from an unchanged one.
    pub fn fingerprint(&self) -> String {
        let kind = match &self.kind {
            CheckKind::Service {
                color,
                min_instances,
            } => format!(
                "service color={} min_instances={min_instances}",
                color.map_or("-", |c| c.as_str())
            ),
            CheckKind::Heartbeat { uuid } => format!("heartbeat uuid={uuid}"),
            CheckKind::Reporter => "reporter".to_string(),
        };
        format!(
            "{kind} cadence={} grace={}",
            self.cadence.describe(),
            bgw_wire::format_duration(self.grace)
        )
    }

    /// Its period (for a cron schedule: its grace, at least one second), the
    /// interval its clients are expected to signal at.
    pub fn period(&self) -> Duration {
        match &self.cadence {
            Cadence::Period(p) => *p,
            _ => self.grace.max(Duration::from_secs(1)),
        }
    }

    /// How long after a watchdog start its deadlines that passed while the
    /// watchdog was not running wait for a signal before being judged: one
    /// period + grace for bgw's own clients (agents, checker, prober), which
    /// retry at least once per interval; `startup_grace` for heartbeat jobs.
    pub fn startup_hold(&self, startup_grace: Duration) -> Duration {
        match self.kind {
            CheckKind::Service { .. } | CheckKind::Reporter => self.period() + self.grace,
            CheckKind::Heartbeat { .. } => startup_grace,
        }
    }

    /// Whether `presented` is this check's token (constant time).
    pub fn token_matches(&self, presented: &str) -> bool {
        match &self.token {
            Some(t) => secrets_equal(t.expose_secret(), presented),
            None => false,
        }
    }
}

/// Constant-time equality of two secrets (length is not hidden).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The configured checks, immutable while the watchdog runs.
pub struct Catalog {
    pub checks: Vec<Entry>,
    by_name: HashMap<String, usize>,
    by_uuid: HashMap<String, usize>,
}

pub struct Entry {
    pub id: i64,
    pub spec: CheckSpec,
    pub rules: Rules,
}

impl Catalog {
    pub fn new(checks: Vec<Entry>) -> Catalog {
        let by_name = checks
            .iter()
            .enumerate()
            .map(|(i, e)| (e.spec.name.clone(), i))
            .collect();
        let by_uuid = checks
            .iter()
            .enumerate()
            .filter_map(|(i, e)| match &e.spec.kind {
                CheckKind::Heartbeat { uuid } => Some((uuid.clone(), i)),
                _ => None,
            })
            .collect();
        Catalog {
            checks,
            by_name,
            by_uuid,
        }
    }

    pub fn by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The checks that observe the live color for the rollback: colored
    /// services (their agents) and reporters (the checker, the prober).
    pub fn observer_indexes(&self) -> Vec<usize> {
        self.checks
            .iter()
            .enumerate()
            .filter(|(_, e)| match e.spec.kind {
                CheckKind::Service { color, .. } => color.is_some(),
                CheckKind::Reporter => true,
                CheckKind::Heartbeat { .. } => false,
            })
            .map(|(i, _)| i)
            .collect()
    }

    pub fn by_uuid(&self, uuid: &str) -> Option<usize> {
        self.by_uuid.get(&uuid.to_ascii_lowercase()).copied()
    }
}

/// The rules a spec is judged by.
pub fn rules_of(spec: &CheckSpec) -> Rules {
    Rules {
        cadence: spec.cadence.clone(),
        grace: spec.grace,
        min_instances: match spec.kind {
            CheckKind::Service { min_instances, .. } => Some(min_instances),
            _ => None,
        },
    }
}
