//! Persistence of blue/green control in SQLite (tables of
//! `migrations/0100_control.sql`): every switch of the live color, every
//! deploy, and the automatic rollback's latch; plus the deploy guard
//! (`deploy` refuses the live color) and `scale`.
//!
//! Queries are checked at run time (no database needed to compile); each is
//! covered by a test against a real SQLite file.

use crate::proxy::{
    run_command, CommandOutcome, LiveState, ProxySettings, SwitchError, SwitchReport, Switcher,
};
use crate::rollback::Toggle;
use bgw_wire::Color;
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::SqlitePool;

pub mod events;
mod executor;
#[cfg(test)]
mod tests;
pub mod watcher;

pub use executor::{evaluate_rollback, Evaluation, Observations};

/// A store error; never contains a value that was bound to a query.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control store: {0}")]
    Db(#[from] sqlx::Error),
    #[error("control store: corrupt {what}: {value:?}")]
    Corrupt { what: &'static str, value: String },
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(value: &str) -> Result<DateTime<Utc>, ControlError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ControlError::Corrupt {
            what: "timestamp",
            value: value.to_string(),
        })
}

fn parse_color(value: &str) -> Result<Color, ControlError> {
    value.parse().map_err(|_| ControlError::Corrupt {
        what: "color",
        value: value.to_string(),
    })
}

/// A switch to record, successful or not.
#[derive(Debug, Clone)]
pub struct NewToggle<'a> {
    pub at: DateTime<Utc>,
    pub from: Option<Color>,
    pub to: Color,
    pub automatic: bool,
    pub reason: &'a str,
    pub ok: bool,
    /// Why it failed (the switch error, with the command output).
    pub error: Option<&'a str>,
}

/// A recorded switch.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ToggleRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub from: Option<Color>,
    pub to: Color,
    pub automatic: bool,
    pub reason: String,
    pub ok: bool,
    pub error: Option<String>,
}

impl ToggleRecord {
    /// The form the rollback policy's view takes.
    pub fn as_toggle(&self) -> Toggle {
        Toggle {
            at: self.at,
            from: self.from,
            to: self.to,
            automatic: self.automatic,
        }
    }
}

/// Records a switch, and in the same transaction keeps the rollback state
/// true: an automatic attempt (even a failed one) starts the cooldown; a
/// successful automatic switch latches automatic rollback; a successful
/// manual switch releases the latch (the operator has taken over).
pub async fn record_toggle(pool: &SqlitePool, t: &NewToggle<'_>) -> Result<i64, ControlError> {
    let mut tx = pool.begin().await?;
    let id = sqlx::query(
        "INSERT INTO toggles (at, from_color, to_color, automatic, reason, ok, error)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(ts(t.at))
    .bind(t.from.map(Color::as_str))
    .bind(t.to.as_str())
    .bind(t.automatic)
    .bind(t.reason)
    .bind(t.ok)
    .bind(t.error)
    .execute(&mut *tx)
    .await?
    .last_insert_rowid();
    if t.automatic {
        sqlx::query("UPDATE rollback_state SET last_automatic_at = ? WHERE id = 1")
            .bind(ts(t.at))
            .execute(&mut *tx)
            .await?;
        if t.ok {
            sqlx::query("UPDATE rollback_state SET latched = 1, latched_at = ?, latch_reason = ? WHERE id = 1")
                .bind(ts(t.at))
                .bind(t.reason)
                .execute(&mut *tx)
                .await?;
        }
    } else if t.ok {
        sqlx::query("UPDATE rollback_state SET latched = 0, latched_at = NULL, latch_reason = NULL WHERE id = 1")
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(id)
}

type ToggleRow = (
    i64,
    String,
    Option<String>,
    String,
    bool,
    String,
    bool,
    Option<String>,
);

fn toggle_from_row(r: ToggleRow) -> Result<ToggleRecord, ControlError> {
    Ok(ToggleRecord {
        id: r.0,
        at: parse_ts(&r.1)?,
        from: r.2.as_deref().map(parse_color).transpose()?,
        to: parse_color(&r.3)?,
        automatic: r.4,
        reason: r.5,
        ok: r.6,
        error: r.7,
    })
}

/// The last successful switch (the one that made the current color live).
pub async fn last_toggle(pool: &SqlitePool) -> Result<Option<ToggleRecord>, ControlError> {
    let row: Option<ToggleRow> = sqlx::query_as(
        "SELECT id, at, from_color, to_color, automatic, reason, ok, error
         FROM toggles WHERE ok = 1 ORDER BY at DESC, id DESC LIMIT 1",
    )
    .fetch_optional(pool)
    .await?;
    row.map(toggle_from_row).transpose()
}

/// The last `limit` switches, failed ones included, newest first.
pub async fn toggles(pool: &SqlitePool, limit: u32) -> Result<Vec<ToggleRecord>, ControlError> {
    let rows: Vec<ToggleRow> = sqlx::query_as(
        "SELECT id, at, from_color, to_color, automatic, reason, ok, error
         FROM toggles ORDER BY at DESC, id DESC LIMIT ?",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(toggle_from_row).collect()
}

/// A recorded deploy.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeployRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub color: Color,
    pub image: String,
    pub ok: bool,
    pub output: String,
}

pub async fn record_deploy(
    pool: &SqlitePool,
    at: DateTime<Utc>,
    color: Color,
    image: &str,
    ok: bool,
    output: &str,
) -> Result<i64, ControlError> {
    Ok(
        sqlx::query("INSERT INTO deploys (at, color, image, ok, output) VALUES (?, ?, ?, ?, ?)")
            .bind(ts(at))
            .bind(color.as_str())
            .bind(image)
            .bind(ok)
            .bind(output)
            .execute(pool)
            .await?
            .last_insert_rowid(),
    )
}

/// Deploys to `color` at or after `since`, failed ones included (a failed
/// `docker service update` may have replaced some tasks), oldest first.
/// Any of them disarms rollback to that color.
pub async fn deploys_since(
    pool: &SqlitePool,
    color: Color,
    since: DateTime<Utc>,
) -> Result<Vec<DeployRecord>, ControlError> {
    let rows: Vec<(i64, String, String, String, bool, String)> = sqlx::query_as(
        "SELECT id, at, color, image, ok, output FROM deploys
         WHERE color = ? AND at >= ? ORDER BY at, id",
    )
    .bind(color.as_str())
    .bind(ts(since))
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(DeployRecord {
                id: r.0,
                at: parse_ts(&r.1)?,
                color: parse_color(&r.2)?,
                image: r.3,
                ok: r.4,
                output: r.5,
            })
        })
        .collect()
}

/// The state of automatic rollback (`bgw-watchdog rollback status`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct RollbackState {
    pub latched: bool,
    pub latched_at: Option<DateTime<Utc>>,
    pub latch_reason: Option<String>,
    pub disabled: bool,
    pub last_automatic_at: Option<DateTime<Utc>>,
}

type StateRow = (bool, Option<String>, Option<String>, bool, Option<String>);

pub async fn rollback_state(pool: &SqlitePool) -> Result<RollbackState, ControlError> {
    let row: Option<StateRow> = sqlx::query_as(
        "SELECT latched, latched_at, latch_reason, disabled, last_automatic_at
         FROM rollback_state WHERE id = 1",
    )
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else {
        return Ok(RollbackState::default());
    };
    Ok(RollbackState {
        latched: r.0,
        latched_at: r.1.as_deref().map(parse_ts).transpose()?,
        latch_reason: r.2,
        disabled: r.3,
        last_automatic_at: r.4.as_deref().map(parse_ts).transpose()?,
    })
}

/// Latches automatic rollback (normally done by [`record_toggle`]).
pub async fn set_latched(
    pool: &SqlitePool,
    at: DateTime<Utc>,
    reason: &str,
) -> Result<(), ControlError> {
    sqlx::query(
        "INSERT INTO rollback_state (id, latched, latched_at, latch_reason) VALUES (1, 1, ?, ?)
         ON CONFLICT (id) DO UPDATE SET latched = 1, latched_at = excluded.latched_at,
         latch_reason = excluded.latch_reason",
    )
    .bind(ts(at))
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// `rollback rearm`: releases the latch and undoes `rollback disable`.
/// The cooldown still applies (it is about time, not about the operator).
pub async fn rearm(pool: &SqlitePool) -> Result<(), ControlError> {
    sqlx::query(
        "INSERT INTO rollback_state (id) VALUES (1)
         ON CONFLICT (id) DO UPDATE SET latched = 0, latched_at = NULL, latch_reason = NULL, disabled = 0",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// `rollback disable`: no automatic switch until `rollback rearm`.
pub async fn disable(pool: &SqlitePool) -> Result<(), ControlError> {
    sqlx::query(
        "INSERT INTO rollback_state (id, disabled) VALUES (1, 1)
         ON CONFLICT (id) DO UPDATE SET disabled = 1",
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// What the control tables contribute to the rollback policy's
/// [`crate::rollback::View`]; the watchdog adds the observers' verdicts,
/// the direct health of the target color and its own start time.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Facts {
    pub last_toggle: Option<ToggleRecord>,
    /// The color live before the last toggle, when that toggle made `live` live.
    pub previous: Option<Color>,
    /// Any deploy (failed ones included) to the other color since the last toggle.
    pub deployed_to_previous_since_toggle: bool,
    pub last_automatic_switch: Option<DateTime<Utc>>,
    pub latched: bool,
    pub disabled: bool,
}

/// Reads [`Facts`] for the current live color.
pub async fn facts(pool: &SqlitePool, live: Option<Color>) -> Result<Facts, ControlError> {
    let last = last_toggle(pool).await?;
    let state = rollback_state(pool).await?;
    let previous = match (&last, live) {
        (Some(t), Some(live)) if t.to == live => t.from.filter(|p| *p != live),
        _ => None,
    };
    let deployed = match (&last, live) {
        (Some(t), Some(live)) => !deploys_since(pool, live.other(), t.at).await?.is_empty(),
        _ => false,
    };
    Ok(Facts {
        last_toggle: last,
        previous,
        deployed_to_previous_since_toggle: deployed,
        last_automatic_switch: state.last_automatic_at,
        latched: state.latched,
        disabled: state.disabled,
    })
}

/// Switches to `to` through `switcher` and records the attempt, successful
/// or not (which also keeps the latch and cooldown true, see
/// [`record_toggle`]). Manual toggles and automatic rollbacks both come here.
/// The switch's own error wins over a store error.
pub async fn switch_and_record(
    switcher: &Switcher,
    pool: &SqlitePool,
    to: Color,
    reason: &str,
    automatic: bool,
) -> Result<SwitchReport, SwitchAndRecordError> {
    let at = Utc::now();
    let from = switcher.live().color();
    let result = switcher.switch(to, reason).await;
    let error = result.as_ref().err().map(|e| e.to_string());
    let recorded = record_toggle(
        pool,
        &NewToggle {
            at,
            from: result.as_ref().map(|r| r.from).unwrap_or(from),
            to,
            automatic,
            reason,
            ok: result.is_ok(),
            error: error.as_deref(),
        },
    )
    .await;
    match (result, recorded) {
        (Err(e), _) => Err(SwitchAndRecordError::Switch(e)),
        (Ok(_), Err(e)) => Err(SwitchAndRecordError::Store(e)),
        (Ok(report), Ok(_)) => Ok(report),
    }
}

/// A switch that failed, or succeeded but could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum SwitchAndRecordError {
    #[error(transparent)]
    Switch(#[from] SwitchError),
    #[error("switched, but could not record it: {0}")]
    Store(#[from] ControlError),
}

/// Why a deploy did not happen or failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The original script's refusal.
    #[error("refusing to deploy to {0}: it is LIVE")]
    Live(Color),
    #[error("refusing to deploy to {color}: the live color is undefined ({why})")]
    LiveUndefined { color: Color, why: String },
    #[error("refusing to deploy: invalid image {0:?} (expected a docker image reference such as registry/app:1.2)")]
    BadImage(String),
    #[error("deploy of {image} to {color} failed: {}", outcome.summary())]
    Failed {
        color: Color,
        image: String,
        outcome: CommandOutcome,
    },
    #[error(transparent)]
    Store(#[from] ControlError),
}

/// A deploy that ran `deploy_cmd` successfully.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeployReport {
    pub id: i64,
    pub color: Color,
    pub image: String,
    pub outcome: CommandOutcome,
}

/// A docker image reference: letters, digits and `._-/:@`, not starting
/// with `-` (it would be read as a flag by the command it is passed to).
fn check_image(image: &str) -> Result<(), DeployError> {
    let ok = !image.is_empty()
        && image.len() <= 512
        && !image.starts_with('-')
        && image
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@'));
    if ok {
        Ok(())
    } else {
        Err(DeployError::BadImage(image.chars().take(80).collect()))
    }
}

/// Runs `deploy_cmd` for `color` with `image`, unless `color` is `live`
/// (refused, nothing recorded). A deploy that ran is recorded, failed or not.
pub async fn deploy(
    settings: &ProxySettings,
    pool: &SqlitePool,
    color: Color,
    image: &str,
    live: Color,
) -> Result<DeployReport, DeployError> {
    if color == live {
        return Err(DeployError::Live(color));
    }
    check_image(image)?;
    let at = Utc::now();
    let outcome = run_command(
        &settings.deploy_cmd,
        &[("image", image), ("color", color.as_str())],
        settings.command_timeout.0,
    )
    .await;
    let id = record_deploy(pool, at, color, image, outcome.ok, &outcome.output).await?;
    tracing::info!(%color, image, ok = outcome.ok, "deploy: {}", outcome.summary());
    if !outcome.ok {
        return Err(DeployError::Failed {
            color,
            image: image.to_string(),
            outcome,
        });
    }
    Ok(DeployReport {
        id,
        color,
        image: image.to_string(),
        outcome,
    })
}

/// [`deploy`] holding the switch lock, with the live color read from the
/// live file under it, so a switch cannot make `color` live mid-deploy.
/// A missing live file (nothing live yet) allows either color; an invalid
/// one refuses.
pub async fn deploy_guarded(
    switcher: &Switcher,
    pool: &SqlitePool,
    color: Color,
    image: &str,
) -> Result<DeployReport, DeployError> {
    let _guard = switcher.lock().await;
    let live = match switcher.live() {
        LiveState::Live(c) => c,
        LiveState::Missing => color.other(),
        LiveState::Invalid(why) => return Err(DeployError::LiveUndefined { color, why }),
    };
    deploy(switcher.settings(), pool, color, image, live).await
}

/// Why scaling failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error("scale {color} to {n} failed: {}", outcome.summary())]
    Failed {
        color: Color,
        n: u32,
        outcome: CommandOutcome,
    },
}

/// Runs `scale_cmd` for `color` with `n` replicas.
pub async fn scale(
    settings: &ProxySettings,
    color: Color,
    n: u32,
) -> Result<CommandOutcome, ScaleError> {
    let n_text = n.to_string();
    let outcome = run_command(
        &settings.scale_cmd,
        &[("color", color.as_str()), ("n", &n_text)],
        settings.command_timeout.0,
    )
    .await;
    tracing::info!(%color, n, ok = outcome.ok, "scale: {}", outcome.summary());
    if outcome.ok {
        Ok(outcome)
    } else {
        Err(ScaleError::Failed { color, n, outcome })
    }
}
