//! Placeholder until the real logfile module lands.
use chrono::{DateTime, Utc};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("log_dir {0} is not writable: {1}")]
pub struct LogFileError(String, std::io::Error);

pub struct DailyLog {
    dir: PathBuf,
}

impl DailyLog {
    pub fn open(dir: &Path) -> Result<DailyLog, LogFileError> {
        std::fs::create_dir_all(dir).map_err(|e| LogFileError(dir.display().to_string(), e))?;
        Ok(DailyLog { dir: dir.to_path_buf() })
    }
    pub fn append(&mut self, at: DateTime<Utc>, line: &str) -> std::io::Result<()> {
        let p = self.dir.join(format!("{}.log", at.format("%Y-%m-%d")));
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(p)?;
        f.write_all(format_line(at, line).as_bytes())
    }
}

pub fn format_line(at: DateTime<Utc>, line: &str) -> String {
    format!("[{}] - {}\n", at.format("%H:%M:%S"), line.replace('\n', " "))
}

#[derive(Clone)]
pub struct LogSink(tokio::sync::mpsc::Sender<(DateTime<Utc>, String)>);

impl LogSink {
    pub fn spawn(mut log: DailyLog) -> (LogSink, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(DateTime<Utc>, String)>(1024);
        let h = tokio::spawn(async move {
            while let Some((at, l)) = rx.recv().await {
                let _ = log.append(at, &l);
            }
        });
        (LogSink(tx), h)
    }
    pub async fn write(&self, at: DateTime<Utc>, line: String) {
        let _ = self.0.send((at, line)).await;
    }
}

pub fn alert_line(check: &str, state_upper: &str, reason: &str) -> String {
    format!("ALERT: {check} {state_upper}: {reason}")
}
pub fn recovered_line(check: &str, down_for: std::time::Duration) -> String {
    format!("RECOVERED: {check} UP after {}", bgw_wire::format_duration(down_for))
}
