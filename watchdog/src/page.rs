//! The status page: who may see it (`[status_page]`), the facts it shows,
//! gathered once and shared by every viewer, and the latency rings behind
//! its sparklines. The view model (`page::view`) is a pure function of
//! those facts; `page::html` and `page::term` render it for a browser and
//! for `bgw-watchdog status`. The HTTP edges are in `api/page.rs`.
//!
//! Sharing: however many pages and live streams are open, the store is
//! read at most once per [`FRESH`] (or at each new monitor snapshot), and
//! the uptime rollups are advanced at most once per [`ROLLUP_EVERY`].

pub mod html;
pub mod latency;
pub mod term;
pub mod view;

use crate::monitor::Snapshot;
use crate::proxy::LiveState;
use crate::rollup::{Health, Hours};
use crate::store::{CheckRow, Delivery, EventRow, Store, StoreError};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How long gathered facts are reused when no snapshot changed.
pub const FRESH: Duration = Duration::from_millis(500);
/// How often the uptime rollups are advanced (and re-read).
pub const ROLLUP_EVERY: Duration = Duration::from_secs(30);
/// Buckets older than this are pruned (the page shows 30 days).
const KEEP_HOURS: i64 = 24 * 31;

/// Who may see the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Anyone who reaches `listen` (the contract's read-only `GET /`).
    #[default]
    Public,
    /// Only with `?token=<viewer_token>` (or the admin token, or either as
    /// `Authorization: Bearer`).
    Token,
    /// No page, no stream: `404`.
    Off,
}

/// `[status_page]`.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub access: Access,
    pub viewer_token: Option<SecretString>,
}

impl Settings {
    /// `access = "token"` needs a `viewer_token`; errors name the key.
    pub fn validate(&self) -> Result<(), (&'static str, &'static str)> {
        match (&self.access, &self.viewer_token) {
            (Access::Token, None) => Err((
                "viewer_token",
                "required when status_page.access = \"token\"",
            )),
            (_, Some(t)) if t.expose_secret().trim().is_empty() => {
                Err(("viewer_token", "must not be empty"))
            }
            _ => Ok(()),
        }
    }
}

/// Why a viewer is turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// `access = "off"`.
    Off,
    /// `access = "token"` and no valid token was presented.
    Token,
}

/// Everything the page shows, gathered at one moment.
pub struct Facts {
    pub now: DateTime<Utc>,
    pub snapshot: Arc<Snapshot>,
    pub live: LiveState,
    pub checks: Vec<CheckRow>,
    /// The newest events, newest first (one more than a timeline page, to
    /// know whether there are older ones).
    pub events: Vec<EventRow>,
    pub deliveries: Vec<Delivery>,
    pub uptime: Arc<HashMap<String, [(i64, i64); 3]>>,
    pub hours: Arc<HashMap<String, Hours>>,
    pub latency: HashMap<String, Vec<view::Sample>>,
}

/// Where facts come from (the API's state, taken apart).
pub struct Sources<'a> {
    pub store: &'a Store,
    pub snapshot: Arc<Snapshot>,
    pub live: LiveState,
    pub now: DateTime<Utc>,
}

#[derive(Default)]
struct Cache {
    facts: Option<(Instant, u64, Arc<Facts>)>,
    rollups: Option<(Instant, Rollups)>,
}

#[derive(Clone, Default)]
struct Rollups {
    uptime: Arc<HashMap<String, [(i64, i64); 3]>>,
    hours: Arc<HashMap<String, Hours>>,
}

struct Inner {
    settings: Settings,
    threshold_ms: u64,
    latency: Arc<Mutex<latency::Rings>>,
    cache: tokio::sync::Mutex<Cache>,
    stop: watch::Receiver<bool>,
}

/// The status page's shared state (cheap to clone).
#[derive(Clone)]
pub struct Page(Arc<Inner>);

impl Page {
    /// `snapshots` feeds the latency rings (a task that ends with the
    /// monitor); `stop` turns true when the server starts shutting down, and
    /// ends every live stream so the shutdown does not wait for them.
    pub fn new(
        settings: Settings,
        threshold_ms: u64,
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        stop: watch::Receiver<bool>,
    ) -> Page {
        let latency = Arc::new(Mutex::new(latency::Rings::default()));
        let rings = latency.clone();
        tokio::spawn(async move {
            loop {
                let snap = snapshots.borrow_and_update().clone();
                rings.lock().expect("latency rings").feed(&snap.targets);
                if snapshots.changed().await.is_err() {
                    return;
                }
            }
        });
        Page(Arc::new(Inner {
            settings,
            threshold_ms,
            latency,
            cache: tokio::sync::Mutex::new(Cache::default()),
            stop,
        }))
    }

    pub fn threshold_ms(&self) -> u64 {
        self.0.threshold_ms
    }

    pub fn access(&self) -> Access {
        self.0.settings.access
    }

    /// A receiver that turns true at shutdown.
    pub fn stopping(&self) -> watch::Receiver<bool> {
        self.0.stop.clone()
    }

    /// Whether a viewer presenting `token` (query or bearer) may look.
    pub fn authorize(
        &self,
        token: Option<&str>,
        admin: Option<&SecretString>,
    ) -> Result<(), Denied> {
        match self.0.settings.access {
            Access::Public => Ok(()),
            Access::Off => Err(Denied::Off),
            Access::Token => {
                let Some(t) = token.map(str::trim) else {
                    return Err(Denied::Token);
                };
                let ok = |s: Option<&SecretString>| {
                    s.is_some_and(|s| crate::check::secrets_equal(s.expose_secret(), t))
                };
                if ok(self.0.settings.viewer_token.as_ref()) || ok(admin) {
                    Ok(())
                } else {
                    Err(Denied::Token)
                }
            }
        }
    }

    /// The current facts: reused while fresh and no snapshot came since.
    pub async fn facts(&self, src: Sources<'_>) -> Result<Arc<Facts>, StoreError> {
        let mut cache = self.0.cache.lock().await;
        if let Some((at, version, facts)) = &cache.facts {
            if *version == src.snapshot.version && at.elapsed() < FRESH {
                return Ok(facts.clone());
            }
        }
        let checks = src.store.list_checks().await?;
        let rollups = match &cache.rollups {
            Some((at, r)) if at.elapsed() < ROLLUP_EVERY => r.clone(),
            _ => {
                let r = advance_rollups(src.store, &checks, src.now).await?;
                cache.rollups = Some((Instant::now(), r.clone()));
                r
            }
        };
        let events = src
            .store
            .recent_events(view::TIMELINE as i64 + 1, 0)
            .await?;
        let deliveries = deliveries_of(src.store, &events).await?;
        let facts = Arc::new(Facts {
            now: src.now,
            live: src.live,
            checks,
            events,
            deliveries,
            uptime: rollups.uptime,
            hours: rollups.hours,
            latency: self.0.latency.lock().expect("latency rings").samples(),
            snapshot: src.snapshot.clone(),
        });
        cache.facts = Some((Instant::now(), src.snapshot.version, facts.clone()));
        Ok(facts)
    }

    /// The view of `facts` for one viewer's page; `older` replaces the
    /// timeline for pages after the first (`?tpage=`).
    pub fn view(
        &self,
        facts: &Facts,
        rollback: &crate::rollback::RollbackSettings,
        page: usize,
        older: Option<(usize, &[EventRow], &[Delivery])>,
    ) -> view::View {
        let (tpage, events, deliveries) =
            older.unwrap_or((1, facts.events.as_slice(), facts.deliveries.as_slice()));
        view::build(&view::Input {
            now: facts.now,
            checks: &facts.checks,
            live: &facts.live,
            last_toggle: facts.snapshot.control.last_toggle.as_ref(),
            rollback_state: &facts.snapshot.control.rollback,
            rollback,
            targets: &facts.snapshot.targets,
            latency: &facts.latency,
            threshold_ms: self.0.threshold_ms,
            events,
            deliveries,
            uptime: &facts.uptime,
            hours: &facts.hours,
            page,
            timeline_page: tpage,
            timeline_more: events.len() > view::TIMELINE,
        })
    }
}

/// An older page of the timeline (not cached: rarely looked at).
pub async fn older_events(
    store: &Store,
    tpage: usize,
) -> Result<(Vec<EventRow>, Vec<Delivery>), StoreError> {
    let offset = (tpage.saturating_sub(1) * view::TIMELINE) as i64;
    let events = store
        .recent_events(view::TIMELINE as i64 + 1, offset)
        .await?;
    let deliveries = deliveries_of(store, &events).await?;
    Ok((events, deliveries))
}

async fn deliveries_of(store: &Store, events: &[EventRow]) -> Result<Vec<Delivery>, StoreError> {
    match (
        events.iter().map(|e| e.id).min(),
        events.iter().map(|e| e.id).max(),
    ) {
        (Some(first), Some(last)) => store.deliveries(first, last).await,
        _ => Ok(Vec::new()),
    }
}

async fn advance_rollups(
    store: &Store,
    checks: &[CheckRow],
    now: DateTime<Utc>,
) -> Result<Rollups, StoreError> {
    let current: Vec<(String, Health, DateTime<Utc>)> = checks
        .iter()
        .map(|c| (c.name.clone(), Health::of_state(&c.state), c.since))
        .collect();
    store.advance_rollups(&current, now).await?;
    store.prune_rollups(now, KEEP_HOURS).await?;
    Ok(Rollups {
        uptime: Arc::new(store.rollup_sums(now).await?),
        hours: Arc::new(store.rollup_hours(now, 24).await?),
    })
}
