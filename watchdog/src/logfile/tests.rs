//! Unit tests of the log files, on real files in temporary directories.

use super::*;

fn at(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .with_timezone(&Utc)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

#[test]
fn a_line_is_the_utc_time_a_dash_and_the_text() {
    assert_eq!(
        format_line(
            at("2026-05-01T14:03:07.999Z"),
            "[blue-direct - OK] 3ms. Threshold: 2000ms"
        ),
        "[14:03:07] - [blue-direct - OK] 3ms. Threshold: 2000ms"
    );
    assert_eq!(
        format_line(at("2026-05-01T16:03:07+02:00"), "x"),
        "[14:03:07] - x",
        "the time of day is UTC"
    );
    assert_eq!(
        format_line(
            at("2026-05-01T00:00:00Z"),
            "GET /ping returned 502:\nBad Gateway\r\n"
        ),
        "[00:00:00] - GET /ping returned 502: Bad Gateway  "
    );
}

#[test]
fn control_characters_are_escaped_so_the_log_cannot_drive_a_terminal() {
    assert_eq!(
        format_line(
            at("2026-05-01T00:00:00Z"),
            "bad \x1b[31mred\x1b[0m\tbell\x07 del\x7f csi\u{9b}2J é"
        ),
        "[00:00:00] - bad \\x1b[31mred\\x1b[0m\\x09bell\\x07 del\\x7f csi\\u{9b}2J é"
    );
}

#[test]
fn new_log_files_are_readable_by_owner_and_group_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let mut log = DailyLog::open(dir.path()).unwrap();
    log.append(at("2026-05-01T00:00:00Z"), "x").unwrap();
    let path = log.path_for(date("2026-05-01"));
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & !0o640, 0, "mode {mode:o}");
}

#[test]
fn the_line_builders_use_the_contract_wording() {
    assert_eq!(
        alert_line("blue", "DOWN", "no heartbeat for 12s (period 5s, grace 5s)"),
        "ALERT: blue DOWN: no heartbeat for 12s (period 5s, grace 5s)"
    );
    assert_eq!(
        recovered_line("blue", Duration::from_millis(90_400)),
        "RECOVERED: blue UP after 1m30s"
    );
    assert_eq!(
        recovered_line("nightly-backup", Duration::from_secs(26 * 3600 + 5)),
        "RECOVERED: nightly-backup UP after 1d2h5s"
    );
    assert_eq!(
        recovered_line("blue", Duration::from_millis(250)),
        "RECOVERED: blue UP after 250ms"
    );
    assert_eq!(
        rollback_line(
            Color::Green,
            Color::Blue,
            "green failed 43s after toggle (agents silent, checker: 502)"
        ),
        "ROLLBACK: green -> blue: green failed 43s after toggle (agents silent, checker: 502)"
    );
}

#[test]
fn open_creates_the_missing_directory_and_todays_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("var/log/challenge");
    let log = DailyLog::open(&dir).unwrap();
    assert!(dir.is_dir());
    assert!(log.path_for(Utc::now().date_naive()).is_file());
    assert_eq!(log.dir(), dir);
}

#[test]
fn lines_go_to_the_file_of_their_utc_date() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = DailyLog::open(tmp.path()).unwrap();
    log.append(at("2026-05-01T14:03:07Z"), "first").unwrap();
    log.append(at("2026-05-01T14:03:12Z"), "second").unwrap();
    assert_eq!(
        read(&tmp.path().join("2026-05-01.log")),
        "[14:03:07] - first\n[14:03:12] - second\n"
    );
}

#[test]
fn crossing_midnight_utc_starts_the_next_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = DailyLog::open(tmp.path()).unwrap();
    log.append(at("2026-05-01T23:59:59Z"), "before").unwrap();
    log.append(at("2026-05-02T00:00:00Z"), "after").unwrap();
    // An event dated at its deadline, noticed after midnight, goes to its day.
    log.append(at("2026-05-01T23:59:59.500Z"), "late").unwrap();
    assert_eq!(
        read(&log.path_for(date("2026-05-01"))),
        "[23:59:59] - before\n[23:59:59] - late\n"
    );
    assert_eq!(
        read(&log.path_for(date("2026-05-02"))),
        "[00:00:00] - after\n"
    );
    // Madrid's midnight is not the file boundary.
    log.append(at("2026-05-03T00:30:00+02:00"), "utc").unwrap();
    assert_eq!(
        read(&log.path_for(date("2026-05-02"))),
        "[00:00:00] - after\n[22:30:00] - utc\n"
    );
}

#[test]
fn appending_keeps_what_the_file_already_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("2026-05-01.log");
    std::fs::write(&path, "[10:00:00] - written by the old script\n").unwrap();
    let mut log = DailyLog::open(tmp.path()).unwrap();
    log.append(at("2026-05-01T14:03:07Z"), "ours").unwrap();
    drop(log);
    let mut again = DailyLog::open(tmp.path()).unwrap();
    again
        .append(at("2026-05-01T14:03:08Z"), "after a restart")
        .unwrap();
    assert_eq!(
        read(&path),
        "[10:00:00] - written by the old script\n[14:03:07] - ours\n[14:03:08] - after a restart\n"
    );
}

#[test]
fn a_file_deleted_while_open_is_recreated_at_the_next_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut log = DailyLog::open(tmp.path()).unwrap();
    let path = log.path_for(date("2026-05-01"));
    log.append(at("2026-05-01T10:00:00Z"), "one").unwrap();
    std::fs::remove_file(&path).unwrap();
    log.append(at("2026-05-01T10:00:01Z"), "two").unwrap();
    assert_eq!(read(&path), "[10:00:01] - two\n");
    std::fs::remove_dir_all(tmp.path()).unwrap();
    log.append(at("2026-05-01T10:00:02Z"), "three").unwrap();
    assert_eq!(read(&path), "[10:00:02] - three\n", "the directory too");
}

#[test]
fn a_log_dir_under_a_regular_file_is_refused_naming_the_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let dir = file.join("challenge");
    let err = DailyLog::open(&dir).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "log_dir {} is not writable: Not a directory (os error 20)",
            dir.display()
        )
    );
    assert_eq!(err.dir, dir);
    assert!(!dir.exists());
}

#[test]
fn a_log_dir_that_is_a_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("challenge");
    std::fs::write(&file, "keep me").unwrap();
    let err = DailyLog::open(&file).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "log_dir {} is not writable: it is not a directory",
            file.display()
        )
    );
    assert_eq!(read(&file), "keep me", "nothing changed");
}

#[test]
fn lines_from_concurrent_writers_never_interleave() {
    let tmp = tempfile::tempdir().unwrap();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let dir = tmp.path().to_path_buf();
            std::thread::spawn(move || {
                // Each writer has its own file handle, like separate processes.
                let mut log = DailyLog::open(&dir).unwrap();
                let filler = char::from(b'a' + w as u8).to_string().repeat(500);
                for i in 0..2000 {
                    log.append(at("2026-05-01T12:00:00Z"), &format!("w{w} {i} {filler}"))
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    let text = read(&tmp.path().join("2026-05-01.log"));
    let mut next = [0; 4];
    for line in text.lines() {
        let rest = line.strip_prefix("[12:00:00] - w").expect(line);
        let mut parts = rest.split(' ');
        let w: usize = parts.next().unwrap().parse().unwrap();
        let i: usize = parts.next().unwrap().parse().unwrap();
        let filler = parts.next().unwrap();
        assert_eq!(filler, char::from(b'a' + w as u8).to_string().repeat(500));
        assert_eq!(i, next[w], "writer {w} out of order");
        next[w] += 1;
    }
    assert_eq!(next, [2000; 4]);
}

#[tokio::test]
async fn the_sink_writes_every_line_in_order_after_the_senders_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let (sink, task) = LogSink::spawn(DailyLog::open(tmp.path()).unwrap());
    // More lines than the channel holds, from several clones at once.
    let senders: Vec<_> = (0..3)
        .map(|s| {
            let sink = sink.clone();
            tokio::spawn(async move {
                for i in 0..1500 {
                    sink.write(at("2026-05-01T12:00:00Z"), format!("s{s} {i}"))
                        .await;
                }
            })
        })
        .collect();
    sink.write(at("2026-05-02T00:00:01Z"), "next day".to_string())
        .await;
    drop(sink);
    for sender in senders {
        sender.await.unwrap();
    }
    task.await.unwrap();

    let text = read(&tmp.path().join("2026-05-01.log"));
    let mut next = [0; 3];
    for line in text.lines() {
        let rest = line.strip_prefix("[12:00:00] - s").expect(line);
        let (s, i) = rest.split_once(' ').unwrap();
        let (s, i): (usize, usize) = (s.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[s], "sender {s} out of order");
        next[s] += 1;
    }
    assert_eq!(next, [1500; 3]);
    assert_eq!(
        read(&tmp.path().join("2026-05-02.log")),
        "[00:00:01] - next day\n"
    );
}

#[tokio::test]
async fn a_failed_line_does_not_stop_the_sink() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory where one day's file should be: that day cannot be written.
    std::fs::create_dir(tmp.path().join("2030-01-01.log")).unwrap();
    let (sink, task) = LogSink::spawn(DailyLog::open(tmp.path()).unwrap());
    sink.write(at("2029-12-31T23:00:00Z"), "before".to_string())
        .await;
    sink.write(at("2030-01-01T10:00:00Z"), "lost".to_string())
        .await;
    sink.write(at("2030-01-02T10:00:00Z"), "after".to_string())
        .await;
    drop(sink);
    task.await.unwrap();
    assert_eq!(
        read(&tmp.path().join("2029-12-31.log")),
        "[23:00:00] - before\n"
    );
    assert_eq!(
        read(&tmp.path().join("2030-01-02.log")),
        "[10:00:00] - after\n"
    );
}
