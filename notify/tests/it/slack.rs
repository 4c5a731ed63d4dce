//! The Slack channel against the e2e harness's Slack receiver.

use std::time::Duration;

use bgw_e2e::slack::{Mode, SlackReceiver};
use bgw_notify::{Channel, SendError, SlackSettings};
use tokio::io::AsyncReadExt;

use crate::{down_blue, one_of_each_kind};

const WAIT: Duration = Duration::from_secs(10);

fn channel(url: &str) -> Channel {
    Channel::slack(&SlackSettings::new(url)).unwrap()
}

#[tokio::test]
async fn down_message_is_accepted_by_slack_and_names_everything() {
    let slack = SlackReceiver::start().await;
    channel(&slack.url()).send(&down_blue()).await.unwrap();
    let got = slack.wait_for(1, WAIT).await;
    let text = got[0].to_string();
    assert_eq!(
        got[0]["text"],
        "[bgw] DOWN blue: no heartbeat for 12s (period 5s, grace 5s)"
    );
    for needle in [
        "*Check*\\nblue",
        "*Color*\\nblue",
        "*State*\\ndown",
        "*When*\\n2026-11-26T14:03:20Z",
        "*Live color*\\nblue",
        "no heartbeat for 12s (period 5s, grace 5s)",
        "#e01e5a",
    ] {
        assert!(text.contains(needle), "missing {needle} in {text}");
    }
    assert!(slack.rejected().is_empty());
}

#[tokio::test]
async fn every_kind_of_message_is_a_payload_slack_accepts() {
    let slack = SlackReceiver::start().await;
    let c = channel(&slack.url());
    let all = one_of_each_kind();
    for n in &all {
        c.send(n)
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}; rejected: {:?}", n.kind, slack.rejected()));
    }
    let got = slack.wait_for(all.len(), WAIT).await;
    assert!(slack.rejected().is_empty(), "{:?}", slack.rejected());
    let recovery = got[1].to_string();
    assert!(recovery.contains("*Down for*\\n3m12s"), "{recovery}");
    assert!(
        recovery.contains("#2eb67d"),
        "recovery is green: {recovery}"
    );
    assert!(got[4]["text"]
        .as_str()
        .unwrap()
        .starts_with("[bgw] ROLLBACK green -&gt; blue"));
}

#[tokio::test]
async fn server_errors_are_transient_and_nothing_is_delivered() {
    let slack = SlackReceiver::start().await;
    let c = channel(&slack.url());
    for code in [500, 502, 503] {
        slack.set_mode(Mode::Status(code)).await;
        let e = c.send(&down_blue()).await.unwrap_err();
        assert!(e.is_transient(), "{code}: {e:?}");
        assert!(e.to_string().contains(&code.to_string()), "{e}");
    }
    assert!(slack.messages().is_empty());
    assert_eq!(slack.requests(), 3);
}

#[tokio::test]
async fn rate_limit_is_transient_with_the_servers_retry_after() {
    let slack = SlackReceiver::start().await;
    slack
        .set_mode(Mode::TooMany {
            retry_after_secs: 7,
        })
        .await;
    let e = channel(&slack.url()).send(&down_blue()).await.unwrap_err();
    match &e {
        SendError::Transient { retry_after, .. } => {
            assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        }
        other => panic!("expected transient, got {other:?}"),
    }
    // The outbox's next attempt honours it.
    assert!(bgw_notify::retry_delay(1, e.retry_after()) >= Duration::from_secs(7));
}

#[tokio::test]
async fn client_errors_are_permanent_with_slacks_reason() {
    let slack = SlackReceiver::start().await;
    let c = channel(&slack.url());
    for (code, body) in [
        (400, "invalid_payload"),
        (403, "invalid_token"),
        (404, "no_service"),
    ] {
        slack.set_mode(Mode::Status(code)).await;
        let e = c.send(&down_blue()).await.unwrap_err();
        assert!(matches!(e, SendError::Permanent { .. }), "{code}: {e:?}");
        assert!(e.to_string().contains(body), "{e}");
    }
    // A wrong webhook path is Slack's 404 no_service too.
    slack.set_mode(Mode::Ok).await;
    let wrong = format!("http://127.0.0.1:{}/services/T/B/revoked", slack.port());
    let e = channel(&wrong).send(&down_blue()).await.unwrap_err();
    assert!(matches!(e, SendError::Permanent { .. }), "{e:?}");
}

#[tokio::test]
async fn slack_down_is_transient_and_delivery_works_once_it_is_back() {
    let slack = SlackReceiver::start().await;
    let c = channel(&slack.url());
    c.send(&down_blue()).await.unwrap();
    slack.set_mode(Mode::Down).await;
    let e = c.send(&down_blue()).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("connect"), "{e}");
    slack.set_mode(Mode::Ok).await;
    c.send(&down_blue()).await.unwrap();
    assert_eq!(slack.wait_for(2, WAIT).await.len(), 2);
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_transient() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            held.push(sock); // never answer
        }
    });
    let settings = SlackSettings {
        timeout: Duration::from_millis(300).into(),
        ..SlackSettings::new(format!("http://{addr}/services/T/B/SLOWSECRET"))
    };
    let e = Channel::slack(&settings)
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("300ms"), "{e}");
    assert!(!e.to_string().contains("SLOWSECRET"), "{e}");
    hold.abort();
}

#[tokio::test]
async fn errors_never_contain_the_webhook_secret() {
    let slack = SlackReceiver::start().await;
    let c = channel(&slack.url());
    let token = slack.secret_path().rsplit('/').next().unwrap().to_string();
    for mode in [
        Mode::Status(500),
        Mode::Status(404),
        Mode::TooMany {
            retry_after_secs: 1,
        },
        Mode::Down,
    ] {
        slack.set_mode(mode).await;
        let e = c.send(&down_blue()).await.unwrap_err();
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(&token), "{mode:?}: {text}");
            assert!(!text.contains("T0BGWTEST"), "{mode:?}: {text}");
        }
    }
}

#[tokio::test]
async fn webhook_url_can_come_from_a_file() {
    let slack = SlackReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("slack_url");
    std::fs::write(&file, format!("{}\n", slack.url())).unwrap();
    let settings = SlackSettings {
        webhook_url: None,
        webhook_url_file: Some(file),
        timeout: Duration::from_secs(10).into(),
    };
    Channel::slack(&settings)
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap();
    slack.wait_for(1, WAIT).await;
}
