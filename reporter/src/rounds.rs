//! The reporters' schedule: a round starts every `interval`, and rounds
//! overlap, so a target that hangs until `timeout` does not delay the next
//! reports (each report is also the reporter's heartbeat). At most
//! timeout/interval + 1 rounds are in flight.

use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// A finished round.
#[derive(Debug)]
pub struct Finished<T> {
    pub outcome: T,
    /// Started after every round finished before it: only such a round is
    /// reported, so a slow old round never overwrites a newer one.
    pub newest: bool,
}

/// Overlapping rounds on a fixed interval; the first starts at once.
pub struct Rounds<T> {
    ticker: tokio::time::Interval,
    done_tx: mpsc::Sender<(u64, T)>,
    done_rx: mpsc::Receiver<(u64, T)>,
    running: JoinSet<()>,
    started: u64,
    newest: u64,
}

impl<T: Send + 'static> Rounds<T> {
    pub fn new(interval: Duration) -> Rounds<T> {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (done_tx, done_rx) = mpsc::channel(8);
        Rounds {
            ticker,
            done_tx,
            done_rx,
            running: JoinSet::new(),
            started: 0,
            newest: 0,
        }
    }

    /// Starts a round (`round()`) at every tick until one finishes, and
    /// returns it. Cancel safe: use it in a `select!`.
    pub async fn next<F>(&mut self, round: impl Fn() -> F) -> Finished<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        loop {
            tokio::select! {
                _ = self.ticker.tick() => {
                    self.started += 1;
                    let (seq, tx, run) = (self.started, self.done_tx.clone(), round());
                    self.running.spawn(async move {
                        let _ = tx.send((seq, run.await)).await;
                    });
                }
                Some((seq, outcome)) = self.done_rx.recv() => {
                    let newest = seq > self.newest;
                    if newest {
                        self.newest = seq;
                    }
                    return Finished { outcome, newest };
                }
                Some(_) = self.running.join_next() => {}
            }
        }
    }

    /// Aborts the rounds in flight.
    pub fn stop(&mut self) {
        self.running.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_round_does_not_hold_back_the_next_and_is_not_the_newest() {
        let mut rounds = Rounds::new(Duration::from_secs(1));
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let round = || {
            let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            async move {
                // The first round hangs for 2.5 intervals.
                let wait = if n == 1 { 2500 } else { 100 };
                tokio::time::sleep(Duration::from_millis(wait)).await;
                n
            }
        };
        let second = rounds.next(round).await;
        assert_eq!((second.outcome, second.newest), (2, true));
        let third = rounds.next(round).await;
        assert_eq!((third.outcome, third.newest), (3, true));
        let first = rounds.next(round).await;
        assert_eq!((first.outcome, first.newest), (1, false));
        rounds.stop();
    }
}
