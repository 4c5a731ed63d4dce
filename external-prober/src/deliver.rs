//! Delivering one outbox entry to its channel: retried with the channel
//! library's backoff (honouring `Retry-After`) until it is delivered, then
//! removed; a permanent error is logged and the entry kept aside as
//! `*.failed`. Each entry has its own task, so a channel that is down does not
//! hold back the others.

use crate::outbox::Outbox;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Why a send failed, as the outbox needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    Permanent {
        reason: String,
    },
}

/// A notification channel (Slack, email, webhook; a fake in unit tests).
pub trait Sink: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    fn name(&self) -> &str;
    fn send(&self, item: &Self::Item) -> impl Future<Output = Result<(), Failure>> + Send;
}

/// How long to wait after `attempt` failures (`bgw_notify::retry_delay`).
pub type RetryDelay = fn(u32, Option<Duration>) -> Duration;

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Sent after this many attempts.
    Sent { attempts: u32 },
    /// Given up on a permanent error; the entry is now at `kept`.
    GaveUp { reason: String, kept: PathBuf },
}

/// Sends `item` (stored at `path`) through `sink` until it is delivered or
/// refused for good.
pub async fn deliver<S: Sink>(
    outbox: &Outbox,
    path: PathBuf,
    item: &S::Item,
    sink: Arc<S>,
    retry_delay: RetryDelay,
) -> Delivered {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match sink.send(item).await {
            Ok(()) => {
                if let Err(e) = outbox.remove(&path) {
                    tracing::error!(channel = sink.name(), %file, error = %e, "delivered, but cannot remove the outbox file");
                }
                tracing::info!(channel = sink.name(), %file, attempts, "alert delivered");
                return Delivered::Sent { attempts };
            }
            Err(Failure::Permanent { reason }) => {
                let kept = outbox.fail(&path).unwrap_or(path.clone());
                tracing::error!(
                    channel = sink.name(),
                    %file,
                    error = %reason,
                    kept = %kept.display(),
                    "alert refused for good; not retrying"
                );
                return Delivered::GaveUp { reason, kept };
            }
            Err(Failure::Transient {
                reason,
                retry_after,
            }) => {
                let wait = retry_delay(attempts, retry_after);
                if attempts == 1 {
                    tracing::warn!(channel = sink.name(), %file, error = %reason, "alert not delivered yet; retrying with backoff");
                } else {
                    tracing::debug!(channel = sink.name(), %file, error = %reason, attempts, ?wait, "retrying");
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Entry;
    use std::path::Path;
    use std::sync::Mutex;

    /// Answers with the scripted results, then Ok.
    struct Fake {
        script: Mutex<Vec<Result<(), Failure>>>,
        sent: Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(script: Vec<Result<(), Failure>>) -> Arc<Fake> {
            Arc::new(Fake {
                script: Mutex::new(script),
                sent: Mutex::new(Vec::new()),
            })
        }
    }

    impl Sink for Fake {
        type Item = String;
        fn name(&self) -> &str {
            "fake"
        }
        async fn send(&self, item: &String) -> Result<(), Failure> {
            self.sent.lock().unwrap().push(item.clone());
            let mut s = self.script.lock().unwrap();
            if s.is_empty() {
                Ok(())
            } else {
                s.remove(0)
            }
        }
    }

    fn transient(retry_after: Option<Duration>) -> Result<(), Failure> {
        Err(Failure::Transient {
            reason: "503".into(),
            retry_after,
        })
    }

    fn no_wait(_: u32, _: Option<Duration>) -> Duration {
        Duration::from_millis(1)
    }

    /// Delivers the entry at `path` to `fake`, without waiting between
    /// attempts.
    async fn deliver_down(outbox: &Outbox, path: &Path, fake: &Arc<Fake>) -> Delivered {
        deliver(
            outbox,
            path.to_path_buf(),
            &"DOWN".to_string(),
            fake.clone(),
            no_wait,
        )
        .await
    }

    fn setup() -> (tempfile::TempDir, Outbox, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let path = outbox
            .put(
                "1-down",
                &Entry {
                    channel: "fake".into(),
                    notification: "DOWN".to_string(),
                },
            )
            .unwrap();
        (dir, outbox, path)
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_delivered_then_the_file_goes() {
        let (_d, outbox, path) = setup();
        let fake = Fake::new(vec![transient(None), transient(None)]);
        let got = deliver_down(&outbox, &path, &fake).await;
        assert_eq!(got, Delivered::Sent { attempts: 3 });
        assert_eq!(fake.sent.lock().unwrap().len(), 3);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_permanent_failure_stops_and_keeps_the_entry_aside() {
        let (_d, outbox, path) = setup();
        let fake = Fake::new(vec![
            transient(None),
            Err(Failure::Permanent {
                reason: "404 no_service".into(),
            }),
        ]);
        let got = deliver_down(&outbox, &path, &fake).await;
        let Delivered::GaveUp { reason, kept } = got else {
            panic!("expected to give up")
        };
        assert_eq!(reason, "404 no_service");
        assert!(kept.exists() && !path.exists());
        assert_eq!(fake.sent.lock().unwrap().len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_between_attempts_comes_from_retry_delay_with_retry_after() {
        let (_d, outbox, path) = setup();
        let fake = Fake::new(vec![transient(Some(Duration::from_secs(7)))]);
        fn honour(_: u32, retry_after: Option<Duration>) -> Duration {
            retry_after.unwrap_or(Duration::from_secs(1))
        }
        let start = tokio::time::Instant::now();
        deliver(&outbox, path, &"DOWN".to_string(), fake, honour).await;
        assert_eq!(start.elapsed().as_secs(), 7);
    }
}
