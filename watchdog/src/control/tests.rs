//! The control store against a real, migrated SQLite file; deploy and scale
//! against real processes.

use super::*;
use chrono::TimeZone;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

async fn store() -> (tempfile::TempDir, SqlitePool) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("watchdog.db"))
        .create_if_missing(true);
    let pool = SqlitePoolOptions::new()
        .connect_with(options)
        .await
        .unwrap();
    sqlx::migrate!("../migrations").run(&pool).await.unwrap();
    (dir, pool)
}

fn at(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn toggle(at: DateTime<Utc>, to: Color, automatic: bool, ok: bool) -> NewToggle<'static> {
    NewToggle {
        at,
        from: Some(to.other()),
        to,
        automatic,
        reason: if automatic {
            "green failed 43s after toggle (checker: 502)"
        } else {
            "operator"
        },
        ok,
        error: (!ok).then_some("switch to green failed at test"),
    }
}

#[tokio::test]
async fn last_toggle_is_the_last_successful_one() {
    let (_dir, pool) = store().await;
    assert_eq!(last_toggle(&pool).await.unwrap(), None);
    record_toggle(&pool, &toggle(at(0), Color::Green, false, true))
        .await
        .unwrap();
    record_toggle(&pool, &toggle(at(10), Color::Blue, false, false))
        .await
        .unwrap();
    let last = last_toggle(&pool).await.unwrap().unwrap();
    assert_eq!(
        (last.at, last.from, last.to, last.ok),
        (at(0), Some(Color::Blue), Color::Green, true)
    );
    assert_eq!(last.as_toggle().to, Color::Green);
    let all = toggles(&pool, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].error.as_deref(),
        Some("switch to green failed at test")
    );
}

#[tokio::test]
async fn an_automatic_switch_latches_and_starts_the_cooldown() {
    let (_dir, pool) = store().await;
    assert_eq!(
        rollback_state(&pool).await.unwrap(),
        RollbackState::default()
    );
    record_toggle(&pool, &toggle(at(5), Color::Blue, true, true))
        .await
        .unwrap();
    let s = rollback_state(&pool).await.unwrap();
    assert!(s.latched && !s.disabled);
    assert_eq!(s.latched_at, Some(at(5)));
    assert_eq!(s.last_automatic_at, Some(at(5)));
    assert!(s.latch_reason.unwrap().contains("green failed"));
}

#[tokio::test]
async fn a_failed_automatic_attempt_starts_the_cooldown_without_latching() {
    let (_dir, pool) = store().await;
    record_toggle(&pool, &toggle(at(5), Color::Blue, true, false))
        .await
        .unwrap();
    let s = rollback_state(&pool).await.unwrap();
    assert!(!s.latched);
    assert_eq!(s.last_automatic_at, Some(at(5)));
}

#[tokio::test]
async fn a_manual_toggle_or_rearm_releases_the_latch() {
    let (_dir, pool) = store().await;
    set_latched(&pool, at(1), "rolled back").await.unwrap();
    assert!(rollback_state(&pool).await.unwrap().latched);
    // A failed manual toggle changes nothing.
    record_toggle(&pool, &toggle(at(2), Color::Green, false, false))
        .await
        .unwrap();
    assert!(rollback_state(&pool).await.unwrap().latched);
    record_toggle(&pool, &toggle(at(3), Color::Green, false, true))
        .await
        .unwrap();
    assert!(!rollback_state(&pool).await.unwrap().latched);

    set_latched(&pool, at(4), "rolled back").await.unwrap();
    disable(&pool).await.unwrap();
    let s = rollback_state(&pool).await.unwrap();
    assert!(s.latched && s.disabled);
    rearm(&pool).await.unwrap();
    let s = rollback_state(&pool).await.unwrap();
    assert!(!s.latched && !s.disabled && s.latch_reason.is_none());
}

#[tokio::test]
async fn deploys_since_filters_by_color_and_time() {
    let (_dir, pool) = store().await;
    record_deploy(&pool, at(0), Color::Blue, "app:1", true, "")
        .await
        .unwrap();
    record_deploy(&pool, at(20), Color::Blue, "app:2", false, "no such image")
        .await
        .unwrap();
    record_deploy(&pool, at(30), Color::Green, "app:3", true, "")
        .await
        .unwrap();
    let blue = deploys_since(&pool, Color::Blue, at(10)).await.unwrap();
    assert_eq!(blue.len(), 1);
    assert_eq!(
        (blue[0].image.as_str(), blue[0].ok, blue[0].at),
        ("app:2", false, at(20))
    );
    assert!(deploys_since(&pool, Color::Green, at(31))
        .await
        .unwrap()
        .is_empty());
}

fn settings_with(deploy_cmd: &str) -> ProxySettings {
    ProxySettings {
        deploy_cmd: deploy_cmd.to_string(),
        scale_cmd: "printf scaled:%s:%s {color}-service {n}".to_string(),
        ..Default::default()
    }
}

#[tokio::test]
async fn deploy_to_the_live_color_is_refused_and_runs_nothing() {
    let (dir, pool) = store().await;
    let marker = dir.path().join("deployed");
    let s = settings_with(&format!("touch {}", marker.display()));
    let e = deploy(&s, &pool, Color::Blue, "app:2", Color::Blue)
        .await
        .unwrap_err();
    assert_eq!(e.to_string(), "refusing to deploy to blue: it is LIVE");
    assert!(!marker.exists());
    assert!(deploys_since(&pool, Color::Blue, at(-1_000_000))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn deploy_to_the_idle_color_runs_the_command_and_is_recorded() {
    let (_dir, pool) = store().await;
    let s = settings_with("printf %s|%s {image} {color}-service");
    let report = deploy(&s, &pool, Color::Green, "registry/app:1.2", Color::Blue)
        .await
        .unwrap();
    assert_eq!(report.outcome.output, "registry/app:1.2|green-service");
    let rows = deploys_since(&pool, Color::Green, at(-1_000_000))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].image, "registry/app:1.2");
    assert!(rows[0].ok);
}

#[tokio::test]
async fn a_failing_deploy_is_recorded_and_reported_with_its_output() {
    let (_dir, pool) = store().await;
    let s = settings_with("sh -c {image}");
    // "sh -c app:9" fails: command not found, output captured.
    let e = deploy(&s, &pool, Color::Green, "app:9", Color::Blue)
        .await
        .unwrap_err();
    assert!(matches!(e, DeployError::Failed { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("deploy of app:9 to green failed: `sh -c app:9` exited with 127"),
        "{e}"
    );
    let rows = deploys_since(&pool, Color::Green, at(-1_000_000))
        .await
        .unwrap();
    assert!(
        !rows[0].ok && rows[0].output.contains("not found"),
        "{:?}",
        rows[0]
    );
}

#[tokio::test]
async fn hostile_image_names_are_refused_before_anything_runs() {
    let (dir, pool) = store().await;
    let marker = dir.path().join("pwned");
    let s = settings_with("echo {image}");
    for image in [
        format!("x; touch {}", marker.display()),
        "--help".to_string(),
        String::new(),
    ] {
        let e = deploy(&s, &pool, Color::Green, &image, Color::Blue)
            .await
            .unwrap_err();
        assert!(matches!(e, DeployError::BadImage(_)), "{e}");
    }
    assert!(!marker.exists());
    assert!(deploys_since(&pool, Color::Green, at(-1_000_000))
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn scale_fills_color_and_count() {
    let s = settings_with("true");
    let o = scale(&s, Color::Blue, 3).await.unwrap();
    assert_eq!(o.output, "scaled:blue-service:3");
    let s = ProxySettings {
        scale_cmd: "false {color}".into(),
        ..Default::default()
    };
    let e = scale(&s, Color::Green, 1).await.unwrap_err();
    assert!(
        e.to_string()
            .starts_with("scale green to 1 failed: `false green` exited with 1"),
        "{e}"
    );
}

#[tokio::test]
async fn facts_give_the_previous_color_and_deploys_to_it_since_the_toggle() {
    let (_dir, pool) = store().await;
    assert_eq!(
        facts(&pool, Some(Color::Blue)).await.unwrap(),
        Facts::default()
    );
    record_deploy(&pool, at(-5), Color::Blue, "app:1", true, "")
        .await
        .unwrap();
    record_toggle(&pool, &toggle(at(0), Color::Green, false, true))
        .await
        .unwrap();
    let f = facts(&pool, Some(Color::Green)).await.unwrap();
    assert_eq!(f.previous, Some(Color::Blue));
    assert!(
        !f.deployed_to_previous_since_toggle,
        "the deploy was before the toggle"
    );
    assert_eq!(f.last_toggle.as_ref().map(|t| t.to), Some(Color::Green));
    record_deploy(&pool, at(5), Color::Blue, "app:2", false, "failed")
        .await
        .unwrap();
    let f = facts(&pool, Some(Color::Green)).await.unwrap();
    assert!(
        f.deployed_to_previous_since_toggle,
        "a failed deploy counts too"
    );
    // The live file says blue although the last toggle made green live: no
    // previous color to roll back to.
    assert_eq!(
        facts(&pool, Some(Color::Blue)).await.unwrap().previous,
        None
    );
    record_toggle(&pool, &toggle(at(9), Color::Blue, true, true))
        .await
        .unwrap();
    let f = facts(&pool, Some(Color::Blue)).await.unwrap();
    assert!(f.latched);
    assert_eq!(f.last_automatic_switch, Some(at(9)));
}
