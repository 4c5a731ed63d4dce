//! The two colors of a blue/green deployment.

use std::fmt;
use std::str::FromStr;

/// Blue or green. Anything else is not a color: it is rejected at parse time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Blue,
    Green,
}

impl Color {
    /// The other color: the idle one when `self` is live.
    pub fn other(self) -> Color {
        match self {
            Color::Blue => Color::Green,
            Color::Green => Color::Blue,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Color::Blue => "blue",
            Color::Green => "green",
        }
    }

    /// Parses the content of a `live_file` as the original scripts wrote it:
    /// surrounding whitespace (a trailing newline from `echo`) is tolerated,
    /// anything else is `None` ("undefined"), never a guess.
    pub fn from_live_file(content: &str) -> Option<Color> {
        content.trim().parse().ok()
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseColorError(pub String);

impl fmt::Display for ParseColorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid color {:?}: expected \"blue\" or \"green\"",
            self.0
        )
    }
}

impl std::error::Error for ParseColorError {}

impl FromStr for Color {
    type Err = ParseColorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "blue" => Ok(Color::Blue),
            "green" => Ok(Color::Green),
            other => Err(ParseColorError(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_file_tolerates_whitespace_but_nothing_else() {
        assert_eq!(Color::from_live_file("blue"), Some(Color::Blue));
        assert_eq!(Color::from_live_file(" green\n"), Some(Color::Green));
        assert_eq!(Color::from_live_file("Blue"), None);
        assert_eq!(Color::from_live_file(""), None);
        assert_eq!(Color::from_live_file("blue green"), None);
    }

    #[test]
    fn other_swaps_colors() {
        assert_eq!(Color::Blue.other(), Color::Green);
        assert_eq!(Color::Green.other(), Color::Blue);
    }
}
