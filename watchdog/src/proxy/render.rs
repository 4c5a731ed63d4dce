//! Renders the nginx config for a live color: the builtin template (the
//! original blue/green one plus `X-Bgw-Color` and a bounded
//! `worker_shutdown_timeout`) or a user template.
//!
//! Placeholders are `{{name}}` (spaces inside the braces allowed):
//! `live`, `idle` (color names, which are also the upstream names the
//! builtin template defines), `live_listen`, `idle_listen` (ports),
//! `listen_live`, `listen_idle` (the `listen` argument, with
//! `listen_address` when set), `blue_servers`, `green_servers`,
//! `live_servers`, `idle_servers` (`server ADDR;` lines),
//! `worker_shutdown_timeout`, `main_directives`, `http_directives`.
//! An unknown placeholder is an error, so a typo never reaches nginx.

use super::settings::ProxySettings;
use bgw_wire::Color;
use std::time::Duration;

/// The builtin template; `{{...}}` are filled by [`render_with`].
pub const BUILTIN: &str = r#"# Rendered by bgw-watchdog: live = {{live}}, idle = {{idle}}.
# Do not edit: every switch rewrites this file (proxy.template = "builtin").
worker_processes auto;
# Old workers finish in-flight requests after a reload, for at most this long.
worker_shutdown_timeout {{worker_shutdown_timeout}};
{{main_directives}}
events {
    worker_connections 1024;
}

http {
{{http_directives}}
    upstream blue {
{{blue_servers}}
        keepalive 32;
    }

    upstream green {
{{green_servers}}
        keepalive 32;
    }

    # LIVE: port {{live_listen}} -> {{live}}
    server {
        listen {{listen_live}};
        location / {
            proxy_pass http://{{live}};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 5s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;
            proxy_hide_header X-Bgw-Color;
            add_header X-Bgw-Color {{live}} always;
        }
    }

    # IDLE: port {{idle_listen}} -> {{idle}}
    server {
        listen {{listen_idle}};
        location / {
            proxy_pass http://{{idle}};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_connect_timeout 5s;
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 3;
            proxy_next_upstream_timeout 10s;
            proxy_hide_header X-Bgw-Color;
            add_header X-Bgw-Color {{idle}} always;
        }
    }
}
"#;

/// Why a config could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("cannot read template {path}: {error}")]
    Read { path: String, error: String },
    #[error("template has no {{{{{0}}}}} placeholder")]
    Missing(&'static str),
    #[error("unknown placeholder {{{{{0}}}}} in the template")]
    Unknown(String),
    #[error("unclosed {{{{ in the template")]
    Unclosed,
}

/// Renders the config that makes `live` the live color, reading the user
/// template from disk when `template` is a path (so an edited template takes
/// effect at the next switch). Otherwise pure: see [`render_with`].
pub fn render(settings: &ProxySettings, live: Color) -> Result<String, RenderError> {
    if settings.template == "builtin" {
        return render_with(BUILTIN, settings, live);
    }
    let text = std::fs::read_to_string(&settings.template).map_err(|e| RenderError::Read {
        path: settings.template.clone(),
        error: e.to_string(),
    })?;
    check_template(&text)?;
    render_with(&text, settings, live)
}

/// Checks a user template has `{{live}}` and `{{idle}}` and no unknown or
/// unclosed placeholder.
pub(crate) fn check_template(text: &str) -> Result<(), RenderError> {
    let names = placeholders(text)?;
    for required in ["live", "idle"] {
        if !names.iter().any(|n| n == required) {
            return Err(RenderError::Missing(required));
        }
    }
    for name in names {
        if !KNOWN.contains(&name.as_str()) {
            return Err(RenderError::Unknown(name));
        }
    }
    Ok(())
}

const KNOWN: &[&str] = &[
    "live",
    "idle",
    "live_listen",
    "idle_listen",
    "listen_live",
    "listen_idle",
    "blue_servers",
    "green_servers",
    "live_servers",
    "idle_servers",
    "worker_shutdown_timeout",
    "main_directives",
    "http_directives",
];

fn placeholders(text: &str) -> Result<Vec<String>, RenderError> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(RenderError::Unclosed)?;
        out.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    Ok(out)
}

/// Pure: fills `template` for `live`.
pub fn render_with(
    template: &str,
    settings: &ProxySettings,
    live: Color,
) -> Result<String, RenderError> {
    let idle = live.other();
    let servers = |color: Color| {
        settings
            .upstream(color)
            .0
            .iter()
            .map(|a| format!("        server {a};"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let listen = |port: u16| match settings.listen_address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Ok(ip) => format!("{ip}:{port}"),
        Err(_) => port.to_string(),
    };
    let indent = |text: &str, by: &str| {
        text.lines()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .map(|l| format!("{by}{l}\n"))
            .collect::<String>()
    };
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "live" => live.to_string(),
            "idle" => idle.to_string(),
            "live_listen" => settings.live_listen.to_string(),
            "idle_listen" => settings.idle_listen.to_string(),
            "listen_live" => listen(settings.live_listen),
            "listen_idle" => listen(settings.idle_listen),
            "blue_servers" => servers(Color::Blue),
            "green_servers" => servers(Color::Green),
            "live_servers" => servers(live),
            "idle_servers" => servers(idle),
            "worker_shutdown_timeout" => nginx_time(settings.worker_shutdown_timeout.0),
            "main_directives" => indent(&settings.main_directives, ""),
            "http_directives" => indent(&settings.http_directives, "    "),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or(RenderError::Unclosed)?;
        let name = after[..end].trim();
        out.push_str(&value(name).ok_or_else(|| RenderError::Unknown(name.to_string()))?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// nginx reads `30s` and `500ms`; keep it to one unit.
fn nginx_time(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::Upstream;

    fn settings() -> ProxySettings {
        ProxySettings {
            live_listen: 80,
            idle_listen: 8080,
            blue: Upstream(vec!["127.0.0.1:3000".into()]),
            green: Upstream(vec!["10.0.0.7:3001".into(), "10.0.0.8:3001".into()]),
            main_directives: "pid /run/bgw-nginx.pid;\n  error_log /var/log/nginx/error.log;"
                .into(),
            http_directives: "access_log off;".into(),
            ..Default::default()
        }
    }

    #[test]
    fn builtin_sends_the_live_port_to_the_live_color_and_stamps_it() {
        let conf = render_with(BUILTIN, &settings(), Color::Green).unwrap();
        let live = conf
            .split("# LIVE")
            .nth(1)
            .unwrap()
            .split("# IDLE")
            .next()
            .unwrap();
        assert!(live.contains("listen 80;"), "{live}");
        assert!(live.contains("proxy_pass http://green;"), "{live}");
        assert!(
            live.contains("add_header X-Bgw-Color green always;"),
            "{live}"
        );
        let idle = conf.split("# IDLE").nth(1).unwrap();
        assert!(idle.contains("listen 8080;"), "{idle}");
        assert!(idle.contains("proxy_pass http://blue;"), "{idle}");
        assert!(
            idle.contains("add_header X-Bgw-Color blue always;"),
            "{idle}"
        );
    }

    #[test]
    fn builtin_lists_every_upstream_address_and_the_original_headers() {
        let conf = render_with(BUILTIN, &settings(), Color::Blue).unwrap();
        assert!(
            conf.contains("upstream blue {\n        server 127.0.0.1:3000;\n"),
            "{conf}"
        );
        assert!(
            conf.contains("        server 10.0.0.7:3001;\n        server 10.0.0.8:3001;\n"),
            "{conf}"
        );
        for header in [
            "Host $host",
            "X-Real-IP $remote_addr",
            "X-Forwarded-For $proxy_add_x_forwarded_for",
            "X-Forwarded-Proto $scheme",
        ] {
            assert_eq!(
                conf.matches(&format!("proxy_set_header {header};")).count(),
                2,
                "{header}"
            );
        }
        assert!(conf.contains("worker_shutdown_timeout 30s;"));
        assert!(
            conf.contains("\npid /run/bgw-nginx.pid;\nerror_log /var/log/nginx/error.log;\n"),
            "{conf}"
        );
        assert!(conf.contains("\n    access_log off;\n"), "{conf}");
        assert!(conf.contains("events {"));
        assert!(!conf.contains("{{"));
    }

    #[test]
    fn listen_address_is_rendered_into_listen() {
        let mut s = settings();
        s.listen_address = "127.0.0.1".into();
        let conf = render_with(BUILTIN, &s, Color::Blue).unwrap();
        assert!(conf.contains("listen 127.0.0.1:80;"));
        s.listen_address = "::1".into();
        let conf = render_with(BUILTIN, &s, Color::Blue).unwrap();
        assert!(conf.contains("listen [::1]:8080;"));
    }

    #[test]
    fn sub_second_shutdown_timeouts_render_in_milliseconds() {
        assert_eq!(nginx_time(Duration::from_millis(1500)), "1500ms");
        assert_eq!(nginx_time(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn user_templates_fill_known_placeholders_with_or_without_spaces() {
        let t = "upstream live { {{ live_servers }} } # {{live}} {{ idle }} {{idle_listen}}";
        let out = render_with(t, &settings(), Color::Blue).unwrap();
        assert_eq!(
            out,
            "upstream live {         server 127.0.0.1:3000; } # blue green 8080"
        );
    }

    #[test]
    fn user_templates_with_typos_or_missing_placeholders_are_refused() {
        assert_eq!(
            check_template("{{live}} {{idel}}"),
            Err(RenderError::Missing("idle"))
        );
        assert_eq!(
            check_template("{{live}} {{idle}} {{colour}}"),
            Err(RenderError::Unknown("colour".into()))
        );
        assert_eq!(
            check_template("{{live}} {{idle}} {{oops"),
            Err(RenderError::Unclosed)
        );
        assert_eq!(
            render_with("{{live}} {{nope}}", &settings(), Color::Blue),
            Err(RenderError::Unknown("nope".into()))
        );
    }
}
