//! An in-process stand-in for the watchdog as a reporter sees it, for the
//! tests of `bgw-checker` and `bgw-prober` and the prober benchmark:
//! `GET /healthz` answers 200 and `POST /api/v1/report` answers 202 and
//! records the report with its `Authorization` header. It runs on a
//! [`Server`] that can be stopped (the port then refuses connections) and
//! started again on the same address, as a killed and restarted watchdog.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bgw_wire::Report;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long [`Server::restart`] and [`FakeWatchdog::wait_for_report`] wait
/// before they give up.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// An HTTP server on a fixed loopback address that can be stopped and
/// started again.
pub struct Server {
    pub addr: SocketAddr,
    router: Router,
    running: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Server {
    /// Serves `router` on a free loopback port.
    pub async fn start(router: Router) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let mut s = Server {
            addr: listener.local_addr().expect("local address"),
            router,
            running: None,
        };
        s.serve(listener);
        s
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = self.router.clone();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        self.running = Some((tx, task));
    }

    /// Stops answering: the port is closed until [`Server::restart`].
    pub async fn stop(&mut self) {
        if let Some((tx, task)) = self.running.take() {
            let _ = tx.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// Listens again on the same address, retrying while the port is still
    /// taken, for up to [`DEADLINE`].
    pub async fn try_restart(&mut self) -> std::io::Result<()> {
        let start = Instant::now();
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if start.elapsed() >= DEADLINE => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
        Ok(())
    }

    /// [`Server::try_restart`], panicking when the port cannot be had.
    pub async fn restart(&mut self) {
        if let Err(e) = self.try_restart().await {
            panic!("cannot rebind {}: {e}", self.addr);
        }
    }
}

type Recorded = Arc<Mutex<Vec<(String, Report)>>>;

/// The watchdog's `/healthz` and report endpoint, recording every report.
pub struct FakeWatchdog {
    pub server: Server,
    recorded: Recorded,
}

impl FakeWatchdog {
    /// Starts on a free loopback port.
    pub async fn start() -> FakeWatchdog {
        async fn report(
            State(recorded): State<Recorded>,
            headers: HeaderMap,
            Json(report): Json<Report>,
        ) -> StatusCode {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            recorded.lock().unwrap().push((auth, report));
            StatusCode::ACCEPTED
        }
        let recorded = Recorded::default();
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/api/v1/report", post(report))
            .with_state(recorded.clone());
        FakeWatchdog {
            server: Server::start(router).await,
            recorded,
        }
    }

    /// The base URL, as `watchdog_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// (Authorization header, report) of every report received, in order.
    pub fn received(&self) -> Vec<(String, Report)> {
        self.recorded.lock().unwrap().clone()
    }

    /// Every report received, in order.
    pub fn reports(&self) -> Vec<Report> {
        self.received().into_iter().map(|(_, r)| r).collect()
    }

    /// The `Authorization` header of every report received, in order.
    pub fn authorizations(&self) -> Vec<String> {
        self.received().into_iter().map(|(a, _)| a).collect()
    }

    /// Waits for a report, received after the first `skip`, that `pred`
    /// accepts; panics after [`DEADLINE`].
    pub async fn wait_for_report(&self, skip: usize, pred: impl Fn(&Report) -> bool) -> Report {
        let find = async {
            loop {
                if let Some(r) = self.reports().into_iter().skip(skip).find(|r| pred(r)) {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(DEADLINE, find)
            .await
            .expect("timed out waiting for a matching report")
    }
}
