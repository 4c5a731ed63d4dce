//! The email channel against a real SMTP server (aiosmtpd, started by the
//! e2e harness): plain, with authentication, STARTTLS and implicit TLS.

use std::time::Duration;

use bgw_e2e::smtp::{SmtpOptions, SmtpSink, SmtpTls};
use bgw_notify::{Channel, EmailSettings, SendError};

use crate::{down_blue, one_of_each_kind};

const WAIT: Duration = Duration::from_secs(10);
const PASSWORD: &str = "s3cr3t-Pa55:word";

fn settings(url: &str) -> EmailSettings {
    EmailSettings::new(
        url,
        "bgw <bgw@example.org>",
        vec!["ops@example.org".into(), "oncall@example.org".into()],
    )
}

fn with_auth() -> SmtpOptions {
    SmtpOptions {
        auth: Some(("bgw".into(), PASSWORD.into())),
        tls: SmtpTls::None,
    }
}

#[tokio::test]
async fn email_arrives_with_the_contract_subject_and_text_and_html_parts() {
    let sink = SmtpSink::start(SmtpOptions::default()).await;
    let c = Channel::email(&settings(&sink.url())).unwrap();
    c.send(&down_blue()).await.unwrap();
    let got = sink.wait_for(1, WAIT).await;
    let m = &got[0];
    assert_eq!(m.subject, "[bgw] DOWN blue");
    assert_eq!(m.content_type, "multipart/alternative");
    assert_eq!(m.from, "bgw <bgw@example.org>");
    assert_eq!(m.rcpt_to, ["ops@example.org", "oncall@example.org"]);
    let text = m.text.as_deref().expect("a text/plain part");
    let html = m.html.as_deref().expect("a text/html part");
    for needle in [
        "no heartbeat for 12s (period 5s, grace 5s)",
        "2026-11-26T14:03:20Z",
        "Live color",
    ] {
        assert!(text.contains(needle), "text lacks {needle}: {text}");
        assert!(html.contains(needle), "html lacks {needle}: {html}");
    }
    assert_eq!(m.message_id, "<bgw.42.down.blue@example.org>");
    assert!(!m.tls && m.auth_user.is_none());
}

#[tokio::test]
async fn every_kind_has_its_subject_in_the_mailbox() {
    let sink = SmtpSink::start(SmtpOptions::default()).await;
    let c = Channel::email(&settings(&sink.url())).unwrap();
    let all = one_of_each_kind();
    for n in &all {
        c.send(n).await.unwrap();
    }
    let subjects: Vec<String> = sink
        .wait_for(all.len(), WAIT)
        .await
        .into_iter()
        .map(|m| m.subject)
        .collect();
    assert_eq!(
        subjects,
        [
            "[bgw] DOWN blue",
            "[bgw] UP blue",
            "[bgw] STILL DOWN blue",
            "[bgw] FLAPPING blue",
            "[bgw] ROLLBACK green -> blue",
            "[bgw] ROLLBACK REFUSED green",
            "[bgw] SWITCH FAILED blue -> green",
            "[bgw] DELIVERY FAILED slack",
            "[bgw] ALL IS WELL",
        ]
    );
}

#[tokio::test]
async fn credentials_in_the_url_authenticate() {
    let sink = SmtpSink::start(with_auth()).await;
    let c = Channel::email(&settings(&sink.url_with_credentials())).unwrap();
    c.send(&down_blue()).await.unwrap();
    assert_eq!(
        sink.wait_for(1, WAIT).await[0].auth_user.as_deref(),
        Some("bgw")
    );
}

#[tokio::test]
async fn username_and_password_file_authenticate() {
    let sink = SmtpSink::start(with_auth()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("smtp_password");
    std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
    let s = EmailSettings {
        username: Some("bgw".into()),
        password_file: Some(file),
        ..settings(&sink.url())
    };
    Channel::email(&s)
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap();
    assert_eq!(
        sink.wait_for(1, WAIT).await[0].auth_user.as_deref(),
        Some("bgw")
    );
}

#[tokio::test]
async fn a_wrong_password_is_permanent_and_never_shown() {
    let sink = SmtpSink::start(with_auth()).await;
    let s = EmailSettings {
        username: Some("bgw".into()),
        password: Some("wrong-Pa55word-XYZ".into()),
        ..settings(&sink.url())
    };
    let e = Channel::email(&s)
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap_err();
    assert!(matches!(e, SendError::Permanent { .. }), "{e:?}");
    assert!(e.to_string().contains("535"), "{e}");
    let text = format!("{e} {e:?}");
    assert!(!text.contains("wrong-Pa55word-XYZ"), "{text}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn starttls_encrypts_and_authenticates() {
    let sink = SmtpSink::start(SmtpOptions {
        auth: Some(("bgw".into(), PASSWORD.into())),
        tls: SmtpTls::StartTls,
    })
    .await;
    let s = EmailSettings {
        ca_file: sink.ca_file(),
        ..settings(&sink.url_with_credentials())
    };
    Channel::email(&s)
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap();
    let m = &sink.wait_for(1, WAIT).await[0];
    assert!(m.tls, "the session was not upgraded");
    assert_eq!(m.auth_user.as_deref(), Some("bgw"));
    assert_eq!(m.subject, "[bgw] DOWN blue");
}

#[tokio::test]
async fn implicit_tls_encrypts_from_the_first_byte() {
    let sink = SmtpSink::start(SmtpOptions {
        auth: Some(("bgw".into(), PASSWORD.into())),
        tls: SmtpTls::Implicit,
    })
    .await;
    assert!(sink.url().starts_with("smtps://"));
    let s = EmailSettings {
        ca_file: sink.ca_file(),
        ..settings(&sink.url_with_credentials())
    };
    Channel::email(&s)
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap();
    let m = &sink.wait_for(1, WAIT).await[0];
    assert!(m.tls);
    assert_eq!(m.auth_user.as_deref(), Some("bgw"));
}

#[tokio::test]
async fn starttls_required_never_falls_back_to_plain_text() {
    let sink = SmtpSink::start(SmtpOptions::default()).await;
    let url = format!("smtp://127.0.0.1:{}?tls=required", sink.port());
    let e = Channel::email(&settings(&url))
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("starttls"), "{e}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused_and_nothing_is_sent() {
    let sink = SmtpSink::start(SmtpOptions {
        auth: None,
        tls: SmtpTls::Implicit,
    })
    .await;
    let e = Channel::email(&settings(&sink.url()))
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("TLS"), "{e}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn smtp_4xx_is_transient_and_5xx_is_permanent() {
    let sink = SmtpSink::start(SmtpOptions::default()).await;
    let c = Channel::email(&settings(&sink.url())).unwrap();
    sink.set_reject(Some(451));
    let e = c.send(&down_blue()).await.unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(e.to_string().contains("451"), "{e}");
    sink.set_reject(Some(550));
    let e = c.send(&down_blue()).await.unwrap_err();
    assert!(matches!(e, SendError::Permanent { .. }), "{e:?}");
    assert!(e.to_string().contains("550"), "{e}");
    sink.set_reject(None);
    c.send(&down_blue()).await.unwrap();
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_transient_and_hides_the_password() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // The password as it is written in a URL (":" percent-encoded).
    let url = format!("smtp://bgw:s3cr3t-Pa55%3Aword@127.0.0.1:{closed}");
    let e = Channel::email(&settings(&url))
        .unwrap()
        .send(&down_blue())
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    let text = format!("{e} {e:?}");
    assert!(!text.contains("s3cr3t"), "{text}");
}
