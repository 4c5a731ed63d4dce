//! The `[proxy]` section of `watchdog.toml`: where nginx's config and the
//! live file are, how a switch reaches nginx (`mode`: a reload, or the live
//! color set in nginx's memory), how to test and reload nginx, the upstream
//! addresses of both colors, and the commands that deploy and scale a color.
//!
//! Every key has a default (the original scripts' values); [`ProxySettings::validate`]
//! rejects what would render a broken or injectable config, naming the key
//! as `proxy.<key>`.

use bgw_wire::HumanDuration;
use serde::Deserialize as _;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The `[proxy]` section. Fields are public so the watchdog can print what it
/// would do (`check-config`); call [`ProxySettings::validate`] after loading.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProxySettings {
    /// How a switch reaches nginx: `reload` (re-render and reload) or
    /// `live` (set the live color in nginx's shared memory; needs the Lua module).
    pub mode: SwitchMode,
    /// `live` mode: the loopback port of nginx's control location
    /// (`127.0.0.1:<port>/bgw/live`), which the watchdog uses to set the live color.
    pub control_listen: u16,
    /// `live` mode: dynamic modules the builtin template loads with
    /// `load_module` (absolute paths; Debian's NDK and Lua module by default).
    /// Empty when nginx loads them itself.
    #[serde(deserialize_with = "string_list")]
    pub lua_modules: Vec<String>,
    /// Holds `blue` or `green`, as the original scripts wrote it.
    pub live_file: PathBuf,
    /// The nginx config file every switch rewrites.
    pub nginx_conf: PathBuf,
    /// `"builtin"` or the path of a template with `{{live}}` and `{{idle}}`.
    pub template: String,
    /// Checks the written config; `{conf}` is the config path.
    pub test_cmd: String,
    /// Makes nginx load the written config; `{conf}` is the config path.
    pub reload_cmd: String,
    /// Address the rendered `listen` directives bind; empty = all addresses.
    pub listen_address: String,
    /// Port of the live color.
    pub live_listen: u16,
    /// Port of the idle color (for smoke tests before a switch).
    pub idle_listen: u16,
    /// Upstream address(es) of the blue service.
    pub blue: Upstream,
    /// Upstream address(es) of the green service.
    pub green: Upstream,
    /// Updates a color's image; `{image}` and `{color}`.
    pub deploy_cmd: String,
    /// Scales a color's service; `{color}` and `{n}`.
    pub scale_cmd: String,
    /// Longest any of the commands above may run before it is killed.
    pub command_timeout: HumanDuration,
    /// Path requested through the live port to verify a switch.
    pub path: String,
    /// How long a switch waits for the live port to answer from the new
    /// color; `0s` skips the verification.
    pub verify_timeout: HumanDuration,
    /// Bound on how long nginx's old workers finish in-flight requests
    /// after a reload (rendered in the main context).
    pub worker_shutdown_timeout: HumanDuration,
    /// Raw directives for nginx's main context in the builtin template
    /// (`pid`, `error_log`, `user`, ...).
    pub main_directives: String,
    /// Raw directives for the `http {}` block of the builtin template
    /// (`access_log`, temp paths, ...).
    pub http_directives: String,
}

impl Default for ProxySettings {
    fn default() -> Self {
        ProxySettings {
            mode: SwitchMode::Reload,
            control_listen: 8081,
            lua_modules: vec![
                "/usr/lib/nginx/modules/ndk_http_module.so".to_string(),
                "/usr/lib/nginx/modules/ngx_http_lua_module.so".to_string(),
            ],
            live_file: PathBuf::from("/var/live"),
            nginx_conf: PathBuf::from("/etc/nginx/nginx.conf"),
            template: "builtin".to_string(),
            test_cmd: "nginx -t -c {conf}".to_string(),
            reload_cmd: "nginx -s reload".to_string(),
            listen_address: String::new(),
            live_listen: 80,
            idle_listen: 8080,
            blue: Upstream(vec!["127.0.0.1:3000".to_string()]),
            green: Upstream(vec!["127.0.0.1:3001".to_string()]),
            deploy_cmd: "docker service update --image {image} {color}-service".to_string(),
            scale_cmd: "docker service scale {color}-service={n}".to_string(),
            command_timeout: HumanDuration(Duration::from_secs(60)),
            path: "/ping".to_string(),
            verify_timeout: HumanDuration(Duration::from_secs(5)),
            worker_shutdown_timeout: HumanDuration(Duration::from_secs(30)),
            main_directives: String::new(),
            http_directives: String::new(),
        }
    }
}

/// How a switch reaches nginx.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// Render the config for the new color, `nginx -t`, reload: new
    /// connections never fail, but keep-alive connections to old workers can.
    #[default]
    Reload,
    /// The config holds both colors once and each request picks its upstream
    /// from a shared dictionary; a switch sets the dictionary through a
    /// loopback control location: no reload, no connection closed.
    Live,
}

impl SwitchMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchMode::Reload => "reload",
            SwitchMode::Live => "live",
        }
    }
}

impl fmt::Display for SwitchMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A configuration error, named by its key: `proxy.live_listen: ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("proxy.{key}: {message}")]
pub struct ProxyConfigError {
    pub key: &'static str,
    pub message: String,
}

fn invalid(key: &'static str, message: impl Into<String>) -> ProxyConfigError {
    ProxyConfigError {
        key,
        message: message.into(),
    }
}

impl ProxySettings {
    /// The upstream addresses of `color`.
    pub fn upstream(&self, color: bgw_wire::Color) -> &Upstream {
        match color {
            bgw_wire::Color::Blue => &self.blue,
            bgw_wire::Color::Green => &self.green,
        }
    }

    /// Host the switch verification connects to: the listen address, or
    /// loopback when nginx listens on all addresses.
    pub fn verify_url(&self) -> String {
        let host = match self.listen_address.parse::<IpAddr>() {
            Ok(ip) if ip.is_unspecified() => "127.0.0.1".to_string(),
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            Ok(IpAddr::V4(ip)) => ip.to_string(),
            Err(_) => "127.0.0.1".to_string(),
        };
        format!("http://{host}:{}{}", self.live_listen, self.path)
    }

    /// `live` mode: the control location the watchdog sets the live color
    /// through (always loopback, whatever `listen_address` says).
    pub fn control_url(&self) -> String {
        format!("http://127.0.0.1:{}/bgw/live", self.control_listen)
    }

    /// Checks every key; the first problem found is returned. Reads the
    /// template file when `template` is a path (it must exist and contain
    /// `{{live}}` and `{{idle}}`).
    pub fn validate(&self) -> Result<(), ProxyConfigError> {
        if self.live_listen == 0 {
            return Err(invalid("live_listen", "must be a port between 1 and 65535"));
        }
        if self.idle_listen == 0 {
            return Err(invalid("idle_listen", "must be a port between 1 and 65535"));
        }
        if self.live_listen == self.idle_listen {
            return Err(invalid(
                "idle_listen",
                format!("must differ from proxy.live_listen ({})", self.live_listen),
            ));
        }
        if self.mode == SwitchMode::Live {
            self.validate_live()?;
        }
        if !self.listen_address.is_empty() && self.listen_address.parse::<IpAddr>().is_err() {
            return Err(invalid(
                "listen_address",
                format!(
                    "{:?} is not an IP address (leave it empty to listen on all addresses)",
                    self.listen_address
                ),
            ));
        }
        self.blue.validate("blue")?;
        self.green.validate("green")?;
        for (key, value) in [
            ("test_cmd", &self.test_cmd),
            ("reload_cmd", &self.reload_cmd),
            ("deploy_cmd", &self.deploy_cmd),
            ("scale_cmd", &self.scale_cmd),
        ] {
            if value.split_whitespace().next().is_none() {
                return Err(invalid(key, "must name a command"));
            }
        }
        if self.live_file.as_os_str().is_empty() {
            return Err(invalid("live_file", "must be a path"));
        }
        if self.nginx_conf.as_os_str().is_empty() {
            return Err(invalid("nginx_conf", "must be a path"));
        }
        if !self.path.starts_with('/') || self.path.contains(char::is_whitespace) {
            return Err(invalid(
                "path",
                format!("{:?} must start with / and contain no spaces", self.path),
            ));
        }
        if self.command_timeout.0.is_zero() {
            return Err(invalid("command_timeout", "must be longer than 0s"));
        }
        if self.worker_shutdown_timeout.0 < Duration::from_secs(1) {
            return Err(invalid("worker_shutdown_timeout", "must be at least 1s"));
        }
        if self.template != "builtin" {
            let text = std::fs::read_to_string(&self.template).map_err(|e| {
                invalid(
                    "template",
                    format!(
                        "cannot read template {}: {e} (or write \"builtin\")",
                        self.template
                    ),
                )
            })?;
            super::render::check_template(&text).map_err(|e| invalid("template", e.to_string()))?;
        }
        Ok(())
    }
}

impl ProxySettings {
    /// The keys only `live` mode reads: they are pasted into nginx's config
    /// and into Lua code, so they must not be able to end either.
    fn validate_live(&self) -> Result<(), ProxyConfigError> {
        if self.control_listen == 0 {
            return Err(invalid(
                "control_listen",
                "must be a port between 1 and 65535",
            ));
        }
        if self.control_listen == self.live_listen || self.control_listen == self.idle_listen {
            return Err(invalid(
                "control_listen",
                format!(
                    "must differ from proxy.live_listen ({}) and proxy.idle_listen ({})",
                    self.live_listen, self.idle_listen
                ),
            ));
        }
        if self.template != "builtin" {
            return Err(invalid(
                "template",
                "mode = \"live\" renders the builtin template only (write \"builtin\")",
            ));
        }
        let path = self.live_file.to_string_lossy();
        if !plain_path(&path) {
            return Err(invalid(
                "live_file",
                format!("{path:?}: in live mode nginx reads it, so it must be an absolute path without spaces, quotes, brackets, braces, ';', '#' or '$'"),
            ));
        }
        for module in &self.lua_modules {
            if !plain_path(module) {
                return Err(invalid(
                    "lua_modules",
                    format!("{module:?} must be an absolute path without spaces, quotes, brackets, braces, ';', '#' or '$'"),
                ));
            }
        }
        Ok(())
    }
}

/// An absolute path safe to paste into nginx's config and a Lua string.
fn plain_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains(|c: char| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    ';' | '{' | '}' | '[' | ']' | '#' | '"' | '\'' | '$' | '\\'
                )
        })
}

/// A list of strings, or one string with comma-separated items (what an
/// environment variable gives).
fn string_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Upstream::deserialize(d).map(|u| u.0)
}

/// The address(es) of one color's service: `"127.0.0.1:3000"` or a list
/// `["10.0.0.5:3000", "10.0.0.6:3000"]`. Each becomes a `server` line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Upstream(pub Vec<String>);

impl Upstream {
    fn validate(&self, key: &'static str) -> Result<(), ProxyConfigError> {
        if self.0.is_empty() {
            return Err(invalid(key, "needs at least one address"));
        }
        for address in &self.0 {
            check_address(address).map_err(|why| invalid(key, format!("{address:?}: {why}")))?;
        }
        Ok(())
    }
}

/// Accepts `host:port`, `host`, `[v6]:port` and `unix:/path`; refuses anything
/// that could end the nginx directive it is pasted into.
fn check_address(address: &str) -> Result<(), &'static str> {
    if address.is_empty() {
        return Err("empty address");
    }
    if let Some(path) = address.strip_prefix("unix:") {
        return if path.starts_with('/')
            && !path.contains(|c: char| {
                c.is_whitespace() || matches!(c, ';' | '{' | '}' | '#' | '"' | '\'' | '$')
            }) {
            Ok(())
        } else {
            Err("a unix socket address is unix:/absolute/path")
        };
    }
    let (host, port) = if let Some(rest) = address.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("unclosed [ in an IPv6 address")?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| "not an IPv6 address between [ ]")?;
        match after {
            "" => return Ok(()),
            p => (
                None,
                Some(p.strip_prefix(':').ok_or("expected :port after ]")?),
            ),
        }
    } else {
        match address.rsplit_once(':') {
            Some((h, p)) => (Some(h), Some(p)),
            None => (Some(address), None),
        }
    };
    if let Some(host) = host {
        let ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !ok {
            return Err("expected host:port (letters, digits, '.', '-', '_' in the host)");
        }
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err("the port must be a number between 1 and 65535"),
        }
    }
    Ok(())
}

impl<'de> serde::Deserialize<'de> for Upstream {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Upstream;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an address \"host:port\" or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Upstream, E> {
                // An env var gives one string; allow "a:1,b:2" there too.
                Ok(Upstream(
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect(),
                ))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Upstream, A::Error> {
                let mut out = Vec::new();
                while let Some(s) = seq.next_element::<String>()? {
                    out.push(s);
                }
                Ok(Upstream(out))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> ProxySettings {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn defaults_are_the_original_scripts_values_and_valid() {
        let s = parse("");
        assert_eq!(s.live_file, PathBuf::from("/var/live"));
        assert_eq!(s.live_listen, 80);
        assert_eq!(s.idle_listen, 8080);
        assert_eq!(s.blue.0, vec!["127.0.0.1:3000"]);
        assert_eq!(s.reload_cmd, "nginx -s reload");
        s.validate().unwrap();
    }

    #[test]
    fn upstream_is_one_address_or_a_list() {
        let s =
            parse("blue = \"10.0.0.1:3000\"\ngreen = [\"10.0.0.2:3001\", \"green-service:3001\"]");
        assert_eq!(s.blue.0, vec!["10.0.0.1:3000"]);
        assert_eq!(s.green.0, vec!["10.0.0.2:3001", "green-service:3001"]);
        s.validate().unwrap();
    }

    #[test]
    fn an_env_var_can_list_addresses_separated_by_commas() {
        let mut t = toml::Table::new();
        bgw_wire::settings::overlay_env(
            &mut t,
            [(
                "BGW_PROXY_GREEN".to_string(),
                "10.0.0.2:3001, 10.0.0.3:3001".to_string(),
            )],
            &["proxy"],
        );
        let s: ProxySettings = bgw_wire::settings::deserialize::<toml::Table>(t).unwrap()["proxy"]
            .clone()
            .try_into()
            .unwrap();
        assert_eq!(s.green.0, vec!["10.0.0.2:3001", "10.0.0.3:3001"]);
    }

    #[test]
    fn unknown_keys_are_rejected() {
        assert!(toml::from_str::<ProxySettings>("live_port = 80").is_err());
    }

    #[test]
    fn validation_names_the_key() {
        let cases: Vec<(&str, &str)> = vec![
            ("live_listen = 0", "proxy.live_listen"),
            ("idle_listen = 80", "proxy.idle_listen"),
            (
                "blue = \"127.0.0.1:3000; include /etc/passwd\"",
                "proxy.blue",
            ),
            ("green = []", "proxy.green"),
            ("green = \"host:99999\"", "proxy.green"),
            ("listen_address = \"everywhere\"", "proxy.listen_address"),
            ("reload_cmd = \"  \"", "proxy.reload_cmd"),
            ("path = \"ping\"", "proxy.path"),
            ("command_timeout = \"0s\"", "proxy.command_timeout"),
            ("template = \"/nonexistent/bgw.tmpl\"", "proxy.template"),
        ];
        for (text, key) in cases {
            let e = parse(text).validate().unwrap_err().to_string();
            assert!(e.starts_with(&format!("{key}:")), "{text} -> {e}");
        }
    }

    #[test]
    fn mode_defaults_to_reload_and_live_mode_has_its_own_keys() {
        let s = parse("");
        assert_eq!(s.mode, SwitchMode::Reload);
        let s = parse("mode = \"live\"\ncontrol_listen = 9001\nlua_modules = []");
        assert_eq!(s.mode, SwitchMode::Live);
        assert_eq!(s.control_url(), "http://127.0.0.1:9001/bgw/live");
        assert!(s.lua_modules.is_empty());
        s.validate().unwrap();
        assert!(toml::from_str::<ProxySettings>("mode = \"hot\"").is_err());
    }

    #[test]
    fn live_mode_validation_names_the_key() {
        let cases: Vec<(&str, &str)> = vec![
            ("control_listen = 80", "proxy.control_listen"),
            ("control_listen = 0", "proxy.control_listen"),
            ("live_file = \"/var/li ve\"", "proxy.live_file"),
            ("live_file = \"/var/live\\\")\"", "proxy.live_file"),
            ("live_file = \"relative/live\"", "proxy.live_file"),
            ("lua_modules = [\"/m.so; include /x\"]", "proxy.lua_modules"),
            ("template = \"/etc/bgw/nginx.tmpl\"", "proxy.template"),
        ];
        for (text, key) in cases {
            let e = parse(&format!("mode = \"live\"\n{text}"))
                .validate()
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("{key}:")), "{text} -> {e}");
        }
        // The same keys are not live-mode problems in reload mode.
        parse("live_file = \"/var/li ve\"\ncontrol_listen = 80")
            .validate()
            .unwrap();
    }

    #[test]
    fn a_template_without_placeholders_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.conf");
        std::fs::write(&path, "http { upstream x {} }").unwrap();
        let s = ProxySettings {
            template: path.display().to_string(),
            ..Default::default()
        };
        let e = s.validate().unwrap_err();
        assert_eq!(e.key, "template");
        assert!(e.message.contains("{{live}}"), "{e}");
        std::fs::write(&path, "proxy_pass http://{{live}}; # {{ idle }}").unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn addresses_accept_hosts_ipv6_and_unix_sockets() {
        for ok in [
            "127.0.0.1:3000",
            "blue-service:3000",
            "blue",
            "[::1]:3000",
            "[::1]",
            "unix:/run/app.sock",
        ] {
            check_address(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "",
            ":3000",
            "a b:1",
            "a:0",
            "a:x",
            "[::1",
            "unix:relative",
            "a{b}:1",
            "x;y",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn verify_url_uses_loopback_for_all_addresses() {
        let mut s = ProxySettings::default();
        assert_eq!(s.verify_url(), "http://127.0.0.1:80/ping");
        s.listen_address = "10.1.2.3".into();
        s.live_listen = 8000;
        assert_eq!(s.verify_url(), "http://10.1.2.3:8000/ping");
        s.listen_address = "::".into();
        assert_eq!(s.verify_url(), "http://127.0.0.1:8000/ping");
    }
}
