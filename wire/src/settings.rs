//! Layered configuration for every bgw binary: the TOML file, then `BGW_*`
//! environment variables, then flags (applied by the binary itself).
//!
//! `BGW_<SECTION>_<KEY>` sets `key` in `[section]`; top-level keys have no
//! section (`BGW_LISTEN`). Nested sections join with `_`
//! (`BGW_NOTIFY_SLACK_WEBHOOK_URL`). A value is read as a TOML literal when it
//! is one (`5`, `true`, `["a", "b"]`) and as a string otherwise.
//! `BGW_CONFIG` names the file itself and is not a key.

use std::path::Path;

/// Error loading the configuration file; names the file, never a value.
#[derive(Debug)]
pub struct SettingsError(pub String);

impl std::fmt::Display for SettingsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SettingsError {}

/// Reads `path` as TOML (an empty table when `None`).
pub fn load_file(path: Option<&Path>) -> Result<toml::Table, SettingsError> {
    let Some(path) = path else {
        return Ok(toml::Table::new());
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| SettingsError(format!("cannot read config file {}: {e}", path.display())))?;
    text.parse::<toml::Table>().map_err(|e| {
        SettingsError(format!(
            "config file {} is not valid TOML: {e}",
            path.display()
        ))
    })
}

/// Overlays `BGW_*` variables from `vars` onto `table`. `sections` lists the
/// dotted section names the binary knows (`"proxy"`, `"notify.slack"`); the
/// longest matching section wins, so `BGW_NOTIFY_SLACK_WEBHOOK_URL` sets
/// `notify.slack.webhook_url`, not `notify.slack_webhook_url`.
pub fn overlay_env(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
    sections: &[&str],
) {
    let mut by_prefix: Vec<(String, &str)> = sections
        .iter()
        .map(|s| (format!("{}_", s.replace('.', "_")), *s))
        .collect();
    by_prefix.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("BGW_") else {
            continue;
        };
        if rest == "CONFIG" {
            continue; // the path of the file itself (`--config`)
        }
        let rest = rest.to_ascii_lowercase();
        let (path, key): (Vec<&str>, &str) = match by_prefix
            .iter()
            .find(|(prefix, _)| rest.starts_with(prefix.as_str()))
        {
            Some((prefix, section)) => (section.split('.').collect(), &rest[prefix.len()..]),
            None => (Vec::new(), rest.as_str()),
        };
        if key.is_empty() {
            continue;
        }
        let mut node = &mut *table;
        for part in path {
            let entry = node
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            node = entry.as_table_mut().expect("just made a table");
        }
        node.insert(key.to_string(), parse_env_value(&value));
    }
}

/// `5` → integer, `true` → bool, `["a"]` → array, anything else → string.
fn parse_env_value(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// Deserializes the layered table into the binary's settings type. Errors
/// name the key (`rollback.quorum`, `check[2].period`) and what was
/// expected, never the value of another key.
pub fn deserialize<T: serde::de::DeserializeOwned>(table: toml::Table) -> Result<T, SettingsError> {
    // Straight from the table: no second parse, which matters for large
    // files (100,000 checks).
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        if path.is_empty() || path == "." {
            SettingsError(message)
        } else {
            SettingsError(format!("key `{path}`: {message}"))
        }
    })
}

/// Loads `path`, overlays the process environment, deserializes.
pub fn load<T: serde::de::DeserializeOwned>(
    path: Option<&Path>,
    sections: &[&str],
) -> Result<T, SettingsError> {
    let mut table = load_file(path)?;
    overlay_env(&mut table, std::env::vars(), sections);
    deserialize(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_file_with_longest_section_match() {
        let mut t: toml::Table = "listen = \"a\"\n[proxy]\nlive_file = \"/var/live\"\n"
            .parse()
            .unwrap();
        overlay_env(
            &mut t,
            env(&[
                ("BGW_LISTEN", "127.0.0.1:1"),
                ("BGW_PROXY_LIVE_FILE", "/tmp/live"),
                ("BGW_PROXY_LIVE_LISTEN", "8000"),
                ("BGW_NOTIFY_SLACK_WEBHOOK_URL", "http://x"),
                ("BGW_NOTIFY_REPEAT", "1h"),
                ("BGW_NOTIFY_EMAIL_TO", "[\"a@b\", \"c@d\"]"),
                ("HOME", "/root"),
            ]),
            &["proxy", "notify", "notify.slack", "notify.email"],
        );
        assert_eq!(t["listen"].as_str(), Some("127.0.0.1:1"));
        assert_eq!(t["proxy"]["live_file"].as_str(), Some("/tmp/live"));
        assert_eq!(t["proxy"]["live_listen"].as_integer(), Some(8000));
        assert_eq!(
            t["notify"]["slack"]["webhook_url"].as_str(),
            Some("http://x")
        );
        assert_eq!(t["notify"]["repeat"].as_str(), Some("1h"));
        assert_eq!(t["notify"]["email"]["to"].as_array().unwrap().len(), 2);
        assert!(!t.contains_key("home"));
    }

    #[test]
    fn errors_name_the_key_and_hide_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct S {
            rollback: R,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct R {
            quorum: u32,
            token: String,
        }
        let t: toml::Table = "[rollback]\nquorum = \"two\"\ntoken = \"hunter2\"\n"
            .parse()
            .unwrap();
        let e = deserialize::<S>(t).unwrap_err().to_string();
        assert!(e.contains("`rollback.quorum`"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
