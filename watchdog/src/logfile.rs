//! The operator's log files: `log_dir/YYYY-MM-DD.log` (UTC date), one line
//! per event, appended, in the format of the original health-check script:
//!
//! ```text
//! [14:03:20] - ALERT: blue DOWN: no heartbeat for 12s (period 5s, grace 5s)
//! ```
//!
//! [`DailyLog`] owns the files: it writes each line with a single `write()`
//! on a file opened with `O_APPEND`, so lines from several writers (two
//! watchdogs, a shell script) never interleave, and it moves to the next
//! file when the date of the line changes. A file deleted while open is
//! recreated at the next line. [`LogSink`] puts a `DailyLog` behind a bounded
//! channel on a blocking thread, so request handlers never wait on the disk.
//! The line builders at the end give the contract's exact wording.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bgw_wire::Color;
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The log directory cannot be written: an error at start.
///
/// The I/O error is part of the message rather than a `source()`, so that
/// `anyhow`'s `{:#}` does not print it twice.
#[derive(Debug, thiserror::Error)]
#[error("log_dir {} is not writable: {cause}", dir.display())]
pub struct LogFileError {
    /// The configured directory.
    pub dir: PathBuf,
    /// Why it cannot be written.
    pub cause: io::Error,
}

/// Appends lines to `dir/<UTC date>.log`.
#[derive(Debug)]
pub struct DailyLog {
    dir: PathBuf,
    /// The open file and the date it is for.
    current: Option<(NaiveDate, File)>,
}

impl DailyLog {
    /// Creates `dir` if it is missing, and proves it writable by opening
    /// today's file for append (creating it, empty, if needed).
    pub fn open(dir: &Path) -> Result<DailyLog, LogFileError> {
        let mut log = DailyLog {
            dir: dir.to_path_buf(),
            current: None,
        };
        let today = Utc::now().date_naive();
        let file = log.open_file(today).map_err(|cause| LogFileError {
            dir: dir.to_path_buf(),
            cause,
        })?;
        log.current = Some((today, file));
        Ok(log)
    }

    /// The directory the files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that lines dated `date` go to.
    pub fn path_for(&self, date: NaiveDate) -> PathBuf {
        self.dir.join(format!("{}.log", date.format("%Y-%m-%d")))
    }

    /// Appends `[HH:MM:SS] - {line}` (UTC) to the file of `at`'s UTC date, in
    /// one `write()`. After an error the file is reopened at the next line.
    pub fn append(&mut self, at: DateTime<Utc>, line: &str) -> io::Result<()> {
        let mut text = format_line(at, line);
        text.push('\n');
        let file = self.file_for(at.date_naive())?;
        let written = file.write_all(text.as_bytes());
        if written.is_err() {
            self.current = None;
        }
        written
    }

    /// The open file for `date`, (re)opened when the date changed or the file
    /// was deleted under us.
    fn file_for(&mut self, date: NaiveDate) -> io::Result<&mut File> {
        let usable = match &self.current {
            Some((open_date, file)) => {
                *open_date == date && file.metadata().map(|m| m.nlink() > 0).unwrap_or(false)
            }
            None => false,
        };
        if !usable {
            self.current = None;
            let file = self.open_file(date)?;
            self.current = Some((date, file));
        }
        match &mut self.current {
            Some((_, file)) => Ok(file),
            None => unreachable!("just opened"),
        }
    }

    fn open_file(&self, date: NaiveDate) -> io::Result<File> {
        if self.dir.exists() && !self.dir.is_dir() {
            return Err(io::Error::other("it is not a directory"));
        }
        std::fs::create_dir_all(&self.dir)?;
        // 0640: the log names checks and reasons; not for every user.
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(self.path_for(date))
    }
}

/// `[14:03:07] - {line}`: the UTC time of day, then the line with any line
/// breaks turned into spaces so one event stays one line, and every other
/// control character (terminal escape sequences included) written as
/// `\x1b` or `\u{9b}`, so that `cat` or `tail -f` of the log cannot be
/// driven by what a client sent.
pub fn format_line(at: DateTime<Utc>, line: &str) -> String {
    let mut out = format!("[{}] - ", at.format("%H:%M:%S"));
    out.reserve(line.len());
    for c in line.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x80 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Lines waiting for the disk before writers have to wait.
const SINK_CAPACITY: usize = 1024;

/// A cheap, cloneable handle that hands lines to a blocking task owning a
/// [`DailyLog`]. When the channel is full, [`LogSink::write`] waits; lines are
/// never dropped. The task ends once every `LogSink` clone is dropped, after
/// writing every line it was given; await its `JoinHandle` on shutdown.
#[derive(Debug, Clone)]
pub struct LogSink {
    lines: mpsc::Sender<(DateTime<Utc>, String)>,
}

impl LogSink {
    /// Moves `log` to a blocking task. Call from within a tokio runtime.
    pub fn spawn(log: DailyLog) -> (LogSink, JoinHandle<()>) {
        let (lines, queue) = mpsc::channel(SINK_CAPACITY);
        let task = tokio::task::spawn_blocking(move || drain(log, queue));
        (LogSink { lines }, task)
    }

    /// Queues one line dated `at`; waits while the queue is full.
    pub async fn write(&self, at: DateTime<Utc>, line: String) {
        if self.lines.send((at, line)).await.is_err() {
            tracing::error!("the log file writer has stopped; a log line was lost");
        }
    }
}

/// The writer task: every line in order until all senders are gone. A write
/// that fails is reported once per run of failures (not per line), with how
/// many lines were lost, and the next line tries again.
fn drain(mut log: DailyLog, mut queue: mpsc::Receiver<(DateTime<Utc>, String)>) {
    let mut lost = 0u64;
    while let Some((at, line)) = queue.blocking_recv() {
        match log.append(at, &line) {
            Ok(()) if lost > 0 => {
                tracing::warn!(dir = %log.dir.display(), lost, "log file writable again");
                lost = 0;
            }
            Ok(()) => {}
            Err(error) => {
                if lost == 0 {
                    tracing::error!(
                        dir = %log.dir.display(), %error,
                        "cannot write the log file; lines are lost until it works again"
                    );
                }
                lost += 1;
            }
        }
    }
    if lost > 0 {
        tracing::error!(dir = %log.dir.display(), lost, "log lines lost at shutdown");
    }
}

/// `ALERT: blue DOWN: no heartbeat for 12s (period 5s, grace 5s)`.
pub fn alert_line(check: &str, state_upper: &str, reason: &str) -> String {
    format!("ALERT: {check} {state_upper}: {reason}")
}

/// `RECOVERED: blue UP after 1m30s` (whole seconds once over one second).
pub fn recovered_line(check: &str, down_for: Duration) -> String {
    let down_for = if down_for >= Duration::from_secs(1) {
        Duration::from_secs(down_for.as_secs())
    } else {
        down_for
    };
    format!(
        "RECOVERED: {check} UP after {}",
        bgw_wire::format_duration(down_for)
    )
}

/// `ROLLBACK: green -> blue: green failed 43s after toggle (agents silent, checker: 502)`.
pub fn rollback_line(from: Color, to: Color, reason: &str) -> String {
    format!("ROLLBACK: {from} -> {to}: {reason}")
}

#[cfg(test)]
mod tests;
