//! The webhook channel against a small HTTP server that records what it got.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use bgw_notify::{Channel, SendError, WebhookSettings};

use crate::{down_blue, one_of_each_kind};

#[derive(Default)]
struct Hook {
    status: Mutex<u16>,
    got: Mutex<Vec<(HeaderMap, Bytes)>>,
}

async fn start() -> (SocketAddr, Arc<Hook>) {
    let hook = Arc::new(Hook {
        status: Mutex::new(200),
        ..Hook::default()
    });
    let app = axum::Router::new()
        .fallback(
            |State(h): State<Arc<Hook>>, headers: HeaderMap, body: Bytes| async move {
                h.got.lock().unwrap().push((headers, body));
                let code = *h.status.lock().unwrap();
                let mut r = axum::response::IntoResponse::into_response((
                    StatusCode::from_u16(code).unwrap(),
                    "answer",
                ));
                if code == 429 {
                    r.headers_mut().insert("retry-after", "2".parse().unwrap());
                }
                r
            },
        )
        .with_state(hook.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hook)
}

#[tokio::test]
async fn webhook_body_is_the_notification_as_json() {
    let (addr, hook) = start().await;
    let c = Channel::webhook(&WebhookSettings::new(format!("http://{addr}/hook"))).unwrap();
    for n in one_of_each_kind() {
        c.send(&n).await.unwrap();
        let (headers, body) = hook.got.lock().unwrap().pop().unwrap();
        let got: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(got, serde_json::to_value(&n).unwrap());
        let back: bgw_notify::Notification = serde_json::from_slice(&body).unwrap();
        assert_eq!(back, n);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(headers["x-bgw-event-id"], "42");
    }
    let (_, body) = {
        c.send(&down_blue()).await.unwrap();
        hook.got.lock().unwrap().pop().unwrap()
    };
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["kind"], "down");
    assert_eq!(v["at"], "2026-11-26T14:03:20Z");
}

#[tokio::test]
async fn webhook_answers_are_classified_and_never_show_the_token() {
    let (addr, hook) = start().await;
    let url = format!("http://user:PASSWORD1@{addr}/hook/PATHSECRET?token=QUERYSECRET");
    let c = Channel::webhook(&WebhookSettings::new(url)).unwrap();
    let cases = [
        (503, true),
        (429, true),
        (500, true),
        (400, false),
        (410, false),
    ];
    for (code, transient) in cases {
        *hook.status.lock().unwrap() = code;
        let e = c.send(&down_blue()).await.unwrap_err();
        assert_eq!(e.is_transient(), transient, "{code}: {e:?}");
        if code == 429 {
            assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        }
        let text = format!("{e} {e:?}");
        for secret in ["PASSWORD1", "PATHSECRET", "QUERYSECRET"] {
            assert!(!text.contains(secret), "{text}");
        }
    }
    // Connection refused: the error names the failure, not the URL.
    drop(hook);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let c = Channel::webhook(&WebhookSettings::new(format!(
        "http://{closed}/hook/PATHSECRET?token=QUERYSECRET"
    )))
    .unwrap();
    let e = c.send(&down_blue()).await.unwrap_err();
    assert!(matches!(e, SendError::Transient { .. }), "{e:?}");
    let text = format!("{e} {e:?}");
    assert!(
        !text.contains("PATHSECRET") && !text.contains("QUERYSECRET"),
        "{text}"
    );
}
