//! `bgw-testapp`: the small app the tests and the demo deploy as "blue" and
//! "green". `GET /ping` answers `200 pong <color> <version>` until told
//! otherwise through the control endpoints:
//!
//! - `POST /control/fail` → `/ping` answers 500; `POST /control/ok` → 200 again
//! - `POST /control/slow?ms=N` → `/ping` waits N ms before answering
//! - `POST /control/exit?code=N` → the process exits with code N (a crash)
//! - `GET /` → the app's page, `POST /echo` → echoes the body (benchmarks)
//!
//! `--fail` starts it failing. It exits 0 on SIGTERM, like a well-behaved app.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    // No automatic --version: `--version` is the version the app plays.
    disable_version_flag = true,
    about = "Test app for bgw: answers /ping, can be told to fail, stall or crash"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// The color this instance plays (shown in answers).
    #[arg(long, default_value = "blue")]
    color: String,
    /// The version this instance plays.
    #[arg(long, default_value = "1.0.0")]
    version: String,
    /// Start with /ping answering 500.
    #[arg(long)]
    fail: bool,
}

struct App {
    color: String,
    version: String,
    failing: AtomicBool,
    slow_ms: AtomicU64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let app = Arc::new(App {
        color: args.color,
        version: args.version,
        failing: AtomicBool::new(args.fail),
        slow_ms: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/", get(page))
        .route("/ping", get(ping).head(ping))
        .route("/echo", post(|body: String| async move { body }))
        .route(
            "/control/fail",
            post(|State(a): State<Arc<App>>| async move {
                a.failing.store(true, Ordering::SeqCst);
                "failing\n"
            }),
        )
        .route(
            "/control/ok",
            post(|State(a): State<Arc<App>>| async move {
                a.failing.store(false, Ordering::SeqCst);
                a.slow_ms.store(0, Ordering::SeqCst);
                "ok\n"
            }),
        )
        .route("/control/slow", post(slow))
        .route("/control/exit", post(exit))
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    eprintln!("bgw-testapp listening on {}", listener.local_addr()?);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await
}

async fn page(State(app): State<Arc<App>>) -> String {
    format!("bgw test app: {} {}\n", app.color, app.version)
}

async fn ping(State(app): State<Arc<App>>) -> (StatusCode, String) {
    let ms = app.slow_ms.load(Ordering::SeqCst);
    if ms > 0 {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if app.failing.load(Ordering::SeqCst) {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("broken {} {}\n", app.color, app.version),
        )
    } else {
        (
            StatusCode::OK,
            format!("pong {} {}\n", app.color, app.version),
        )
    }
}

async fn slow(State(app): State<Arc<App>>, Query(q): Query<HashMap<String, u64>>) -> String {
    let ms = q.get("ms").copied().unwrap_or(3000);
    app.slow_ms.store(ms, Ordering::SeqCst);
    format!("slow {ms}ms\n")
}

async fn exit(Query(q): Query<HashMap<String, i32>>) -> &'static str {
    let code = q.get("code").copied().unwrap_or(1);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        std::process::exit(code);
    });
    "exiting\n"
}
