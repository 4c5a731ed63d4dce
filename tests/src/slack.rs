//! A local stand-in for Slack's incoming-webhook endpoint.
//!
//! Slack cannot be reached from the tests, so [`SlackReceiver`] listens on
//! loopback and judges each payload as Slack's API does: the body must be a
//! JSON object with a non-empty `text` (or blocks / attachments), and every
//! Block Kit block (top level or inside `attachments`) must be well formed
//! and within Slack's limits. Good payloads get `200 ok` and are kept in
//! [`SlackReceiver::messages`]; bad ones get `400 invalid_blocks` /
//! `no_text` / `invalid_payload` and are kept in [`SlackReceiver::rejected`].
//! [`SlackReceiver::set_mode`] makes it answer 5xx, 429 with `Retry-After`,
//! or refuse connections, to test outages.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How the receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Judge the payload like Slack: `200 ok` or `400 <error>`.
    Ok,
    /// Answer every request with this status (and Slack's body for it).
    Status(u16),
    /// `429 rate_limited` with `Retry-After: <secs>`.
    TooMany { retry_after_secs: u64 },
    /// Refuse connections: the listener is closed until the next `set_mode`.
    Down,
}

#[derive(Default)]
struct Log {
    accepted: Vec<(Value, Instant)>,
    rejected: Vec<(Value, String)>,
    requests: usize,
}

struct Shared {
    mode: Mutex<Mode>,
    log: Mutex<Log>,
    path: String,
}

struct Server {
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A Slack incoming-webhook receiver on `127.0.0.1:<port>`.
pub struct SlackReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<Server>>,
}

impl SlackReceiver {
    /// Starts on a free loopback port, in [`Mode::Ok`].
    pub async fn start() -> SlackReceiver {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Slack receiver");
        let addr = listener.local_addr().expect("local address");
        // A path shaped like Slack's, unique per receiver: it is the secret
        // that must never show in an error.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let token = format!(
            "{:08x}{:016x}",
            std::process::id(),
            nanos as u64 * 2654435761
        );
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Ok),
            log: Mutex::new(Log::default()),
            path: format!("/services/T0BGWTEST/B0BGWTEST/{token}"),
        });
        let receiver = SlackReceiver {
            addr,
            shared,
            server: Mutex::new(None),
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&self, listener: TcpListener) {
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(self.shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        *self.server.lock().unwrap() = Some(Server { shutdown: tx, task });
    }

    /// The webhook URL to configure (`http://127.0.0.1:<port>/services/...`).
    pub fn url(&self) -> String {
        format!("http://{}{}", self.addr, self.shared.path)
    }

    /// The secret part of the URL (its path), to check it never leaks.
    pub fn secret_path(&self) -> &str {
        &self.shared.path
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Changes how it answers. Leaving [`Mode::Down`] listens again on the
    /// same port; entering it closes the listener and idle connections, so
    /// new requests get "connection refused".
    pub async fn set_mode(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
        let running = self.server.lock().unwrap().is_some();
        match (mode, running) {
            (Mode::Down, true) => {
                let server = self.server.lock().unwrap().take().expect("running");
                let _ = server.shutdown.send(());
                let mut task = server.task;
                if tokio::time::timeout(Duration::from_secs(5), &mut task)
                    .await
                    .is_err()
                {
                    task.abort();
                    let _ = task.await;
                }
            }
            (Mode::Down, false) | (_, true) => {}
            (_, false) => {
                let deadline = Instant::now() + Duration::from_secs(10);
                let listener = loop {
                    match TcpListener::bind(self.addr).await {
                        Ok(l) => break l,
                        Err(e) if Instant::now() < deadline => {
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(e) => panic!("cannot listen again on {}: {e}", self.addr),
                    }
                };
                self.serve(listener);
            }
        }
    }

    /// Payloads accepted (answered `200 ok`), in arrival order.
    pub fn messages(&self) -> Vec<Value> {
        let log = self.shared.log.lock().unwrap();
        log.accepted.iter().map(|(v, _)| v.clone()).collect()
    }

    /// When each accepted payload arrived (same order as [`Self::messages`]).
    pub fn received_at(&self) -> Vec<Instant> {
        let log = self.shared.log.lock().unwrap();
        log.accepted.iter().map(|(_, t)| *t).collect()
    }

    /// Payloads refused as Slack would, with the reason
    /// (`invalid_blocks: attachments[0].blocks[1].text.text: ...`).
    pub fn rejected(&self) -> Vec<(Value, String)> {
        self.shared.log.lock().unwrap().rejected.clone()
    }

    /// Every request that reached it, whatever the answer.
    pub fn requests(&self) -> usize {
        self.shared.log.lock().unwrap().requests
    }

    /// Polls until at least `n` payloads were accepted; panics after
    /// `timeout` with what it got.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "Slack receiver: {} of {n} messages after {timeout:?}; rejected: {:?}",
                    got.len(),
                    self.rejected()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for SlackReceiver {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.task.abort();
        }
    }
}

async fn handle(State(shared): State<Arc<Shared>>, uri: Uri, body: Bytes) -> Response {
    let mode = *shared.mode.lock().unwrap();
    shared.log.lock().unwrap().requests += 1;
    match mode {
        Mode::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, slack_body_for(code)).into_response();
        }
        Mode::TooMany { retry_after_secs } => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after_secs.to_string())],
                "rate_limited",
            )
                .into_response();
        }
        Mode::Ok | Mode::Down => {}
    }
    if uri.path() != shared.path {
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let text = String::from_utf8_lossy(&body).into_owned();
            shared
                .log
                .lock()
                .unwrap()
                .rejected
                .push((Value::String(text), format!("invalid_payload: {e}")));
            return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
        }
    };
    match validate(&payload) {
        Ok(()) => {
            shared
                .log
                .lock()
                .unwrap()
                .accepted
                .push((payload, Instant::now()));
            (StatusCode::OK, "ok").into_response()
        }
        Err((code, detail)) => {
            shared
                .log
                .lock()
                .unwrap()
                .rejected
                .push((payload, format!("{code}: {detail}")));
            (StatusCode::BAD_REQUEST, code).into_response()
        }
    }
}

/// The body Slack sends with each status.
fn slack_body_for(code: u16) -> &'static str {
    match code {
        400 => "invalid_payload",
        403 => "invalid_token",
        404 => "no_service",
        410 => "channel_is_archived",
        500 => "internal_error",
        503 => "service_unavailable",
        _ => "error",
    }
}

const KNOWN_BLOCKS: &[&str] = &[
    "actions",
    "context",
    "divider",
    "file",
    "header",
    "image",
    "input",
    "markdown",
    "rich_text",
    "section",
    "video",
];

/// Judges a payload as Slack's incoming webhook does: `Err((code, detail))`
/// with Slack's error code (`invalid_payload`, `no_text`, `invalid_blocks`,
/// `invalid_attachments`).
pub fn validate(payload: &Value) -> Result<(), (&'static str, String)> {
    let obj = payload
        .as_object()
        .ok_or(("invalid_payload", "not a JSON object".to_string()))?;
    let text_ok = match obj.get("text") {
        None | Some(Value::Null) => false,
        Some(Value::String(s)) => !s.trim().is_empty(),
        Some(_) => return Err(("invalid_payload", "text is not a string".into())),
    };
    let mut has_blocks = false;
    if let Some(blocks) = obj.get("blocks") {
        validate_blocks(blocks, "blocks").map_err(|d| ("invalid_blocks", d))?;
        has_blocks = blocks.as_array().is_some_and(|b| !b.is_empty());
    }
    let mut has_attachments = false;
    if let Some(attachments) = obj.get("attachments") {
        let list = attachments
            .as_array()
            .ok_or(("invalid_attachments", "attachments is not an array".into()))?;
        if list.len() > 100 {
            return Err(("invalid_attachments", "more than 100 attachments".into()));
        }
        for (i, a) in list.iter().enumerate() {
            let at = format!("attachments[{i}]");
            let a = a
                .as_object()
                .ok_or(("invalid_attachments", format!("{at} is not an object")))?;
            if let Some(color) = a.get("color") {
                let ok = color.as_str().is_some_and(|c| {
                    matches!(c, "good" | "warning" | "danger")
                        || (c.len() == 7
                            && c.starts_with('#')
                            && c[1..].chars().all(|ch| ch.is_ascii_hexdigit()))
                });
                if !ok {
                    return Err(("invalid_attachments", format!("{at}.color: {color}")));
                }
            }
            if let Some(blocks) = a.get("blocks") {
                validate_blocks(blocks, &format!("{at}.blocks"))
                    .map_err(|d| ("invalid_blocks", d))?;
            }
        }
        has_attachments = !list.is_empty();
    }
    if !text_ok && !has_blocks && !has_attachments {
        return Err(("no_text", "no text, blocks or attachments".into()));
    }
    Ok(())
}

fn validate_blocks(blocks: &Value, at: &str) -> Result<(), String> {
    let list = blocks.as_array().ok_or(format!("{at} is not an array"))?;
    if list.len() > 50 {
        return Err(format!("{at}: {} blocks, at most 50", list.len()));
    }
    for (i, block) in list.iter().enumerate() {
        let at = format!("{at}[{i}]");
        let b = block.as_object().ok_or(format!("{at} is not an object"))?;
        let kind = b
            .get("type")
            .and_then(Value::as_str)
            .ok_or(format!("{at}.type missing"))?;
        if !KNOWN_BLOCKS.contains(&kind) {
            return Err(format!("{at}.type: unknown block type {kind:?}"));
        }
        if let Some(id) = b.get("block_id") {
            if id
                .as_str()
                .is_none_or(|s| s.is_empty() || s.chars().count() > 255)
            {
                return Err(format!("{at}.block_id invalid"));
            }
        }
        match kind {
            "header" => {
                let text = b.get("text").ok_or(format!("{at}.text missing"))?;
                text_object(text, &format!("{at}.text"), 150, true)?;
            }
            "section" => {
                let text = b.get("text");
                let fields = b.get("fields");
                if text.is_none() && fields.is_none() {
                    return Err(format!("{at}: a section needs text or fields"));
                }
                if let Some(text) = text {
                    text_object(text, &format!("{at}.text"), 3000, false)?;
                }
                if let Some(fields) = fields {
                    let fields = fields
                        .as_array()
                        .ok_or(format!("{at}.fields is not an array"))?;
                    if fields.is_empty() || fields.len() > 10 {
                        return Err(format!("{at}.fields: {} fields, 1 to 10", fields.len()));
                    }
                    for (j, f) in fields.iter().enumerate() {
                        text_object(f, &format!("{at}.fields[{j}]"), 2000, false)?;
                    }
                }
            }
            "context" => {
                let elements = b
                    .get("elements")
                    .and_then(Value::as_array)
                    .ok_or(format!("{at}.elements missing"))?;
                if elements.is_empty() || elements.len() > 10 {
                    return Err(format!(
                        "{at}.elements: {} elements, 1 to 10",
                        elements.len()
                    ));
                }
                for (j, e) in elements.iter().enumerate() {
                    let at = format!("{at}.elements[{j}]");
                    if e.get("type").and_then(Value::as_str) == Some("image") {
                        image(e, &at)?;
                    } else {
                        text_object(e, &at, 3000, false)?;
                    }
                }
            }
            "image" => image(block, &at)?,
            _ => {}
        }
    }
    Ok(())
}

fn image(e: &Value, at: &str) -> Result<(), String> {
    for key in ["image_url", "alt_text"] {
        if e.get(key).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(format!("{at}.{key} missing"));
        }
    }
    Ok(())
}

/// A Block Kit text object: `{"type": "plain_text"|"mrkdwn", "text": "..."}`.
fn text_object(v: &Value, at: &str, max: usize, plain_only: bool) -> Result<(), String> {
    let o = v.as_object().ok_or(format!("{at} is not a text object"))?;
    let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
    match kind {
        "plain_text" => {}
        "mrkdwn" if !plain_only => {
            if o.contains_key("emoji") {
                return Err(format!("{at}.emoji is only allowed on plain_text"));
            }
        }
        other => {
            return Err(format!(
                "{at}.type must be {}, not {other:?}",
                if plain_only {
                    "plain_text"
                } else {
                    "plain_text or mrkdwn"
                }
            ))
        }
    }
    let text = o
        .get("text")
        .and_then(Value::as_str)
        .ok_or(format!("{at}.text missing or not a string"))?;
    if text.is_empty() {
        return Err(format!("{at}.text is empty"));
    }
    let len = text.chars().count();
    if len > max {
        return Err(format!("{at}.text: {len} characters, at most {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn judges_payloads_like_slack() {
        assert!(validate(&json!({"text": "hi"})).is_ok());
        assert_eq!(validate(&json!({})).unwrap_err().0, "no_text");
        assert_eq!(validate(&json!({"text": ""})).unwrap_err().0, "no_text");
        assert_eq!(validate(&json!([1])).unwrap_err().0, "invalid_payload");
        assert_eq!(
            validate(&json!({"text": "x", "blocks": [{"type": "bogus"}]}))
                .unwrap_err()
                .0,
            "invalid_blocks"
        );
        let long_header = json!({"blocks": [{"type": "header",
            "text": {"type": "plain_text", "text": "x".repeat(151)}}]});
        assert_eq!(validate(&long_header).unwrap_err().0, "invalid_blocks");
        let mrkdwn_header = json!({"blocks": [{"type": "header",
            "text": {"type": "mrkdwn", "text": "x"}}]});
        assert_eq!(validate(&mrkdwn_header).unwrap_err().0, "invalid_blocks");
        let too_many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
        assert_eq!(
            validate(&json!({"text": "x", "attachments": [{"blocks": too_many}]}))
                .unwrap_err()
                .0,
            "invalid_blocks"
        );
        let good = json!({"text": "x", "attachments": [{"color": "#2eb67d", "blocks": [
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "*a*\nb"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}]}]}]});
        assert!(validate(&good).is_ok());
    }
}
