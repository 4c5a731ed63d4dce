//! The durable outbox: notifications are rows written in the same
//! transaction as the events that cause them, then delivered by one worker
//! per channel (so a slow or dead channel never delays another) with
//! exponential backoff and jitter, honouring `Retry-After`, until delivered
//! or refused for good. A refusal is itself an event, alerted on the other
//! channels. After a crash, pending rows are simply picked up again: a crash
//! between a send and its commit can repeat that one message, never lose it.
//!
//! Also here: the timers that create notifications without an event from a
//! check (reminders while a check stays down, the all-is-well summary).

use crate::alerting::{self, Policy};
use crate::metrics::Metrics;
use crate::monitor::Monitor;
use crate::schedule::Cadence;
use crate::store::{from_ms, to_ms, NewEvent};
use bgw_notify::{Channel, Kind, Notification, SendError};
use bgw_wire::Color;
use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection, SqlitePool};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// What `enqueue` needs to know, fixed at start.
#[derive(Debug, Clone)]
pub struct Planner {
    pub channels: Vec<&'static str>,
    pub policy: Policy,
    /// Where the live color is read from, to name it in messages.
    pub live_file: Option<PathBuf>,
    /// When this watchdog process started.
    pub started: DateTime<Utc>,
    /// A check whose deadline passed while the watchdog was not running is
    /// down at once, but its alert is held this long (`startup_grace`): the
    /// silence may have been the watchdog's own, and an agent that is alive
    /// re-delivers within seconds. If the check recovers meanwhile, neither
    /// the down nor the up is sent (both events say so).
    pub hold_after_start: Duration,
}

impl Planner {
    fn live(&self) -> Option<Color> {
        self.live_file
            .as_deref()
            .and_then(|p| crate::proxy::read_live(p).color())
    }
}

/// Inside the events' transaction: marks silenced and flapping events, and
/// writes one pending notification per (event, channel).
pub async fn enqueue(
    conn: &mut SqliteConnection,
    planner: &Planner,
    events: &[(i64, NewEvent)],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if planner.channels.is_empty() {
        return Ok(());
    }
    let mut live = None;
    for (id, e) in events {
        let Some(kind) = alerting::classify(e) else {
            continue;
        };
        if let Some(silence) = active_silence(conn, e, now).await? {
            sqlx::query("UPDATE events SET silenced = ? WHERE id = ?")
                .bind(&silence)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            continue;
        }
        if alerting::is_flip(e) && flapping(conn, planner, e, now).await? {
            sqlx::query("UPDATE events SET silenced = 'flapping' WHERE id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            continue;
        }
        if kind == Kind::Up && cancel_held_down(conn, e, *id, now).await? {
            continue;
        }
        let live = *live.get_or_insert_with(|| planner.live());
        let n = alerting::notification(*id, e, kind, live);
        let not_before = match kind {
            Kind::Down if e.at < planner.started => planner.started + planner.hold_after_start,
            _ => now,
        };
        insert(conn, planner, *id, e, kind, &n, now, not_before.max(now)).await?;
    }
    Ok(())
}

/// A recovery that comes while the check's down alert is still held (see
/// [`Planner::hold_after_start`]) cancels that alert and is itself quiet.
async fn cancel_held_down(
    conn: &mut SqliteConnection,
    e: &NewEvent,
    up_id: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let held: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT n.id, n.event_id FROM notifications n JOIN events ev ON ev.id = n.event_id \
         WHERE n.state = 'pending' AND n.attempts = 0 AND n.next_attempt_at > ? AND ev.check_name = ? AND ev.to_state = 'down'",
    )
    .bind(to_ms(now))
    .bind(&e.check)
    .fetch_all(&mut *conn)
    .await?;
    if held.is_empty() {
        return Ok(false);
    }
    let why = "recovered while its alert was held after a watchdog restart: the silence was the watchdog's";
    for (notification, event) in &held {
        sqlx::query("UPDATE notifications SET state = 'cancelled', last_error = ? WHERE id = ?")
            .bind(why)
            .bind(notification)
            .execute(&mut *conn)
            .await?;
        sqlx::query("UPDATE events SET silenced = ? WHERE id IN (?, ?)")
            .bind(why)
            .bind(event)
            .bind(up_id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}

#[allow(clippy::too_many_arguments)]
async fn insert(
    conn: &mut SqliteConnection,
    planner: &Planner,
    event_id: i64,
    e: &NewEvent,
    kind: Kind,
    n: &Notification,
    now: DateTime<Utc>,
    not_before: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_string(n).expect("notification serializes");
    let group = alerting::group_key(kind, e);
    // A channel that gave up is told by the others, not by itself.
    let skip = (kind == Kind::DeliveryFailed).then_some(n.check.as_str());
    for channel in planner.channels.iter().filter(|c| Some(**c) != skip) {
        sqlx::query(
            "INSERT INTO notifications (event_id, channel, group_key, payload, state, next_attempt_at, created_at) \
             VALUES (?, ?, ?, ?, 'pending', ?, ?)",
        )
        .bind(event_id)
        .bind(channel)
        .bind(&group)
        .bind(&payload)
        .bind(to_ms(not_before))
        .bind(to_ms(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn active_silence(
    conn: &mut SqliteConnection,
    e: &NewEvent,
    now: DateTime<Utc>,
) -> Result<Option<String>, sqlx::Error> {
    if matches!(e.kind, "delivery_failed" | "all_is_well") {
        return Ok(None);
    }
    let rows = sqlx::query("SELECT id, target, until, reason FROM silences WHERE until > ?")
        .bind(to_ms(now))
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.iter().find_map(|r| {
        let target: String = r.get("target");
        alerting::silence_covers(&target, e).then(|| {
            format!(
                "silence #{} on {target} until {} ({})",
                r.get::<i64, _>("id"),
                from_ms(r.get("until")).format("%Y-%m-%d %H:%M:%SZ"),
                r.get::<String, _>("reason")
            )
        })
    }))
}

/// Counts the check's flips in the window (this one included). Past the
/// threshold the check is flapping: one `flapping` event (and notice) is
/// written, and its flips stay quiet until it settles.
async fn flapping(
    conn: &mut SqliteConnection,
    planner: &Planner,
    e: &NewEvent,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let since = to_ms(now) - planner.policy.flap_window.as_millis() as i64;
    let flips: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE check_name = ? AND kind = 'state' \
         AND (to_state = 'down' OR (from_state = 'down' AND to_state = 'up')) AND at >= ?",
    )
    .bind(&e.check)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    if flips <= i64::from(planner.policy.flap_threshold) {
        return Ok(false);
    }
    let noticed: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM events WHERE check_name = ? AND kind = 'flapping' AND at >= ?",
    )
    .bind(&e.check)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    if noticed == 0 {
        let notice = NewEvent {
            at: now,
            check: e.check.clone(),
            kind: "flapping",
            color: e.color.clone(),
            reason: format!(
                "{flips} state changes in {}: notifications paused until it settles (the last state is {})",
                bgw_wire::format_duration(planner.policy.flap_window),
                e.to_state.map_or("unknown", |s| s.as_str())
            ),
            ..Default::default()
        };
        let ids = crate::store::insert_events(conn, std::slice::from_ref(&notice), now).await?;
        let n = alerting::notification(ids[0], &notice, Kind::Flapping, planner.live());
        insert(conn, planner, ids[0], &notice, Kind::Flapping, &n, now, now).await?;
    }
    Ok(true)
}

/// How a channel is doing, for `/healthz`.
#[derive(Debug, Default)]
pub struct ChannelHealth {
    pub name: &'static str,
    pub consecutive_failures: AtomicU32,
    pub last_error: Mutex<Option<String>>,
}

impl ChannelHealth {
    /// A channel "keeps failing" after three failed attempts in a row.
    pub fn failing(&self) -> bool {
        self.consecutive_failures.load(Relaxed) >= 3
    }
}

/// Shared by the channel workers.
#[derive(Clone)]
pub struct Delivery {
    pub pool: SqlitePool,
    pub monitor: Monitor,
    pub metrics: Arc<Metrics>,
    pub group_window: Duration,
}

/// Delivers `channel`'s pending notifications until `stop` turns true.
pub async fn run_channel(
    d: Delivery,
    channel: Channel,
    health: Arc<ChannelHealth>,
    mut wake: watch::Receiver<u64>,
    mut stop: watch::Receiver<bool>,
) {
    let name = channel.name();
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Utc::now();
        let wait = match next_due(&d.pool, name).await {
            Err(e) => {
                tracing::error!(channel = name, error = %e, "outbox read failed");
                Some(Duration::from_secs(1))
            }
            Ok(None) => None,
            Ok(Some(row)) => {
                let ready = row.ready_at(d.group_window);
                if ready > now {
                    Some((ready - now).to_std().unwrap_or_default())
                } else {
                    deliver(&d, &channel, &health, row).await;
                    continue;
                }
            }
        };
        let sleep = async {
            match wait {
                Some(w) => tokio::time::sleep(w).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sleep => {}
            r = wake.changed() => { if r.is_err() { return; } }
            _ = stop.changed() => {}
        }
    }
}

struct Row_ {
    id: i64,
    group_key: Option<String>,
    payload: String,
    attempts: i64,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

impl Row_ {
    fn ready_at(&self, group_window: Duration) -> DateTime<Utc> {
        let grouped = match (&self.group_key, self.attempts) {
            (Some(_), 0) => self.created_at + group_window,
            _ => self.created_at,
        };
        grouped.max(self.next_attempt_at)
    }
}

async fn next_due(pool: &SqlitePool, channel: &str) -> Result<Option<Row_>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, group_key, payload, attempts, next_attempt_at, created_at FROM notifications \
         WHERE channel = ? AND state = 'pending' ORDER BY next_attempt_at, id LIMIT 1",
    )
    .bind(channel)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| Row_ {
        id: r.get("id"),
        group_key: r.get("group_key"),
        payload: r.get("payload"),
        attempts: r.get("attempts"),
        next_attempt_at: from_ms(r.get("next_attempt_at")),
        created_at: from_ms(r.get("created_at")),
    }))
}

async fn deliver(d: &Delivery, channel: &Channel, health: &ChannelHealth, row: Row_) {
    let name = channel.name();
    // Gather the rest of the group: same key, same channel, still pending,
    // created within the window of the first.
    let mut ids = vec![row.id];
    let mut payloads = vec![row.payload.clone()];
    if let Some(key) = &row.group_key {
        let until = row.created_at + d.group_window;
        match sqlx::query(
            "SELECT id, payload FROM notifications WHERE channel = ? AND state = 'pending' AND group_key = ? \
             AND id != ? AND created_at <= ? ORDER BY id",
        )
        .bind(name)
        .bind(key)
        .bind(row.id)
        .bind(to_ms(until))
        .fetch_all(&d.pool)
        .await
        {
            Ok(rows) => {
                for r in rows {
                    ids.push(r.get("id"));
                    payloads.push(r.get("payload"));
                }
            }
            Err(e) => tracing::error!(channel = name, error = %e, "outbox group read failed"),
        }
    }
    let group: Vec<Notification> = payloads
        .iter()
        .filter_map(|p| serde_json::from_str(p).ok())
        .collect();
    if group.is_empty() {
        let _ = mark(&d.pool, &ids, "failed", Some("unreadable payload")).await;
        return;
    }
    let message = alerting::merge(group);
    let result = channel.send(&message).await;
    let now = Utc::now();
    match result {
        Ok(()) => {
            health.consecutive_failures.store(0, Relaxed);
            d.metrics.deliveries.fetch_add(1, Relaxed);
            if let Err(e) = mark_delivered(&d.pool, &ids, now).await {
                tracing::error!(channel = name, error = %e, "delivered but not recorded; it may be sent again");
            }
            tracing::info!(channel = name, subject = %message.subject(), merged = ids.len(), "notification delivered");
        }
        Err(SendError::Transient {
            reason,
            retry_after,
        }) => {
            health.consecutive_failures.fetch_add(1, Relaxed);
            *health.last_error.lock().expect("health lock") = Some(reason.clone());
            d.metrics.delivery_failures.fetch_add(1, Relaxed);
            let attempts = row.attempts + 1;
            let delay = bgw_notify::retry_delay(attempts as u32, retry_after);
            let next = now + delay;
            tracing::warn!(channel = name, attempts, retry_in = %bgw_wire::format_duration(delay), error = %reason, "delivery failed; will retry");
            let _ = sqlx::query(
                "UPDATE notifications SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
            )
            .bind(attempts)
            .bind(to_ms(next))
            .bind(&reason)
            .bind(row.id)
            .execute(&d.pool)
            .await;
        }
        Err(SendError::Permanent { reason }) => {
            health.consecutive_failures.fetch_add(1, Relaxed);
            *health.last_error.lock().expect("health lock") = Some(reason.clone());
            d.metrics.delivery_failures.fetch_add(1, Relaxed);
            tracing::error!(channel = name, error = %reason, "delivery refused for good");
            let _ = mark(&d.pool, &ids, "failed", Some(&reason)).await;
            let event = NewEvent {
                at: now,
                check: Some(name.to_string()),
                kind: "delivery_failed",
                reason: format!("{name} refused \"{}\": {reason}", message.subject()),
                data: Some(serde_json::json!({ "channel": name, "notification": row.id })),
                ..Default::default()
            };
            if let Err(e) = d.monitor.record(vec![event]).await {
                tracing::error!(error = %e, "could not record the delivery failure");
            }
        }
    }
}

async fn mark(
    pool: &SqlitePool,
    ids: &[i64],
    state: &str,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for id in ids {
        sqlx::query(
            "UPDATE notifications SET state = ?, last_error = COALESCE(?, last_error) WHERE id = ?",
        )
        .bind(state)
        .bind(error)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await
}

async fn mark_delivered(
    pool: &SqlitePool,
    ids: &[i64],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for (i, id) in ids.iter().enumerate() {
        sqlx::query("UPDATE notifications SET state = ?, delivered_at = ?, attempts = attempts + 1, merged_into = ? WHERE id = ?")
            .bind(if i == 0 { "delivered" } else { "merged" })
            .bind(to_ms(now))
            .bind((i > 0).then_some(ids[0]))
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// A notification row as the API shows it.
#[derive(Debug, serde::Serialize)]
pub struct NotificationRow {
    pub id: i64,
    pub event_id: Option<i64>,
    pub channel: String,
    pub state: String,
    pub attempts: i64,
    pub subject: String,
    pub created_at: DateTime<Utc>,
    pub next_attempt_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub merged_into: Option<i64>,
    pub last_error: Option<String>,
}

pub async fn list(
    pool: &SqlitePool,
    state: Option<&str>,
    limit: i64,
) -> Result<Vec<NotificationRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_id, channel, state, attempts, payload, created_at, next_attempt_at, delivered_at, \
         merged_into, last_error FROM notifications WHERE (? IS NULL OR state = ?) ORDER BY id DESC LIMIT ?",
    )
    .bind(state)
    .bind(state)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| NotificationRow {
            id: r.get("id"),
            event_id: r.get("event_id"),
            channel: r.get("channel"),
            state: r.get("state"),
            attempts: r.get("attempts"),
            subject: serde_json::from_str::<Notification>(r.get::<&str, _>("payload"))
                .map(|n| n.subject())
                .unwrap_or_default(),
            created_at: from_ms(r.get("created_at")),
            next_attempt_at: from_ms(r.get("next_attempt_at")),
            delivered_at: r.get::<Option<i64>, _>("delivered_at").map(from_ms),
            merged_into: r.get("merged_into"),
            last_error: r.get("last_error"),
        })
        .collect())
}

/// Age of the oldest pending notification, for `/metrics`.
pub async fn oldest_pending(pool: &SqlitePool) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    let ms: Option<i64> =
        sqlx::query_scalar("SELECT MIN(created_at) FROM notifications WHERE state = 'pending'")
            .fetch_one(pool)
            .await?;
    Ok(ms.map(from_ms))
}

/// Reminders while checks stay down, and the all-is-well summary on its
/// cron schedule. Both are recorded as events, so they go through the same
/// outbox and survive restarts: the next one is computed from the last one
/// recorded.
pub async fn run_timers(
    pool: SqlitePool,
    monitor: Monitor,
    repeat: Option<Duration>,
    all_is_well: Option<Cadence>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let now = Utc::now();
        // A check that goes down is noticed within this poll; its reminders
        // are then timed exactly from when it went down.
        let poll = repeat
            .filter(|r| !r.is_zero())
            .map_or(Duration::from_secs(60), |r| {
                (r / 2).min(Duration::from_secs(60))
            });
        let mut next = now + poll;
        match timers_due(&pool, repeat, all_is_well.as_ref(), now).await {
            Ok((events, due)) => {
                if let Some(d) = due {
                    next = next.min(d);
                }
                if !events.is_empty() {
                    if let Err(e) = monitor.record(events).await {
                        tracing::error!(error = %e, "could not record reminders");
                    }
                    continue;
                }
            }
            Err(e) => tracing::error!(error = %e, "reminder timer failed"),
        }
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn timers_due(
    pool: &SqlitePool,
    repeat: Option<Duration>,
    all_is_well: Option<&Cadence>,
    now: DateTime<Utc>,
) -> Result<(Vec<NewEvent>, Option<DateTime<Utc>>), sqlx::Error> {
    let mut events = Vec::new();
    let mut due: Option<DateTime<Utc>> = None;
    if let Some(repeat) = repeat.filter(|r| !r.is_zero()) {
        let rows = sqlx::query(
            "SELECT c.name, c.color, c.runtime, \
             (SELECT MAX(at) FROM events e WHERE e.check_name = c.name AND e.kind = 'reminder') AS last \
             FROM checks c WHERE c.state = 'down' AND c.retired_at IS NULL",
        )
        .fetch_all(pool)
        .await?;
        for r in rows {
            let Ok(rt) = serde_json::from_str::<crate::state::Runtime>(r.get::<&str, _>("runtime"))
            else {
                continue;
            };
            let Some(since) = rt.down_since else { continue };
            let at = alerting::next_reminder(
                repeat,
                since,
                r.get::<Option<i64>, _>("last").map(from_ms),
            );
            if at <= now {
                events.push(NewEvent {
                    at: now,
                    check: Some(r.get("name")),
                    kind: "reminder",
                    color: r.get("color"),
                    to_state: Some(crate::state::State::Down),
                    reason: format!(
                        "still down since {}: {}",
                        since.format("%Y-%m-%d %H:%M:%SZ"),
                        rt.reason
                    ),
                    down_for: (now - since).to_std().ok(),
                    ..Default::default()
                });
            } else {
                due = Some(due.map_or(at, |d| d.min(at)));
            }
        }
    }
    if let Some(cadence) = all_is_well {
        // From the last summary sent, or the watchdog's first start: a summary
        // due while the watchdog was down is sent once, at start.
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT COALESCE((SELECT MAX(at) FROM events WHERE kind = 'all_is_well'), (SELECT MIN(at) FROM events))",
        )
        .fetch_one(pool)
        .await?;
        let last = last.map(from_ms).unwrap_or(now);
        let at = cadence.next_expected(last);
        if at <= now {
            let checks = crate::store::list_checks(pool).await.map_err(|e| match e {
                crate::store::StoreError::Sql(e) => e,
                other => sqlx::Error::Protocol(other.to_string()),
            })?;
            let members: Vec<bgw_notify::Member> = checks
                .iter()
                .map(|c| bgw_notify::Member {
                    check: c.name.clone(),
                    color: c.color.as_deref().and_then(|s| s.parse().ok()),
                    state: c.state.clone(),
                    reason: c.reason.clone(),
                })
                .collect();
            let down = members.iter().filter(|m| m.state == "down").count();
            events.push(NewEvent {
                at: now,
                kind: "all_is_well",
                check: Some("all-is-well".into()),
                reason: format!("{} checks, {down} down", members.len()),
                data: Some(serde_json::json!({ "members": members })),
                ..Default::default()
            });
        } else {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
    }
    Ok((events, due))
}

/// Silences: create, list, expire by themselves (they simply stop matching).
pub async fn add_silence(
    pool: &SqlitePool,
    target: &str,
    until: DateTime<Utc>,
    reason: &str,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO silences (target, until, reason, created_at) VALUES (?, ?, ?, ?) RETURNING id",
    )
    .bind(target)
    .bind(to_ms(until))
    .bind(reason)
    .bind(to_ms(Utc::now()))
    .fetch_one(pool)
    .await
}

pub async fn active_silences(pool: &SqlitePool) -> Result<Vec<serde_json::Value>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, target, until, reason, created_at FROM silences WHERE until > ? ORDER BY id",
    )
    .bind(to_ms(Utc::now()))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.get::<i64, _>("id"),
                "target": r.get::<String, _>("target"),
                "until": from_ms(r.get("until")),
                "reason": r.get::<String, _>("reason"),
                "created_at": from_ms(r.get("created_at")),
            })
        })
        .collect())
}

/// Ends a silence now. Returns whether it existed.
pub async fn end_silence(pool: &SqlitePool, id: i64) -> Result<bool, sqlx::Error> {
    let done = sqlx::query("UPDATE silences SET until = ? WHERE id = ? AND until > ?")
        .bind(to_ms(Utc::now()))
        .bind(id)
        .bind(to_ms(Utc::now()))
        .execute(pool)
        .await?;
    Ok(done.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store;

    async fn pool() -> (tempfile::TempDir, SqlitePool) {
        let dir = tempfile::tempdir().unwrap();
        let pool = store::open(dir.path().join("w.db").to_str().unwrap())
            .await
            .unwrap();
        (dir, pool)
    }

    async fn insert_event(pool: &SqlitePool, e: NewEvent) {
        let mut conn = pool.acquire().await.unwrap();
        store::insert_events(&mut conn, &[e], Utc::now())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_all_is_well_summary_due_while_the_watchdog_was_down_is_sent_once() {
        let (_dir, pool) = pool().await;
        let now = Utc::now();
        let cadence = Cadence::cron("* * * * *", "UTC").unwrap();
        // The watchdog first started three minutes ago; no summary since.
        insert_event(
            &pool,
            NewEvent {
                at: now - chrono::TimeDelta::minutes(3),
                kind: "config",
                reason: "check added".into(),
                ..Default::default()
            },
        )
        .await;
        let (events, _) = timers_due(&pool, None, Some(&cadence), now).await.unwrap();
        assert_eq!(events.len(), 1, "one summary, not one per missed minute");
        assert_eq!(events[0].kind, "all_is_well");
        insert_event(&pool, events[0].clone()).await;
        let (events, next) = timers_due(&pool, None, Some(&cadence), now).await.unwrap();
        assert!(events.is_empty(), "already sent");
        assert!(next.unwrap() > now && next.unwrap() <= now + chrono::TimeDelta::minutes(1));
    }

    #[tokio::test]
    async fn reminders_are_due_every_repeat_after_going_down_and_counted_from_the_last() {
        let (_dir, pool) = pool().await;
        let now = Utc::now();
        let spec = crate::config::CheckSpec {
            name: "blue".into(),
            kind: crate::config::CheckKind::Reporter,
            cadence: Cadence::Period(Duration::from_secs(5)),
            grace: Duration::ZERO,
            token: None,
        };
        let rules = crate::monitor::rules_of(&spec);
        let (loaded, _) = store::sync_checks(
            &pool,
            &[(spec, rules.clone())],
            now - chrono::TimeDelta::hours(3),
        )
        .await
        .unwrap();
        let (down, _) = crate::state::observe(
            &rules,
            &loaded[0].runtime,
            crate::state::Signal::Fail {
                reason: "broken".into(),
            },
            now - chrono::TimeDelta::minutes(90),
        );
        let mut conn = pool.acquire().await.unwrap();
        store::write_runtimes(
            &mut conn,
            &[store::RuntimeUpdate {
                id: loaded[0].id,
                runtime: &down,
                ping_count: 0,
            }],
            now,
        )
        .await
        .unwrap();
        drop(conn);
        let hour = Some(Duration::from_secs(3600));
        let (events, _) = timers_due(&pool, hour, None, now).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "reminder");
        assert!(events[0].reason.contains("broken"), "{}", events[0].reason);
        let mut reminder = events[0].clone();
        reminder.at = now - chrono::TimeDelta::minutes(10);
        insert_event(&pool, reminder).await;
        let (events, next) = timers_due(&pool, hour, None, now).await.unwrap();
        assert!(events.is_empty(), "the next one is an hour after the last");
        let next = next.unwrap();
        assert!(
            (next - (now + chrono::TimeDelta::minutes(50)))
                .num_seconds()
                .abs()
                <= 1,
            "{next}"
        );
    }
}
