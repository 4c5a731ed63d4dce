//! `bgw-sample-app`: the app the images, the swarm drills and the swarm demo
//! deploy as blue and green, under `bgw-agent` as the container's entrypoint
//! wrapper (`bgw-agent -- /bgw-sample-app`).
//!
//! - `GET /ping` → `200 pong <color> <version>` with `X-Bgw-Color: <color>`
//!   (nginx stamps the same header; the app's own lets a direct probe tell
//!   the colors apart too)
//! - `GET /` → a one-line page naming color and version
//! - admin switches, to play failures: `POST /admin/fail` (`/ping` answers
//!   500), `/admin/hang` (`/ping` never answers), `/admin/ok` (healthy
//!   again), `/admin/crash?code=N` (the process exits with N, default 1)
//!
//! Configured by flags or environment: the color and version are the
//! agent's own `BGW_COLOR` and `BGW_VERSION` (one source for both
//! processes of the container, and the image sets the version), the address
//! is `APP_LISTEN` (default `0.0.0.0:3000`), `APP_FAIL=1` starts it broken
//! (an image of a "bad release"). The listening socket sets `SO_REUSEPORT`,
//! so replicas sharing a network namespace (swarm tasks on the host network
//! of one node) share the port. SIGTERM: a graceful stop, exit 0.

use axum::extract::{Query, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(
    disable_version_flag = true,
    about = "bgw's sample app: /ping answers with its color and version; /admin/{fail,hang,ok,crash}"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "APP_LISTEN", default_value = "0.0.0.0:3000")]
    listen: SocketAddr,
    /// The color this instance plays.
    #[arg(long, env = "BGW_COLOR", default_value = "blue")]
    color: String,
    /// The version this instance plays.
    #[arg(long = "app-version", env = "BGW_VERSION", default_value = "1.0.0")]
    version: String,
    /// Start broken (`/ping` answers 500): a bad release.
    #[arg(long, env = "APP_FAIL", value_parser = clap::builder::BoolishValueParser::new(), default_value = "false")]
    fail: bool,
}

/// What `/ping` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Health {
    Ok = 0,
    Fail = 1,
    Hang = 2,
}

struct App {
    color: String,
    version: String,
    health: AtomicU8,
}

impl App {
    fn health(&self) -> Health {
        match self.health.load(Ordering::SeqCst) {
            0 => Health::Ok,
            1 => Health::Fail,
            _ => Health::Hang,
        }
    }

    fn set(&self, health: Health) {
        self.health.store(health as u8, Ordering::SeqCst);
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let app = Arc::new(App {
        color: args.color,
        version: args.version,
        health: AtomicU8::new(if args.fail { 1 } else { 0 }),
    });
    let router = Router::new()
        .route("/", get(page))
        .route("/ping", get(ping).head(ping))
        .route("/admin/ok", post(|s| admin(s, Health::Ok)))
        .route("/admin/fail", post(|s| admin(s, Health::Fail)))
        .route("/admin/hang", post(|s| admin(s, Health::Hang)))
        .route("/admin/crash", post(crash))
        .with_state(app.clone());
    let socket = if args.listen.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(args.listen)?;
    let listener = socket.listen(1024)?;
    eprintln!(
        "bgw-sample-app {} {} listening on {}",
        app.color,
        app.version,
        listener.local_addr()?
    );
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

fn color_header(app: &App) -> [(HeaderName, HeaderValue); 1] {
    [(
        HeaderName::from_static("x-bgw-color"),
        HeaderValue::from_str(&app.color).unwrap_or(HeaderValue::from_static("unknown")),
    )]
}

async fn page(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        color_header(&app),
        format!("bgw sample app: {} {}\n", app.color, app.version),
    )
}

async fn ping(State(app): State<Arc<App>>) -> impl IntoResponse {
    match app.health() {
        Health::Ok => (
            StatusCode::OK,
            color_header(&app),
            format!("pong {} {}\n", app.color, app.version),
        ),
        Health::Fail => (
            StatusCode::INTERNAL_SERVER_ERROR,
            color_header(&app),
            format!("broken {} {}\n", app.color, app.version),
        ),
        Health::Hang => {
            // Longer than any probe's timeout; `/admin/ok` does not free
            // requests already hanging, like a real deadlock.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (
                StatusCode::SERVICE_UNAVAILABLE,
                color_header(&app),
                String::new(),
            )
        }
    }
}

async fn admin(State(app): State<Arc<App>>, health: Health) -> String {
    app.set(health);
    format!("{health:?}\n").to_lowercase()
}

async fn crash(Query(q): Query<HashMap<String, i32>>) -> &'static str {
    let code = q.get("code").copied().unwrap_or(1);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(10)).await;
        std::process::exit(code);
    });
    "crashing\n"
}
