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
//!   plus [`ConnLimits::reserve`] reserved ones, together below the process's
//!   file limit ([`raise_nofile_limit`]) with room left for the database, the
//!   log files and the notification channels' sockets. When the general pool
//!   is full, a new connection takes a reserved slot: it must send a
//!   privileged request (`/healthz`, or a heartbeat, report or admin call
//!   carrying a valid token) within `reserve_header_timeout`, or it is closed
//!   (`503`). When the reserve is full too, the oldest reserved connection
//!   that has not yet proved itself is closed to make room.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
    /// Of those, kept for `/healthz` and requests with a valid token.
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
    /// pool and a reserve (at most half of the total).
    pub fn new(settings: &ServerSettings, nofile: u64) -> ConnLimits {
        let by_files = if nofile > 2 * FD_HEADROOM {
            nofile - FD_HEADROOM
        } else {
            nofile / 2
        };
        let total = settings.max_connections.min(by_files).max(2);
        let reserve = settings.reserved_connections.clamp(1, total / 2);
        ConnLimits {
            general: total - reserve,
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
        match setrlimit(Resource::Nofile, wanted.clone()) {
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
    /// Connections closed at once because both pools were full.
    pub refused: AtomicU64,
    /// Reserved connections closed to make room for a newer one.
    pub evicted: AtomicU64,
}

/// One connection in the reserve: evictable until it proves itself.
struct ReserveEntry {
    id: u64,
    proven: Arc<AtomicBool>,
    evict: Arc<tokio::sync::Notify>,
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
    let reserved: Arc<Mutex<VecDeque<ReserveEntry>>> = Arc::default();
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
        let (permit, in_reserve) = match general.clone().try_acquire_owned() {
            Ok(p) => (Some(p), None),
            Err(_) => match take_reserve(limits.reserve, next_id, &reserved, &stats) {
                Some(handles) => (None, Some(handles)),
                None => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    drop(stream);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(serve_connection(Connection {
            id: next_id,
            stream,
            peer,
            router: router.clone(),
            settings: settings.clone(),
            privileged: privileged.clone(),
            permit,
            in_reserve,
            reserved: reserved.clone(),
            stats: stats.clone(),
            stop: stop_rx.clone(),
        }));
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

/// Puts a new connection in the reserve: in a free slot, or in the slot of
/// the oldest reserved connection that has not sent a privileged request yet
/// (which is closed). `None` when every reserved connection has proved itself.
fn take_reserve(
    capacity: u64,
    id: u64,
    reserved: &Mutex<VecDeque<ReserveEntry>>,
    stats: &ConnStats,
) -> Option<(Arc<AtomicBool>, Arc<tokio::sync::Notify>)> {
    let mut queue = reserved.lock().expect("reserve lock");
    if queue.len() as u64 >= capacity {
        let victim = queue
            .iter()
            .position(|e| !e.proven.load(Ordering::Relaxed))?;
        let victim = queue.remove(victim)?;
        victim.evict.notify_one();
        stats.evicted.fetch_add(1, Ordering::Relaxed);
    }
    let entry = ReserveEntry {
        id,
        proven: Arc::default(),
        evict: Arc::default(),
    };
    let handles = (entry.proven.clone(), entry.evict.clone());
    queue.push_back(entry);
    Some(handles)
}

struct Connection {
    id: u64,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    settings: ServerSettings,
    privileged: Privileged,
    /// The general pool's slot; `None` in the reserve.
    permit: Option<OwnedSemaphorePermit>,
    /// `(proven, evict)` when the connection uses a reserved slot.
    in_reserve: Option<(Arc<AtomicBool>, Arc<tokio::sync::Notify>)>,
    reserved: Arc<Mutex<VecDeque<ReserveEntry>>>,
    stats: Arc<ConnStats>,
    stop: watch::Receiver<bool>,
}

async fn serve_connection(c: Connection) {
    let Connection {
        id,
        stream,
        peer,
        router,
        settings,
        privileged,
        permit,
        in_reserve,
        reserved,
        stats,
        mut stop,
    } = c;
    stats.open.fetch_add(1, Ordering::Relaxed);
    if in_reserve.is_some() {
        stats.reserved_in_use.fetch_add(1, Ordering::Relaxed);
    }
    let proven = in_reserve.as_ref().map(|(p, _)| p.clone());
    let evict = in_reserve.as_ref().map(|(_, e)| e.clone());
    let body_timeout = settings.body_timeout;
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut router = router.clone();
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(peer));
        let refuse = match &proven {
            Some(proven) if !proven.load(Ordering::Relaxed) => {
                if privileged(&parts) {
                    proven.store(true, Ordering::Relaxed);
                    false
                } else {
                    true
                }
            }
            _ => false,
        };
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
        .header_read_timeout(if in_reserve.is_some() {
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
    let evicted = async {
        match &evict {
            Some(e) => e.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(evicted);
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
            () = &mut evicted => break,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    if in_reserve.is_some() {
        reserved
            .lock()
            .expect("reserve lock")
            .retain(|e| e.id != id);
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
        assert_eq!(l.general + l.reserve, 1024 - FD_HEADROOM);
        assert_eq!(l.reserve, 64);
        let l = ConnLimits::new(&s, 1_048_576);
        assert_eq!(l.general + l.reserve, 4096);
        let l = ConnLimits::new(&s, 300);
        assert_eq!(l.general + l.reserve, 150);
        assert!(l.reserve >= 1 && l.reserve <= 75);
    }
}
