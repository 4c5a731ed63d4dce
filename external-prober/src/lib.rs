//! `bgw-prober`, the watcher outside the cluster: every `interval` it probes
//! the public URL and the watchdog's `/healthz` and reports both to the
//! watchdog (the report is also the prober's heartbeat). When the watchdog
//! has not answered — neither `/healthz` 200 nor an accepted report — for
//! `silence_after`, the prober sends its own `[bgw] DOWN watchdog` to every
//! configured channel, once per outage, and `[bgw] UP watchdog` when the
//! watchdog answers again.
//!
//! The decision is [`outage::observe`] (pure); alerts go through the disk
//! [`outbox`] in `state_dir`, and a raised outage survives restarts in
//! [`state`], so a prober killed mid-outage neither repeats nor loses its
//! DOWN. Silence counts only while the prober runs ([`outage::resume`]): a
//! prober that was stopped gives the watchdog `silence_after` from its new
//! start. The state belongs to one watchdog (its URL is recorded) and
//! `state_dir` to one running prober ([`lock`]).

pub mod deliver;
pub mod lock;
pub mod outage;
pub mod outbox;
pub mod round;
pub mod settings;
pub mod state;

use bgw_notify::{Channel, Kind, Notification, SendError};
use bgw_reporter::delivery::{join, max_backoff, Delivery, Endpoint};
use bgw_reporter::probe::HttpProber;
use bgw_reporter::rounds::Rounds;
use bgw_wire::{Color, Report, Target};
use chrono::{DateTime, Utc};
use deliver::{Failure, Sink};
use lock::{StateDirError, StateLock};
use outage::{observe, resume, WatchState};
use outbox::{Entry, Outbox};
use settings::Settings;
use state::{Saved, StateFile};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

/// A `bgw_notify` channel as the outbox delivers to it.
pub struct ChannelSink(pub Channel);

impl Sink for ChannelSink {
    type Item = Notification;

    fn name(&self) -> &str {
        self.0.name()
    }

    async fn send(&self, n: &Notification) -> Result<(), Failure> {
        self.0.send(n).await.map_err(|e| match e {
            SendError::Transient {
                reason,
                retry_after,
            } => Failure::Transient {
                reason,
                retry_after,
            },
            SendError::Permanent { reason } => Failure::Permanent { reason },
        })
    }
}

/// The prober's files in `state_dir`: `lock`, `state.json` and `outbox/`,
/// held by this prober alone for as long as it lives.
#[derive(Debug)]
pub struct Durable {
    pub state: StateFile,
    pub outbox: Outbox,
    _lock: StateLock,
}

impl Durable {
    /// Creates `state_dir` and its outbox if needed, takes the directory's
    /// lock (refused while another prober holds it), and checks it is
    /// writable.
    pub fn open(state_dir: &Path) -> Result<Durable, StateDirError> {
        std::fs::create_dir_all(state_dir)?;
        // First the lock: opening the outbox sweeps temporary files, which
        // must not be another running prober's.
        let lock = StateLock::acquire(state_dir)?;
        let outbox = Outbox::open(state_dir.join("outbox"))?;
        let probe = state_dir.join(".writable");
        bgw_reporter::write_atomic(&probe, b"ok")?;
        std::fs::remove_file(&probe)?;
        Ok(Durable {
            state: StateFile::new(state_dir),
            outbox,
            _lock: lock,
        })
    }
}

/// The outbox key of a notification: `<event id>-<down|up>`.
fn outbox_key(n: &Notification) -> String {
    let kind = match n.kind {
        Kind::Up => "up",
        Kind::Down => "down",
        _ => "other",
    };
    format!("{}-{kind}", n.event_id)
}

/// The running prober's alerting side: state, outbox and delivery tasks.
struct Alerter {
    durable: Durable,
    sinks: HashMap<String, Arc<ChannelSink>>,
    deliveries: JoinSet<()>,
    watch: WatchState,
    silence_after: Duration,
    /// Recorded in the state: the state is about this watchdog only.
    watchdog_url: reqwest::Url,
}

impl Alerter {
    /// Restores the saved state (when it is about `watchdog_url`), resumes
    /// watching ([`resume`]), finishes an alert a crash interrupted, and
    /// resumes every pending delivery.
    fn start(
        durable: Durable,
        channels: Vec<Channel>,
        silence_after: Duration,
        watchdog_url: &reqwest::Url,
    ) -> Alerter {
        let sinks = channels
            .into_iter()
            .map(|c| (c.name().to_string(), Arc::new(ChannelSink(c))))
            .collect();
        let now = Utc::now();
        let saved = match durable.state.load::<Notification>() {
            Ok(saved) => saved,
            Err(e) => {
                let aside = durable.state.path().with_extension("json.corrupt");
                let _ = std::fs::rename(durable.state.path(), &aside);
                tracing::error!(error = %e, kept = %aside.display(), "saved state unreadable; starting afresh");
                None
            }
        };
        let saved = match saved {
            Some(saved) if !saved.is_about(watchdog_url) => {
                tracing::warn!(
                    state = %durable.state.path().display(),
                    saved_for = saved.watchdog_url.as_deref().unwrap_or(""),
                    watchdog = %watchdog_url,
                    "saved state is about another watchdog; ignoring it and starting afresh"
                );
                None
            }
            saved => saved,
        };
        let (watch, enqueuing) = match saved {
            Some(saved) => (Some(saved.watch), saved.enqueuing),
            None => (None, None),
        };
        if let Some(outage) = watch.as_ref().and_then(|w| w.outage.as_ref()) {
            tracing::warn!(down_since = %outage.down_at, "restored: the watchdog was silent when the prober stopped");
        }
        let mut alerter = Alerter {
            durable,
            sinks,
            deliveries: JoinSet::new(),
            watch: resume(watch, now),
            silence_after,
            watchdog_url: watchdog_url.clone(),
        };
        if let Some((key, n)) = enqueuing {
            alerter.write_outbox(&key, &n);
        }
        // Records the watchdog and the resumed state at once.
        alerter.save(None);
        alerter.resume();
        alerter
    }

    fn save(&self, enqueuing: Option<(String, Notification)>) {
        let saved = Saved {
            watchdog_url: Some(self.watchdog_url.to_string()),
            watch: self.watch.clone(),
            enqueuing,
        };
        if let Err(e) = self.durable.state.save(&saved) {
            tracing::error!(error = %e, "cannot save the prober's state");
        }
    }

    /// Writes one outbox file per configured channel.
    fn write_outbox(&self, key: &str, n: &Notification) -> Vec<(PathBuf, Entry<Notification>)> {
        let mut written = Vec::new();
        for name in self.sinks.keys() {
            let entry = Entry {
                channel: name.clone(),
                notification: n.clone(),
            };
            match self.durable.outbox.put(key, &entry) {
                Ok(path) => written.push((path, entry)),
                Err(e) => {
                    tracing::error!(channel = %name, error = %e, "cannot write the outbox; sending without it");
                    let path = self.durable.outbox.dir().join(format!("{key}-{name}.json"));
                    written.push((path, entry));
                }
            }
        }
        written
    }

    fn resume(&mut self) {
        let (pending, bad) = match self.durable.outbox.pending::<Notification>() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return;
            }
        };
        for (path, e) in bad {
            tracing::error!(file = %path.display(), error = %e, "unreadable outbox file set aside");
        }
        if !pending.is_empty() {
            tracing::info!(count = pending.len(), "resuming pending alert deliveries");
        }
        for (path, entry) in pending {
            self.spawn_delivery(path, entry);
        }
    }

    fn spawn_delivery(&mut self, path: PathBuf, entry: Entry<Notification>) {
        let Some(sink) = self.sinks.get(&entry.channel).cloned() else {
            tracing::warn!(
                channel = %entry.channel,
                file = %path.display(),
                "outbox entry for a channel that is not configured; left in place"
            );
            return;
        };
        let outbox = self.durable.outbox.clone();
        self.deliveries.spawn(async move {
            deliver::deliver(
                &outbox,
                path,
                &entry.notification,
                sink,
                bgw_notify::retry_delay,
            )
            .await;
        });
    }

    /// Feeds one observation to [`observe`] and acts on the result. `live`
    /// is the color that last served the public URL, named in the alert.
    fn observe(
        &mut self,
        answered: bool,
        error: Option<&str>,
        now: DateTime<Utc>,
        live: Option<Color>,
    ) {
        let (next, notification) = observe(&self.watch, answered, error, now, self.silence_after);
        let notification = notification.map(|n| Notification { live, ..n });
        // Only a raised or ended outage outlives a restart; a new answer
        // need not be written (see `resume`).
        let outage_changed = next.outage != self.watch.outage;
        self.watch = next;
        let Some(n) = notification else {
            if outage_changed {
                self.save(None);
            }
            return;
        };
        match n.kind {
            Kind::Down => {
                tracing::error!(subject = %n.subject(), reason = %n.reason, "the watchdog is silent; alerting")
            }
            _ => {
                tracing::info!(subject = %n.subject(), reason = %n.reason, "the watchdog answers again")
            }
        }
        if self.sinks.is_empty() {
            tracing::error!(subject = %n.subject(), "no [notify.*] channel configured: this alert goes nowhere");
        }
        let key = outbox_key(&n);
        self.save(Some((key.clone(), n.clone())));
        let written = self.write_outbox(&key, &n);
        self.save(None);
        for (path, entry) in written {
            self.spawn_delivery(path, entry);
        }
    }

    /// Time left until the DOWN is due, if one can be.
    fn until_deadline(&self, now: DateTime<Utc>) -> Option<Duration> {
        self.watch
            .deadline(self.silence_after)
            .map(|d| (d - now).to_std().unwrap_or(Duration::ZERO))
    }
}

/// Runs until `shutdown` completes. `channels` come from
/// `bgw_notify::build_channels`; `durable` from [`Durable::open`].
pub async fn run(
    settings: Settings,
    channels: Vec<Channel>,
    durable: Durable,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let user_agent = format!("bgw-prober/{}", env!("CARGO_PKG_VERSION"));
    let round = Arc::new(round::Round {
        prober: HttpProber::new(&user_agent)?,
        public_url: settings.public_url.clone(),
        healthz_url: join(&settings.watchdog_url, "healthz"),
        timeout: settings.timeout,
        threshold: settings.threshold,
    });
    let endpoint = Endpoint::new(
        &user_agent,
        &settings.watchdog_url,
        settings.token.clone(),
        settings.timeout,
    )?;
    let reports = Delivery::spawn(endpoint, max_backoff(settings.interval));
    let mut accepted = reports.accepted();
    let channel_names: Vec<&str> = channels.iter().map(|c| c.name()).collect();
    tracing::info!(
        watchdog = %settings.watchdog_url,
        public_url = %settings.public_url,
        observer = %settings.observer,
        silence_after = %bgw_wire::format_duration(settings.silence_after),
        channels = ?channel_names,
        state_dir = %settings.state_dir.display(),
        "bgw-prober started"
    );
    let mut alerter = Alerter::start(
        durable,
        channels,
        settings.silence_after,
        &settings.watchdog_url,
    );

    // Rounds overlap, so a watchdog that hangs until `timeout` does not
    // delay the reports of the public endpoint (nor the silence deadline).
    let mut rounds = Rounds::new(settings.interval);
    let mut last_error: Option<String> = None;
    let mut accepted_open = true;
    let mut live: Option<Color> = None;
    tokio::pin!(shutdown);
    loop {
        // Far away when no DOWN can be due (one is raised already).
        let wait = alerter
            .until_deadline(Utc::now())
            .unwrap_or(Duration::from_secs(86_400));
        tokio::select! {
            _ = &mut shutdown => break,
            finished = rounds.next(|| {
                let round = round.clone();
                async move { round.run().await }
            }) => {
                let outcome = finished.outcome;
                bgw_reporter::log_seed_lines!("bgw_prober::probe", &outcome.results, settings.threshold);
                if finished.newest {
                    if let Some(public) = outcome.results.iter().find(|r| r.target == Target::Public) {
                        live = public.color.or(live);
                    }
                    reports.submit(Report {
                        observer: settings.observer.clone(),
                        results: outcome.results,
                    });
                    last_error = outcome.watchdog_error.clone();
                }
                alerter.observe(outcome.watchdog_answered, last_error.as_deref(), Utc::now(), live);
            }
            changed = accepted.changed(), if accepted_open => {
                match changed {
                    Ok(()) => alerter.observe(true, None, Utc::now(), live),
                    Err(_) => accepted_open = false,
                }
            }
            _ = tokio::time::sleep(wait) => {
                alerter.observe(false, last_error.as_deref(), Utc::now(), live);
            }
            Some(joined) = alerter.deliveries.join_next() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        tracing::error!(error = %e, "an alert delivery task panicked; its outbox file is retried at the next start");
                    }
                }
            }
        }
    }
    rounds.stop();
    reports.stop();
    alerter.deliveries.abort_all();
    tracing::info!("bgw-prober stopped");
    Ok(())
}
