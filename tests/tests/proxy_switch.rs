//! Blue/green switching through a real nginx in front of two real test apps:
//! what a switch changes, and that every failed step leaves nginx, its
//! config and the live file as they were.

use bgw_e2e::nginx::{served_by, wait_until, Fixture};
use bgw_watchdog::control;
use bgw_watchdog::proxy::{self, LiveState, Step, SwitchError};
use bgw_wire::Color;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TESTAPP: &str = env!("CARGO_BIN_EXE_bgw-testapp");

async fn fixture() -> Fixture {
    Fixture::start(Path::new(TESTAPP))
        .await
        .expect("start nginx and the test apps")
}

async fn assert_serves(port: u16, color: &str) {
    wait_until(Duration::from_secs(10), || async {
        served_by(port).await.as_deref() == Some(color)
    })
    .await
    .unwrap_or_else(|_| panic!("port {port} is not served by {color} within 10s"));
}

/// Writes a user template: the builtin one with `edit` applied.
fn user_template(dir: &Path, name: &str, edit: impl Fn(&str) -> String) -> String {
    let path = dir.join(name);
    std::fs::write(&path, edit(proxy::BUILTIN)).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn switch_to_green_makes_the_live_port_serve_green_and_writes_the_live_file() {
    let f = fixture().await;
    let switcher = f.switcher();
    let report = switcher.switch(Color::Green, "test").await.expect("switch");
    assert_eq!((report.from, report.to), (Some(Color::Blue), Color::Green));
    assert!(report.test.ok && report.reload.ok);
    // Verified by the switch itself; check again from outside.
    assert_eq!(
        served_by(f.settings.live_listen).await.as_deref(),
        Some("green")
    );
    assert_eq!(
        served_by(f.settings.idle_listen).await.as_deref(),
        Some("blue")
    );
    // The body comes from the green app, not just the header.
    let body = reqwest::get(format!("http://127.0.0.1:{}/ping", f.settings.live_listen))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("pong green"), "{body}");
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"green");
    assert_eq!(switcher.live(), LiveState::Live(Color::Green));

    // And back.
    let report = switcher
        .switch(Color::Blue, "test")
        .await
        .expect("switch back");
    assert_eq!(report.from, Some(Color::Green));
    assert_eq!(
        served_by(f.settings.live_listen).await.as_deref(),
        Some("blue")
    );
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
}

#[tokio::test]
async fn a_config_that_fails_nginx_test_changes_nothing() {
    let f = fixture().await;
    let bad = user_template(f.path(), "bad.tmpl", |t| {
        t.replace(
            "worker_processes auto;",
            "worker_processes auto;\nno_such_directive on;",
        )
    });
    let conf_before = std::fs::read(&f.settings.nginx_conf).unwrap();
    let switcher = f.switcher_with(|s| s.template = bad);
    let err = switcher.switch(Color::Green, "test").await.unwrap_err();
    assert_eq!(err.step(), Step::Test, "{err}");
    assert!(err.output().unwrap().contains("no_such_directive"), "{err}");
    assert!(
        err.to_string().contains("previous config restored"),
        "{err}"
    );
    assert_eq!(std::fs::read(&f.settings.nginx_conf).unwrap(), conf_before);
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
    assert_eq!(
        served_by(f.settings.live_listen).await.as_deref(),
        Some("blue")
    );
    // No temp file is left next to the config.
    let leftovers: Vec<_> = std::fs::read_dir(f.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".bgw-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[tokio::test]
async fn a_failing_reload_restores_the_config_and_live_file_and_reloads_back() {
    let f = fixture().await;
    // Reloads nginx, then reports failure: nginx really took the new config,
    // so the switcher must put the old one back and reload again.
    let script = f.path().join("reload-then-fail.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n{} || exit 2\necho 'reload: simulated failure' >&2\nexit 1\n",
            bgw_e2e::nginx::reload_cmd(f.path()).replace("{conf}", "\"$1\"")
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let conf_before = std::fs::read(&f.settings.nginx_conf).unwrap();
    let switcher = f.switcher_with(|s| s.reload_cmd = format!("{} {{conf}}", script.display()));
    let err = switcher.switch(Color::Green, "test").await.unwrap_err();
    assert_eq!(err.step(), Step::Reload, "{err}");
    assert!(err.output().unwrap().contains("simulated failure"), "{err}");
    match &err {
        SwitchError::Reload {
            reload_back,
            restore,
            ..
        } => {
            assert!(reload_back.is_some(), "the previous config is reloaded");
            assert!(restore.is_none(), "{restore:?}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&f.settings.nginx_conf).unwrap(), conf_before);
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
    assert_serves(f.settings.live_listen, "blue").await;
}

#[tokio::test]
async fn a_plain_failing_reload_leaves_nginx_on_the_old_color() {
    let f = fixture().await;
    let switcher = f.switcher_with(|s| s.reload_cmd = "false".into());
    let err = switcher.switch(Color::Green, "test").await.unwrap_err();
    assert_eq!(err.step(), Step::Reload);
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"blue");
    assert_eq!(
        std::fs::read_to_string(&f.settings.nginx_conf).unwrap(),
        proxy::render(&f.settings, Color::Blue).unwrap()
    );
    assert_eq!(
        served_by(f.settings.live_listen).await.as_deref(),
        Some("blue")
    );
}

#[tokio::test]
async fn a_config_that_does_not_stamp_the_new_color_fails_verification_and_stays() {
    let f = fixture().await;
    // Stamps the live port with the idle color: nginx accepts it, but the
    // live port never says "green".
    let lying = user_template(f.path(), "lying.tmpl", |t| {
        t.replacen(
            "add_header X-Bgw-Color {{live}} always;",
            "add_header X-Bgw-Color {{idle}} always;",
            1,
        )
    });
    let switcher = f.switcher_with(|s| {
        s.template = lying;
        s.verify_timeout = Duration::from_secs(1).into();
    });
    let err = switcher.switch(Color::Green, "test").await.unwrap_err();
    assert_eq!(err.step(), Step::Verify, "{err}");
    assert!(err.to_string().contains("X-Bgw-Color: blue"), "{err}");
    // Documented decision: nginx accepted the config, so it stays.
    assert_eq!(std::fs::read(&f.settings.live_file).unwrap(), b"green");
}

#[tokio::test]
async fn two_concurrent_switches_run_one_after_the_other() {
    let f = fixture().await;
    // The test command logs its start and end; overlapping switches would
    // interleave the lines.
    let log = f.path().join("test-cmd.log");
    let script = f.path().join("slow-test.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho start >> {log}\nsleep 0.3\n{} \nr=$?\necho end >> {log}\nexit $r\n",
            bgw_e2e::nginx::test_cmd(f.path()).replace("{conf}", "\"$1\""),
            log = log.display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let switcher =
        Arc::new(f.switcher_with(|s| s.test_cmd = format!("{} {{conf}}", script.display())));
    let a = tokio::spawn({
        let s = switcher.clone();
        async move { s.switch(Color::Green, "first").await }
    });
    let b = tokio::spawn({
        let s = switcher.clone();
        async move { s.switch(Color::Blue, "second").await }
    });
    let (ra, rb) = (
        a.await.unwrap().expect("switch a"),
        b.await.unwrap().expect("switch b"),
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "start\nend\nstart\nend\n"
    );
    // The one that ran second saw the first one's result as its `from`.
    let (first, second) = if ra.started <= rb.started {
        (ra, rb)
    } else {
        (rb, ra)
    };
    assert_eq!(second.from, Some(first.to));
    let live = std::fs::read_to_string(&f.settings.live_file).unwrap();
    assert_eq!(live, second.to.as_str());
    assert_eq!(
        served_by(f.settings.live_listen).await.as_deref(),
        Some(live.as_str())
    );
}

#[tokio::test]
async fn a_hostile_image_name_is_one_argument_and_runs_nothing() {
    let marker = std::env::temp_dir().join(format!("bgw-pwned-{}", std::process::id()));
    let hostile = format!("x; touch {}", marker.display());
    let outcome = proxy::run_command(
        "echo --image {image} {color}-service",
        &[("image", &hostile), ("color", "green")],
        Duration::from_secs(10),
    )
    .await;
    assert!(outcome.ok, "{outcome:?}");
    assert_eq!(outcome.output, format!("--image {hostile} green-service\n"));
    assert!(
        !marker.exists(),
        "the shell metacharacters were interpreted"
    );
}

#[tokio::test]
async fn deploy_to_the_live_color_is_refused_and_the_idle_one_is_deployed() {
    let f = fixture().await;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(f.path().join("watchdog.db"))
        .create_if_missing(true);
    let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
    sqlx::migrate!("../migrations").run(&pool).await.unwrap();
    let marker = f.path().join("deployed");
    let switcher =
        f.switcher_with(|s| s.deploy_cmd = format!("touch {}-{{color}}", marker.display()));

    let err = control::deploy_guarded(&switcher, &pool, Color::Blue, "app:2")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "refusing to deploy to blue: it is LIVE");
    assert!(!Path::new(&format!("{}-blue", marker.display())).exists());

    control::deploy_guarded(&switcher, &pool, Color::Green, "app:2")
        .await
        .expect("deploy to idle");
    assert!(Path::new(&format!("{}-green", marker.display())).exists());
    let since = chrono_epoch();
    let deploys = control::deploys_since(&pool, Color::Green, since)
        .await
        .unwrap();
    assert_eq!(deploys.len(), 1);
    assert!(control::deploys_since(&pool, Color::Blue, since)
        .await
        .unwrap()
        .is_empty());

    // After a switch, green is live and refused in turn.
    switcher.switch(Color::Green, "test").await.expect("switch");
    let err = control::deploy_guarded(&switcher, &pool, Color::Green, "app:3")
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "refusing to deploy to green: it is LIVE");
}

fn chrono_epoch() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
}
