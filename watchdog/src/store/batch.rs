//! The one write path: [`Store::commit`] writes a batch of the monitor's
//! changes in ONE transaction: check runtimes, pings, events (with the
//! silence that kept each from notifying), the notifications planned for
//! them, probe target states, control ledger changes and silences. A
//! report is one commit; a switch and its event are one commit.

use super::{to_ms, Store, StoreError};
use crate::alerting::{Planned, Silence};
use crate::event::Event;
use crate::ledger::{ControlChange, RollbackState};
use crate::reports::TargetState;
use crate::state::Runtime;
use chrono::{DateTime, Utc};
use sqlx::SqliteConnection;

/// One check's new runtime.
pub struct RuntimeUpdate<'a> {
    pub id: i64,
    pub runtime: &'a Runtime,
    pub ping_count: i64,
}

/// One received ping, written into the check's ring.
#[derive(Debug, Clone)]
pub struct PingRow {
    pub check_id: i64,
    pub slot: i64,
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub instance: Option<String>,
    pub detail: Option<String>,
}

/// A silence created or ended by an operator.
#[derive(Debug, Clone)]
pub enum SilenceChange {
    Add(Silence),
    /// Ends silence `id` at the batch's time.
    End(i64),
}

/// Everything one batch writes.
#[derive(Default)]
pub struct Write<'a> {
    pub runtimes: Vec<RuntimeUpdate<'a>>,
    pub pings: &'a [PingRow],
    /// The batch's events followed by the plan's notices.
    pub events: Vec<&'a Event>,
    /// Per event: the silence that kept it from notifying.
    pub silenced: &'a [Option<String>],
    pub notifications: &'a [Planned],
    pub targets: Vec<&'a TargetState>,
    pub control: &'a [ControlChange],
    /// The rollback state after `control`, when it changed.
    pub rollback: Option<&'a RollbackState>,
    pub silences: &'a [SilenceChange],
}

/// The ids the batch's rows received.
#[derive(Debug, Clone, Default)]
pub struct Committed {
    /// Per event in `Write::events`.
    pub events: Vec<i64>,
    /// Per change in `Write::control`.
    pub control: Vec<i64>,
    /// Per change in `Write::silences` (the ended silence's own id for `End`).
    pub silences: Vec<i64>,
}

impl Store {
    /// Writes `w` in one transaction.
    pub async fn commit(&self, w: &Write<'_>, now: DateTime<Utc>) -> Result<Committed, StoreError> {
        let mut tx = self.pool.begin().await?;
        write_runtimes(&mut tx, &w.runtimes, now).await?;
        write_pings(&mut tx, w.pings).await?;
        let events = insert_events(&mut tx, &w.events, w.silenced, now).await?;
        // Many rows per statement: a mass outage's notifications cost one
        // round trip per 100, not one each.
        for chunk in w.notifications.chunks(100) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO notifications (event_id, channel, group_key, payload, state, next_attempt_at, created_at) ",
            );
            qb.push_values(chunk, |mut b, n| {
                let mut notification = n.notification.clone();
                notification.event_id = events[n.event];
                b.push_bind(notification.event_id)
                    .push_bind(n.channel)
                    .push_bind(n.group.clone())
                    .push_bind(
                        serde_json::to_string(&notification).expect("notification serializes"),
                    )
                    .push_bind("pending")
                    .push_bind(to_ms(now))
                    .push_bind(to_ms(now));
            });
            qb.build().execute(&mut *tx).await?;
        }
        for s in &w.targets {
            sqlx::query(
                "INSERT OR REPLACE INTO targets (observer, target, state) VALUES (?, ?, ?)",
            )
            .bind(&s.observer)
            .bind(s.target.as_str())
            .bind(serde_json::to_string(s).expect("target state serializes"))
            .execute(&mut *tx)
            .await?;
        }
        let mut control = Vec::with_capacity(w.control.len());
        for c in w.control {
            control.push(write_control(&mut tx, c).await?);
        }
        if let Some(r) = w.rollback {
            sqlx::query(
                "INSERT OR REPLACE INTO rollback_state (id, latched, latched_at, latch_reason, disabled, \
                 last_automatic_at) VALUES (1, ?, ?, ?, ?, ?)",
            )
            .bind(r.latched)
            .bind(r.latched_at.map(to_ms))
            .bind(&r.latch_reason)
            .bind(r.disabled)
            .bind(r.last_automatic_at.map(to_ms))
            .execute(&mut *tx)
            .await?;
        }
        let mut silences = Vec::with_capacity(w.silences.len());
        for s in w.silences {
            silences.push(match s {
                SilenceChange::Add(s) => {
                    sqlx::query_scalar(
                        "INSERT INTO silences (target, until, reason, created_at) VALUES (?, ?, ?, ?) RETURNING id",
                    )
                    .bind(&s.target)
                    .bind(to_ms(s.until))
                    .bind(&s.reason)
                    .bind(to_ms(s.created_at))
                    .fetch_one(&mut *tx)
                    .await?
                }
                SilenceChange::End(id) => {
                    sqlx::query("UPDATE silences SET until = ? WHERE id = ? AND until > ?")
                        .bind(to_ms(now))
                        .bind(id)
                        .bind(to_ms(now))
                        .execute(&mut *tx)
                        .await?;
                    *id
                }
            });
        }
        tx.commit().await?;
        Ok(Committed {
            events,
            control,
            silences,
        })
    }
}

async fn write_control(tx: &mut SqliteConnection, c: &ControlChange) -> Result<i64, sqlx::Error> {
    Ok(match c {
        ControlChange::Toggle(t) => sqlx::query(
            "INSERT INTO toggles (at, from_color, to_color, automatic, reason, ok, error) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(to_ms(t.at))
        .bind(t.from.map(bgw_wire::Color::as_str))
        .bind(t.to.as_str())
        .bind(t.automatic)
        .bind(&t.reason)
        .bind(t.ok)
        .bind(&t.error)
        .execute(&mut *tx)
        .await?
        .last_insert_rowid(),
        ControlChange::Deploy(d) => {
            sqlx::query("INSERT INTO deploys (at, color, image, ok, output) VALUES (?, ?, ?, ?, ?)")
                .bind(to_ms(d.at))
                .bind(d.color.as_str())
                .bind(&d.image)
                .bind(d.ok)
                .bind(&d.output)
                .execute(&mut *tx)
                .await?
                .last_insert_rowid()
        }
        ControlChange::Arm(_) => 0,
    })
}

async fn write_runtimes(
    conn: &mut SqliteConnection,
    updates: &[RuntimeUpdate<'_>],
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    // Many checks per statement (UPDATE ... FROM VALUES): a deadline that
    // takes a thousand checks down is a dozen statements, not a thousand.
    for chunk in updates.chunks(100) {
        let mut qb = sqlx::QueryBuilder::new(
            "UPDATE checks SET state = v.column2, runtime = v.column3, \
             next_deadline = v.column4, ping_count = v.column5, updated_at = ",
        );
        qb.push_bind(to_ms(now));
        qb.push(" FROM (");
        qb.push_values(chunk, |mut b, u| {
            b.push_bind(u.id)
                .push_bind(u.runtime.state.as_str())
                .push_bind(serde_json::to_string(u.runtime).expect("runtime serializes"))
                .push_bind(u.runtime.next_deadline().map(to_ms))
                .push_bind(u.ping_count);
        });
        qb.push(") AS v WHERE checks.id = v.column1");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn write_pings(conn: &mut SqliteConnection, pings: &[PingRow]) -> Result<(), sqlx::Error> {
    // Many rows per statement: the batch's pings cost one round trip per 100.
    for chunk in pings.chunks(100) {
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT OR REPLACE INTO pings (check_id, slot, at, kind, instance, detail) ",
        );
        qb.push_values(chunk, |mut b, p| {
            b.push_bind(p.check_id)
                .push_bind(p.slot)
                .push_bind(to_ms(p.at))
                .push_bind(p.kind)
                .push_bind(p.instance.clone())
                .push_bind(p.detail.clone());
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts events (flattened once, here), returning their ids in order.
/// Many rows per statement: within the writer's transaction SQLite gives
/// the rows of one multi-row insert consecutive ids ending at
/// `last_insert_rowid` (an `INTEGER PRIMARY KEY` without AUTOINCREMENT takes
/// the largest id + 1), so the ids are known without reading them back.
pub(super) async fn insert_events(
    conn: &mut SqliteConnection,
    events: &[impl std::borrow::Borrow<Event>],
    silenced: &[Option<String>],
    noticed: DateTime<Utc>,
) -> Result<Vec<i64>, sqlx::Error> {
    let mut ids = Vec::with_capacity(events.len());
    for (chunk_no, chunk) in events.chunks(80).enumerate() {
        let mut qb = sqlx::QueryBuilder::new(
            "INSERT INTO events (at, noticed_at, check_name, kind, from_state, to_state, instance, color, \
             reason, down_for_ms, silenced, data) ",
        );
        qb.push_values(chunk.iter().enumerate(), |mut b, (i, e)| {
            let e: &Event = e.borrow();
            let c = e.columns();
            b.push_bind(to_ms(e.at))
                .push_bind(to_ms(noticed))
                .push_bind(c.check)
                .push_bind(c.kind)
                .push_bind(c.from_state.map(|s| s.as_str()))
                .push_bind(c.to_state.map(|s| s.as_str()))
                .push_bind(c.instance)
                .push_bind(c.color.map(bgw_wire::Color::as_str))
                .push_bind(c.reason)
                .push_bind(c.down_for.map(|d| d.as_millis() as i64))
                .push_bind(silenced.get(chunk_no * 80 + i).cloned().flatten())
                .push_bind(c.data.as_ref().map(|d| d.to_string()));
        });
        let last = qb.build().execute(&mut *conn).await?.last_insert_rowid();
        let n = chunk.len() as i64;
        ids.extend(last - n + 1..=last);
    }
    Ok(ids)
}

impl From<StoreError> for sqlx::Error {
    fn from(e: StoreError) -> sqlx::Error {
        match e {
            StoreError::Sql(e) => e,
            other => sqlx::Error::Protocol(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;

    #[tokio::test]
    async fn events_inserted_many_per_statement_get_the_ids_they_are_stored_under() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("w.db").to_str().unwrap())
            .await
            .unwrap();
        let now = Utc::now();
        let events: Vec<Event> = (0..250)
            .map(|i| {
                Event::new(
                    now,
                    EventKind::Config {
                        check: format!("check-{i}"),
                        reason: "added".into(),
                    },
                )
            })
            .collect();
        for _ in 0..2 {
            let w = Write {
                events: events.iter().collect(),
                ..Write::default()
            };
            let ids = store.commit(&w, now).await.unwrap().events;
            assert_eq!(ids.len(), 250);
            for (i, id) in ids.iter().enumerate() {
                let row = store
                    .events(crate::store::Since::Id(id - 1), None, 1)
                    .await
                    .unwrap();
                assert_eq!(row[0].id, *id);
                assert_eq!(row[0].check.as_deref(), Some(format!("check-{i}").as_str()));
            }
        }
    }
}
