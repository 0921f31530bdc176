//! What the configurations of agent and collector share: their errors, which name the file,
//! the key and its line, and durations written `250ms`, `10s`, `5m`, `2h`, `1d`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    // The OS error is part of the message, not a cause: shown once.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}{}: {key}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
        /// The line of `key` in the file, when it is written there.
        line: Option<usize>,
    },
}

impl ConfigError {
    /// This error with the line of its key in `text` (the file it came from), as parse
    /// errors have theirs.
    pub fn at_line_in(self, text: &str) -> Self {
        match self {
            ConfigError::Invalid {
                path,
                key,
                message,
                line: None,
            } => ConfigError::Invalid {
                line: line_of(text, key),
                path,
                key,
                message,
            },
            other => other,
        }
    }
}

/// The line (from 1) where dotted `key` is set in TOML `text`: its last part at the start of
/// a line, within the table its other parts name (`[http]` or `[[ingest.agents]]` for
/// `http.listen`, `ingest.agents.token`), or at the top for a key without a table; for a key
/// that names a table (`notify.voice`), the table's header.
fn line_of(text: &str, key: &str) -> Option<usize> {
    let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if let Some(h) = t.strip_prefix('[') {
            current = h.trim_matches(|c| c == '[' || c == ']').trim().to_owned();
            // A key that names a table (`notify.voice`): its header.
            if current == key {
                return Some(i + 1);
            }
            continue;
        }
        let sets = t
            .strip_prefix(name)
            .is_some_and(|rest| rest.trim_start().starts_with('='));
        if sets && current == table {
            return Some(i + 1);
        }
    }
    None
}

/// Parses `250ms`, `10s`, `5m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{s}` has no unit (use ms, s, m, h or d)"))?;
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 10s"))?;
    let ms = match unit {
        "ms" => 1,
        "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use ms, s, m, h or d)"
            ));
        }
    };
    n.checked_mul(ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("`{s}` is too long"))
}

pub fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10y").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }

    #[test]
    fn a_validation_error_finds_the_line_of_its_key_in_its_table() {
        let text =
            "listen = \"top\"\n[http]\nx = 1\nlisten = \"a\"\n[[ingest.agents]]\ntoken = \"t\"\n";
        let err = |key| ConfigError::Invalid {
            path: "c.toml".into(),
            key,
            message: "bad".into(),
            line: None,
        };
        let line = |e: ConfigError| match e.at_line_in(text) {
            ConfigError::Invalid { line, .. } => line,
            _ => unreachable!("stays Invalid"),
        };
        assert_eq!(line(err("listen")), Some(1));
        assert_eq!(line(err("http.listen")), Some(4));
        assert_eq!(line(err("ingest.agents.token")), Some(6));
        assert_eq!(line(err("index.listen")), None);
        assert_eq!(line(err("ingest.agents")), Some(5));
        assert_eq!(
            err("http.listen").at_line_in(text).to_string(),
            "c.toml, line 4: http.listen: bad"
        );
    }
}
