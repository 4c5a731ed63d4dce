//! The live file (`/var/live`), as the original scripts wrote it: `blue` or
//! `green`, with or without a trailing newline (`echo -n` or `echo`). One
//! reader for the watchdog and the checker: surrounding whitespace is
//! tolerated, anything else is reported as invalid and never guessed.

use bgw_wire::Color;
use std::path::Path;

/// What the live file says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LiveState {
    Live(Color),
    /// The file does not exist: no color has been made live yet.
    Missing,
    /// The file exists but does not hold a color, or cannot be read; the
    /// text says what was found (`live_file /var/live holds "purple"`).
    Invalid(String),
}

impl LiveState {
    /// The live color, when there is one.
    pub fn color(&self) -> Option<Color> {
        match self {
            LiveState::Live(c) => Some(*c),
            _ => None,
        }
    }

    /// Why there is no live color, naming the file read at `path`; `None`
    /// when there is one.
    pub fn why_undefined(&self, path: &Path) -> Option<String> {
        match self {
            LiveState::Live(_) => None,
            LiveState::Missing => Some(format!(
                "cannot read live_file {}: it does not exist",
                path.display()
            )),
            LiveState::Invalid(why) => Some(why.clone()),
        }
    }
}

/// Reads the live file at `path`.
pub fn read_live(path: &Path) -> LiveState {
    match std::fs::read(path) {
        Ok(bytes) => parse_live(path, &String::from_utf8_lossy(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => LiveState::Missing,
        Err(e) => LiveState::Invalid(format!("cannot read live_file {}: {e}", path.display())),
    }
}

/// What `text`, read from `path`, says ([`Color::from_live_file`]).
pub fn parse_live(path: &Path, text: &str) -> LiveState {
    match Color::from_live_file(text) {
        Some(c) => LiveState::Live(c),
        None => {
            let shown: String = text.trim().chars().take(40).collect();
            LiveState::Invalid(format!("live_file {} holds {shown:?}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_file_with_a_color_and_a_newline_is_that_color() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("live");
        std::fs::write(&p, "green\n").unwrap();
        assert_eq!(read_live(&p), LiveState::Live(Color::Green));
        std::fs::write(&p, "blue").unwrap();
        assert_eq!(read_live(&p), LiveState::Live(Color::Blue));
        assert_eq!(read_live(&p).color(), Some(Color::Blue));
        assert_eq!(read_live(&p).why_undefined(&p), None);
    }

    #[test]
    fn live_file_with_garbage_is_invalid_and_quotes_it() {
        let p = Path::new("/var/live");
        assert_eq!(
            parse_live(p, "purple\n"),
            LiveState::Invalid("live_file /var/live holds \"purple\"".into())
        );
        assert_eq!(
            parse_live(p, ""),
            LiveState::Invalid("live_file /var/live holds \"\"".into())
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("live");
        std::fs::write(&path, "purple").unwrap();
        match read_live(&path) {
            LiveState::Invalid(why) => assert!(why.contains("\"purple\""), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(read_live(&path).color(), None);
    }

    #[test]
    fn a_missing_live_file_is_missing_and_says_so() {
        let p = Path::new("/nonexistent/live");
        let live = read_live(p);
        assert_eq!(live, LiveState::Missing);
        let reason = live.why_undefined(p).unwrap();
        assert!(
            reason.starts_with("cannot read live_file /nonexistent/live:"),
            "{reason}"
        );
    }

    #[test]
    fn an_unreadable_live_file_is_invalid_with_the_io_error() {
        let dir = tempfile::tempdir().unwrap();
        // A directory cannot be read as a file.
        let LiveState::Invalid(why) = read_live(dir.path()) else {
            panic!("expected invalid");
        };
        assert!(why.starts_with("cannot read live_file "), "{why}");
    }
}
