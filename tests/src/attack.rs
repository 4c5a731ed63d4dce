//! Attacks on a watchdog's listener, for the hardening tests and `bench
//! attack`: idle connections (slow loris) and connections that send a large
//! request head and never finish it. Loopback only.

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// Raises this process's soft open-file limit to its hard limit (the
/// attacker needs thousands of sockets); returns the new soft limit.
pub fn raise_nofile_limit() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Opens `n` connections that send nothing, and holds them until dropped.
/// Connections the server refuses or closes at once are counted, not kept.
pub async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for _ in 0..n {
        match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => continue,
        }
    }
    held
}

/// What became of one half-sent request head.
#[derive(Debug, Clone, Copy)]
pub struct HalfHeadOutcome {
    /// Bytes of the head the server took before it stopped reading.
    pub sent: usize,
    /// When the server closed the connection, from the connect; `None` if it
    /// was still open when the attack gave up.
    pub closed_after: Option<Duration>,
}

/// Opens `n` connections that each send a request head of `head_bytes`
/// (a request line and one endless header), never finishing it, and hold
/// them for up to `hold`. The attack runs on its own thread and runtime, as
/// an attacker on another machine would, so it does not slow down the
/// caller's own requests. Joins to each connection's outcome.
pub fn half_heads(
    addr: SocketAddr,
    n: usize,
    head_bytes: usize,
    hold: Duration,
) -> std::thread::JoinHandle<Vec<HalfHeadOutcome>> {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("attack runtime");
        runtime.block_on(async {
            let mut set = JoinSet::new();
            for _ in 0..n {
                set.spawn(half_head(addr, head_bytes, hold));
            }
            let mut outcomes = Vec::with_capacity(n);
            while let Some(o) = set.join_next().await {
                outcomes.push(o.expect("attack task"));
            }
            outcomes
        })
    })
}

async fn half_head(addr: SocketAddr, head_bytes: usize, hold: Duration) -> HalfHeadOutcome {
    let start = Instant::now();
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await
    else {
        return HalfHeadOutcome {
            sent: 0,
            closed_after: Some(start.elapsed()),
        };
    };
    let mut sent = 0;
    let mut head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ".to_vec();
    head.resize(head_bytes, b'a');
    // The server may stop reading (its buffer is full): write with a bound.
    for chunk in head.chunks(16 * 1024) {
        match tokio::time::timeout(hold, s.write_all(chunk)).await {
            Ok(Ok(())) => sent += chunk.len(),
            Ok(Err(_)) => {
                return HalfHeadOutcome {
                    sent,
                    closed_after: Some(start.elapsed()),
                }
            }
            Err(_) => break,
        }
    }
    let left = hold.saturating_sub(start.elapsed());
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(left, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    HalfHeadOutcome {
        sent,
        closed_after: closed.is_ok().then(|| start.elapsed()),
    }
}

/// A client that opens a new connection for every request, as a restarted
/// agent or a one-shot `curl` does.
pub fn fresh_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(timeout)
        .build()
        .expect("http client")
}
