//! The listener and connection layer: accepts TCP connections and serves
//! the API over HTTP/1 with every resource bounded, so that idle or
//! half-sent connections cannot silence the watchdog.
//!
//! - **Timeouts.** A request's headers must arrive within `header_timeout`,
//!   counted from the connection's start or from the end of the previous
//!   response (hyper restarts the timer for each request, so this is also the
//!   keep-alive idle timeout); its body within `body_timeout`.
//! - **Sizes.** Headers over `max_header_bytes` are refused (`431`) and
//!   hyper's read buffer is capped, so a connection holds a bounded amount of
//!   memory.
//! - **Connections.** At most [`ConnLimits::general`] ordinary connections,
//!   plus [`ConnLimits::reserve`] reserved ones and as many newcomers on
//!   probation, all together below the process's file limit
//!   ([`raise_nofile_limit`]) with [`FD_HEADROOM`] descriptors left for the
//!   database, the log files and the notification channels' sockets. When
//!   the general pool is full, a new connection is on probation: if its first
//!   request head arrives in full within `reserve_header_timeout` and is
//!   privileged (`/healthz`, or a heartbeat, report or admin call carrying a
//!   valid token) it is served in a reserved slot; otherwise it is closed.
//!   When every place on probation is taken, the oldest newcomer is closed
//!   to make room, so a flood of idle connections cannot keep a real client
//!   out for longer than it takes that client to send its request.
//! - **Shutdown.** When `shutdown` resolves the listener stops, every
//!   connection is asked to finish its request and close, and whatever is
//!   still open after `shutdown_timeout` is dropped.

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// File descriptors kept out of the connection pools: the database and its
/// WAL, the log file, notification channels' sockets, nginx and deploy
/// commands' pipes.
pub const FD_HEADROOM: u64 = 256;

/// The connection layer's settings (`[server]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Time to send a request's headers (also the keep-alive idle timeout).
    pub header_timeout: Duration,
    /// Time to send a request's body, from the end of its headers.
    pub body_timeout: Duration,
    /// Time a connection in the reserve has to send a privileged request.
    pub reserve_header_timeout: Duration,
    /// Largest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
    /// Upper bound on open connections (the file limit may lower it).
    pub max_connections: u64,
    /// Of those, kept for `/healthz` and requests with a valid token (and
    /// as many again for newcomers being checked for one).
    pub reserved_connections: u64,
    /// How long a clean shutdown waits for open connections.
    pub shutdown_timeout: Duration,
    /// Failed authentications per second allowed per client address
    /// (bursts of five times that); `429` beyond.
    pub failed_auth_per_second: u32,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            reserve_header_timeout: Duration::from_secs(2),
            max_header_bytes: 16 * 1024,
            max_connections: 4096,
            reserved_connections: 64,
            shutdown_timeout: Duration::from_secs(10),
            failed_auth_per_second: 2,
        }
    }
}

/// The connection pools' sizes, derived from the settings and the file limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    pub general: u64,
    pub reserve: u64,
}

impl ConnLimits {
    /// Splits `min(max_connections, nofile - FD_HEADROOM)` into a general
    /// pool, a reserve and as many places on probation (the reserve is at
    /// most a quarter of the total).
    pub fn new(settings: &ServerSettings, nofile: u64) -> ConnLimits {
        let by_files = if nofile > 2 * FD_HEADROOM {
            nofile - FD_HEADROOM
        } else {
            nofile / 2
        };
        let total = settings.max_connections.min(by_files).max(4);
        let reserve = settings.reserved_connections.clamp(1, total / 4);
        ConnLimits {
            general: total - 2 * reserve,
            reserve,
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns the soft
/// limit now in force.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        let wanted = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, wanted) {
            Ok(()) => limit = wanted,
            Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
        }
    }
    limit.current.unwrap_or(1 << 20)
}

/// Whether a request may use a reserved connection: decided by the API,
/// which knows the tokens.
pub type Privileged = Arc<dyn Fn(&axum::http::request::Parts) -> bool + Send + Sync>;

/// Counters the metrics and the benchmark read.
#[derive(Debug, Default)]
pub struct ConnStats {
    pub open: AtomicU64,
    pub reserved_in_use: AtomicU64,
    /// Newcomers closed: no privileged request in time, or no room.
    pub refused: AtomicU64,
    /// Newcomers on probation closed to make room for a newer one.
    pub evicted: AtomicU64,
}

/// Newcomers being checked for a privileged request, oldest first.
#[derive(Default)]
struct Probation {
    waiting: Mutex<VecDeque<(u64, Arc<tokio::sync::Notify>)>>,
}

impl Probation {
    /// Admits connection `id`, closing the oldest one on probation when all
    /// `capacity` places are taken. Returns what tells `id` it was evicted.
    fn admit(&self, id: u64, capacity: u64, stats: &ConnStats) -> Arc<tokio::sync::Notify> {
        let mut waiting = self.waiting.lock().expect("probation lock");
        if waiting.len() as u64 >= capacity {
            if let Some((_, evict)) = waiting.pop_front() {
                evict.notify_one();
                stats.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let evict = Arc::new(tokio::sync::Notify::new());
        waiting.push_back((id, evict.clone()));
        evict
    }

    fn leave(&self, id: u64) {
        self.waiting
            .lock()
            .expect("probation lock")
            .retain(|(i, _)| *i != id);
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then closes
/// every connection within `settings.shutdown_timeout`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    settings: ServerSettings,
    limits: ConnLimits,
    privileged: Privileged,
    stats: Arc<ConnStats>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let general = Arc::new(Semaphore::new(limits.general as usize));
    let reserve = Arc::new(Semaphore::new(limits.reserve as usize));
    let probation = Arc::new(Probation::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        next_id += 1;
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            stream,
            peer,
            router: router.clone(),
            settings: settings.clone(),
            privileged: privileged.clone(),
            permit: None,
            in_reserve: false,
            stats: stats.clone(),
            stop: stop_rx.clone(),
        };
        match general.clone().try_acquire_owned() {
            Ok(permit) => {
                tasks.spawn(serve_connection(Connection {
                    permit: Some(permit),
                    ..connection
                }));
            }
            Err(_) => {
                let evicted = probation.admit(next_id, limits.reserve, &stats);
                tasks.spawn(probation_then_serve(
                    connection,
                    next_id,
                    probation.clone(),
                    evicted,
                    reserve.clone(),
                ));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(settings.shutdown_timeout, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            "connections still open after the shutdown timeout: closing them"
        );
        tasks.shutdown().await;
    }
}

/// A newcomer while the general pool is full: it gets a reserved slot if its
/// first request head arrives in full within `reserve_header_timeout` and is
/// privileged; otherwise (or when evicted by a newer one, or when the
/// reserve is full) it is closed.
async fn probation_then_serve(
    mut c: Connection,
    id: u64,
    probation: Arc<Probation>,
    evicted: Arc<tokio::sync::Notify>,
    reserve: Arc<Semaphore>,
) {
    let head = tokio::select! {
        () = evicted.notified() => None,
        head = tokio::time::timeout(c.settings.reserve_header_timeout, wait_head(&c.stream)) => {
            head.ok().flatten()
        }
    };
    probation.leave(id);
    let admitted = head.is_some_and(|h| (c.privileged)(&h));
    if !admitted {
        tracing::debug!(peer = %c.peer, "closed on probation: no privileged request in time");
        c.stats.refused.fetch_add(1, Ordering::Relaxed);
        return;
    }
    match reserve.try_acquire_owned() {
        Ok(permit) => {
            c.permit = Some(permit);
            c.in_reserve = true;
            serve_connection(c).await;
        }
        Err(_) => {
            c.stats.refused.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Waits for the first request head to be there in full (peeking, so hyper
/// still reads it); `None` when it does not fit the peek buffer or the
/// connection ends first.
async fn wait_head(stream: &tokio::net::TcpStream) -> Option<axum::http::request::Parts> {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = stream.peek(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        if let Some(parts) = parse_head(&buf[..n]) {
            return Some(parts);
        }
        if n == buf.len() {
            return None;
        }
        // Peeking does not consume: wait a little for the rest.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The method, target and `Authorization` of a complete request head.
fn parse_head(data: &[u8]) -> Option<axum::http::request::Parts> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&data[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let mut request = axum::http::Request::builder()
        .method(request_line.next()?)
        .uri(request_line.next()?);
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("authorization") {
            request = request.header(axum::http::header::AUTHORIZATION, value.trim());
        }
    }
    request.body(()).ok().map(|r| r.into_parts().0)
}

struct Connection {
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    settings: ServerSettings,
    privileged: Privileged,
    /// The slot this connection holds (general pool or reserve).
    permit: Option<OwnedSemaphorePermit>,
    /// Whether the slot is a reserved one: every request must be privileged.
    in_reserve: bool,
    stats: Arc<ConnStats>,
    stop: watch::Receiver<bool>,
}

async fn serve_connection(c: Connection) {
    let Connection {
        stream,
        peer,
        router,
        settings,
        privileged,
        permit,
        in_reserve,
        stats,
        mut stop,
    } = c;
    stats.open.fetch_add(1, Ordering::Relaxed);
    if in_reserve {
        stats.reserved_in_use.fetch_add(1, Ordering::Relaxed);
    }
    let body_timeout = settings.body_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(peer));
        let refuse = in_reserve && !privileged(&parts);
        let body = axum::body::Body::new(TimeoutBody::new(body, body_timeout));
        let req = axum::http::Request::from_parts(parts, body);
        async move {
            if refuse {
                return Ok::<_, std::convert::Infallible>(busy());
            }
            tower::Service::call(&mut router, req).await
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(if in_reserve {
            settings.reserve_header_timeout
        } else {
            settings.header_timeout
        })
        .max_header_size(settings.max_header_bytes)
        .max_headers(100)
        .max_buf_size((settings.max_header_bytes * 2).max(8192))
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    if in_reserve {
        stats.reserved_in_use.fetch_sub(1, Ordering::Relaxed);
    }
    stats.open.fetch_sub(1, Ordering::Relaxed);
    drop(permit);
}

/// The answer on a reserved connection to a request that is not privileged.
fn busy() -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut r = crate::api::error::ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "the watchdog is at its connection limit: only /healthz and requests with a valid token are served",
    )
    .into_response();
    r.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    r
}

/// A request body that fails once `timeout` has passed before its end.
struct TimeoutBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl TimeoutBody {
    fn new(inner: hyper::body::Incoming, timeout: Duration) -> TimeoutBody {
        TimeoutBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// The request body did not arrive within `body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received in time")]
pub struct BodyTimeout;

impl http_body::Body for TimeoutBody {
    type Data = axum::body::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(BodyTimeout.into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pools_stay_below_the_file_limit_with_headroom() {
        let s = ServerSettings::default();
        let l = ConnLimits::new(&s, 1024);
        assert_eq!(l.general + 2 * l.reserve, 1024 - FD_HEADROOM);
        assert_eq!(l.reserve, 64);
        let l = ConnLimits::new(&s, 1_048_576);
        assert_eq!(l.general + 2 * l.reserve, 4096);
        let l = ConnLimits::new(&s, 300);
        assert_eq!(l.general + 2 * l.reserve, 150);
        assert!(l.reserve >= 1 && l.reserve <= 37);
    }
}
