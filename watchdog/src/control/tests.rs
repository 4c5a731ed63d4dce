//! Deploy and scale against real processes; what each action records.

use super::*;
use chrono::TimeZone;

fn at(s: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap() + chrono::Duration::seconds(s)
}

fn settings_with(deploy_cmd: &str) -> ProxySettings {
    ProxySettings {
        deploy_cmd: deploy_cmd.to_string(),
        scale_cmd: "printf scaled:%s:%s {color}-service {n}".to_string(),
        ..Default::default()
    }
}

fn deploys(record: &Record) -> Vec<&DeployRecord> {
    record
        .control
        .iter()
        .filter_map(|c| match c {
            ControlChange::Deploy(d) => Some(d),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn deploy_to_the_live_color_is_refused_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("deployed");
    let s = settings_with(&format!("touch {}", marker.display()));
    let (result, record) = deploy(&s, at(0), Color::Blue, "app:2", Ok(Color::Blue)).await;
    let e = result.unwrap_err();
    assert_eq!(e.to_string(), "refusing to deploy to blue: it is LIVE");
    assert!(!marker.exists());
    assert!(deploys(&record).is_empty(), "a refusal is no deploy");
    assert_eq!(record.events[0].columns().kind, "deploy_refused");
}

#[tokio::test]
async fn deploy_to_the_idle_color_runs_the_command_and_is_recorded() {
    let s = settings_with("printf %s|%s {image} {color}-service");
    let (result, record) =
        deploy(&s, at(0), Color::Green, "registry/app:1.2", Ok(Color::Blue)).await;
    assert_eq!(
        result.unwrap().outcome.output,
        "registry/app:1.2|green-service"
    );
    let rows = deploys(&record);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].image, "registry/app:1.2");
    assert!(rows[0].ok);
    assert_eq!(record.events[0].columns().kind, "deploy");
}

#[tokio::test]
async fn a_failing_deploy_is_recorded_and_reported_with_its_output() {
    let s = settings_with("sh -c {image}");
    // "sh -c app:9" fails: command not found, output captured.
    let (result, record) = deploy(&s, at(0), Color::Green, "app:9", Ok(Color::Blue)).await;
    let e = result.unwrap_err();
    assert!(matches!(e, DeployError::Failed { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("deploy of app:9 to green failed: `sh -c app:9` exited with 127"),
        "{e}"
    );
    let rows = deploys(&record);
    assert!(
        !rows[0].ok && rows[0].output.contains("not found"),
        "{:?}",
        rows[0]
    );
    assert_eq!(
        record.events[0].log_line().unwrap(),
        format!("ALERT: DEPLOY FAILED: {e}")
    );
}

#[tokio::test]
async fn hostile_image_names_are_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let s = settings_with("echo {image}");
    for image in [
        format!("x; touch {}", marker.display()),
        "--help".to_string(),
        String::new(),
    ] {
        let (result, record) = deploy(&s, at(0), Color::Green, &image, Ok(Color::Blue)).await;
        assert!(matches!(result, Err(DeployError::BadImage(_))));
        assert!(deploys(&record).is_empty());
    }
    assert!(!marker.exists());
}

#[tokio::test]
async fn an_undefined_live_color_refuses_the_deploy() {
    let s = settings_with("true");
    let (result, _) = deploy(&s, at(0), Color::Green, "app:1", Err("empty file".into())).await;
    assert!(matches!(result, Err(DeployError::LiveUndefined { .. })));
}

#[tokio::test]
async fn scale_fills_color_and_count() {
    let s = settings_with("true");
    let (o, record) = scale(&s, at(0), Color::Blue, 3).await;
    assert_eq!(o.unwrap().output, "scaled:blue-service:3");
    assert_eq!(record.events[0].columns().kind, "scale");
    let s = ProxySettings {
        scale_cmd: "false {color}".into(),
        ..Default::default()
    };
    let (e, record) = scale(&s, at(0), Color::Green, 1).await;
    assert!(e
        .unwrap_err()
        .to_string()
        .starts_with("scale green to 1 failed: `false green` exited with 1"));
    assert_eq!(record.events[0].columns().kind, "scale_failed");
}

#[test]
fn a_switch_and_its_event_are_one_record() {
    let ran = CommandOutcome {
        ok: true,
        exit_code: Some(0),
        output: String::new(),
        timed_out: false,
        display: "true".into(),
        duration: std::time::Duration::ZERO,
    };
    let report = SwitchReport {
        from: Some(Color::Blue),
        to: Color::Green,
        reason: "operator".into(),
        started: at(0),
        test: ran.clone(),
        reload: ran,
        total: std::time::Duration::from_millis(120),
        verify: std::time::Duration::ZERO,
        verify_attempts: 1,
        mode: crate::proxy::SwitchMode::Reload,
    };
    let manual = Trigger::Manual {
        why: "operator".into(),
    };
    let r = switch_record(
        at(0),
        Some(Color::Blue),
        Color::Green,
        &manual,
        &Ok(report.clone()),
    );
    assert_eq!(r.events.len(), 1);
    assert_eq!(
        r.events[0].log_line().unwrap(),
        "TOGGLE: blue -> green (manual)"
    );
    assert!(matches!(&r.control[..], [ControlChange::Toggle(t)] if t.ok && !t.automatic));
    let rollback = Trigger::Rollback {
        reason: "green failed".into(),
    };
    let r = switch_record(
        at(0),
        Some(Color::Green),
        Color::Blue,
        &rollback,
        &Ok(SwitchReport {
            from: Some(Color::Green),
            to: Color::Blue,
            ..report
        }),
    );
    assert_eq!(
        r.events[0].log_line().unwrap(),
        "ROLLBACK: green -> blue: green failed"
    );
    assert!(matches!(&r.control[..], [ControlChange::Toggle(t)] if t.ok && t.automatic));
}
