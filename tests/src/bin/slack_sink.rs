//! `bgw-slack-sink`: a stand-in for Slack's incoming webhook, for the demo.
//!
//! Point `notify.slack.webhook_url` at `http://<listen>/services/T/B/X` (any
//! path under `/services/`). Each payload is judged as Slack would judge it
//! (`200 ok`, or `400 invalid_blocks` / `no_text` / `invalid_payload`) and
//! printed to stdout as a reader would see it in the channel. For outage
//! demos: `POST /control/fail?code=500`, `POST /control/ratelimit?retry_after=5`,
//! `POST /control/ok`.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bgw_e2e::slack::{validate, Mode};
use clap::Parser;
use serde_json::Value;

#[derive(Parser)]
#[command(
    version,
    about = "Local Slack incoming-webhook receiver: prints each message"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8799")]
    listen: String,
    /// Print the raw JSON payload as well.
    #[arg(long)]
    json: bool,
}

struct Sink {
    mode: Mutex<Mode>,
    count: AtomicU64,
    json: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let sink = Arc::new(Sink {
        mode: Mutex::new(Mode::Ok),
        count: AtomicU64::new(0),
        json: args.json,
    });
    let app = axum::Router::new()
        .route("/control/ok", post(control_ok))
        .route("/control/fail", post(control_fail))
        .route("/control/ratelimit", post(control_ratelimit))
        .fallback(receive)
        .with_state(sink);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!(
        "bgw-slack-sink listening: webhook_url = \"http://{}/services/T000/B000/XXXX\"",
        listener.local_addr()?
    );
    let _ = std::io::stdout().flush();
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

async fn control_ok(State(sink): State<Arc<Sink>>) -> &'static str {
    *sink.mode.lock().unwrap() = Mode::Ok;
    println!("-- mode: ok");
    "ok"
}

async fn control_fail(
    State(sink): State<Arc<Sink>>,
    Query(q): Query<HashMap<String, String>>,
) -> &'static str {
    let code = q.get("code").and_then(|c| c.parse().ok()).unwrap_or(500);
    *sink.mode.lock().unwrap() = Mode::Status(code);
    println!("-- mode: answer {code}");
    "ok"
}

async fn control_ratelimit(
    State(sink): State<Arc<Sink>>,
    Query(q): Query<HashMap<String, String>>,
) -> &'static str {
    let secs = q
        .get("retry_after")
        .and_then(|c| c.parse().ok())
        .unwrap_or(5);
    *sink.mode.lock().unwrap() = Mode::TooMany {
        retry_after_secs: secs,
    };
    println!("-- mode: 429, Retry-After {secs}s");
    "ok"
}

async fn receive(State(sink): State<Arc<Sink>>, uri: Uri, body: Bytes) -> Response {
    if !uri.path().starts_with("/services/") {
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    }
    let mode = *sink.mode.lock().unwrap();
    match mode {
        Mode::Status(code) => {
            println!("-- answered {code} to a message (outage mode)");
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, "internal_error").into_response();
        }
        Mode::TooMany { retry_after_secs } => {
            println!("-- answered 429 to a message (rate-limit mode)");
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", retry_after_secs.to_string())],
                "rate_limited",
            )
                .into_response();
        }
        Mode::Ok | Mode::Down => {}
    }
    let payload: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            println!("-- REJECTED invalid_payload: {e}");
            return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
        }
    };
    if let Err((code, detail)) = validate(&payload) {
        println!("-- REJECTED {code}: {detail}\n{payload}");
        return (StatusCode::BAD_REQUEST, code).into_response();
    }
    let n = sink.count.fetch_add(1, Ordering::Relaxed) + 1;
    let mut out = format!("=== message #{n} ===\n");
    render(&payload, &mut out);
    if sink.json {
        out.push_str(&serde_json::to_string_pretty(&payload).unwrap_or_default());
        out.push('\n');
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    (StatusCode::OK, "ok").into_response()
}

/// Prints the blocks roughly as Slack shows them: header, colour, texts.
fn render(payload: &Value, out: &mut String) {
    let mut blocks: Vec<&Value> = Vec::new();
    if let Some(list) = payload["blocks"].as_array() {
        blocks.extend(list);
    }
    for attachment in payload["attachments"].as_array().into_iter().flatten() {
        if let Some(color) = attachment["color"].as_str() {
            out.push_str(&format!("[{color}]\n"));
        }
        blocks.extend(attachment["blocks"].as_array().into_iter().flatten());
    }
    if blocks.is_empty() {
        out.push_str(payload["text"].as_str().unwrap_or(""));
        out.push('\n');
        return;
    }
    for block in blocks {
        match block["type"].as_str() {
            Some("header") | Some("section") => {
                if let Some(t) = block["text"]["text"].as_str() {
                    out.push_str(t);
                    out.push('\n');
                }
                let fields: Vec<String> = block["fields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["text"].as_str())
                    .map(|t| t.replace('\n', " "))
                    .collect();
                if !fields.is_empty() {
                    out.push_str(&fields.join(" | "));
                    out.push('\n');
                }
            }
            Some("context") => {
                for e in block["elements"].as_array().into_iter().flatten() {
                    if let Some(t) = e["text"].as_str() {
                        out.push_str(&format!("  {t}\n"));
                    }
                }
            }
            _ => {}
        }
    }
}
