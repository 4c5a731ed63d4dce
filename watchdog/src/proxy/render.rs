//! Renders the nginx config for a live color: the builtin template (the
//! original blue/green one plus `X-Bgw-Color` and a bounded
//! `worker_shutdown_timeout`) or a user template; in `live` mode the
//! builtin live template, which holds both colors once and does not depend
//! on the live color (nginx reads that from the live file and the watchdog
//! sets it in memory), so the same bytes serve every switch.
//!
//! Placeholders are `{{name}}` (spaces inside the braces allowed):
//! `live`, `idle` (color names, which are also the upstream names the
//! builtin template defines), `live_listen`, `idle_listen` (ports),
//! `listen_live`, `listen_idle` (the `listen` argument, with
//! `listen_address` when set), `blue_servers`, `green_servers`,
//! `live_servers`, `idle_servers` (`server ADDR;` lines),
//! `worker_shutdown_timeout`, `main_directives`, `http_directives`,
//! `load_modules`, `live_file`, `control_listen`.
//! An unknown placeholder is an error, so a typo never reaches nginx.

use super::settings::{ProxySettings, SwitchMode};
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

/// The builtin template of `mode = "live"`: both upstreams once; the live and
/// idle ports pick theirs per request from the shared dictionary `bgw_live`,
/// which `init_by_lua` fills from the live file when nginx starts (or
/// reloads) and the watchdog sets through the control server, bound to
/// loopback only.
pub const BUILTIN_LIVE: &str = r#"# Rendered by bgw-watchdog (proxy.mode = "live"): both colors; each request
# picks the live one from nginx's memory, set from {{live_file}} at start and by
# the watchdog through 127.0.0.1:{{control_listen}}. Do not edit: the watchdog
# rewrites this file when it starts, if the rendered config differs.
{{load_modules}}worker_processes auto;
# Old workers finish in-flight requests after a reload, for at most this long.
worker_shutdown_timeout {{worker_shutdown_timeout}};
{{main_directives}}
events {
    worker_connections 1024;
}

http {
{{http_directives}}
    # The live color, shared by every worker; kept across reloads.
    lua_shared_dict bgw_live 64k;
    init_by_lua_block {
        local dict = ngx.shared.bgw_live
        local file = io.open("{{live_file}}", "r")
        local text = file and file:read("*a") or ""
        if file then file:close() end
        local color = text:match("^%s*(%a+)%s*$")
        if color == "blue" or color == "green" then
            dict:set("live", color)
        elseif not dict:get("live") then
            ngx.log(ngx.ERR, "bgw: {{live_file}} holds no color; blue is live until the watchdog says otherwise")
            dict:set("live", "blue")
        end
    }

    upstream blue {
{{blue_servers}}
        keepalive 32;
    }

    upstream green {
{{green_servers}}
        keepalive 32;
    }

    # LIVE: port {{live_listen}} -> the live color
    server {
        listen {{listen_live}};
        location / {
            set_by_lua_block $bgw_color {
                return ngx.shared.bgw_live:get("live") or "blue"
            }
            proxy_pass http://$bgw_color;
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
            add_header X-Bgw-Color $bgw_color always;
        }
    }

    # IDLE: port {{idle_listen}} -> the other color
    server {
        listen {{listen_idle}};
        location / {
            set_by_lua_block $bgw_color {
                if ngx.shared.bgw_live:get("live") == "green" then return "blue" end
                return "green"
            }
            proxy_pass http://$bgw_color;
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
            add_header X-Bgw-Color $bgw_color always;
        }
    }

    # CONTROL: the watchdog sets the live color here. Loopback only, on its
    # own port: the public ports above have no route to it.
    server {
        listen 127.0.0.1:{{control_listen}};
        allow 127.0.0.1;
        deny all;
        location = /bgw/live {
            content_by_lua_block {
                local dict = ngx.shared.bgw_live
                local method = ngx.req.get_method()
                if method == "PUT" then
                    ngx.req.read_body()
                    local color = ngx.req.get_body_data()
                    if color ~= "blue" and color ~= "green" then
                        ngx.status = 400
                        ngx.print("expected blue or green")
                        return
                    end
                    local ok, err = dict:set("live", color)
                    if not ok then
                        ngx.status = 500
                        ngx.print("cannot set the live color: ", err)
                        return
                    end
                elseif method ~= "GET" then
                    ngx.status = 405
                    ngx.print("GET or PUT")
                    return
                end
                ngx.print(dict:get("live") or "")
            }
        }
        location / {
            return 404;
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
    if settings.mode == SwitchMode::Live {
        return render_with(BUILTIN_LIVE, settings, live);
    }
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
    "load_modules",
    "live_file",
    "control_listen",
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
            "load_modules" => settings
                .lua_modules
                .iter()
                .map(|m| format!("load_module {m};\n"))
                .collect(),
            "live_file" => settings.live_file.display().to_string(),
            "control_listen" => settings.control_listen.to_string(),
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

    fn live_settings() -> ProxySettings {
        ProxySettings {
            mode: SwitchMode::Live,
            control_listen: 8181,
            live_file: "/srv/bgw/live-color".into(),
            ..settings()
        }
    }

    #[test]
    fn live_mode_renders_the_same_config_whatever_the_live_color() {
        let s = live_settings();
        let blue = render(&s, Color::Blue).unwrap();
        assert_eq!(blue, render(&s, Color::Green).unwrap());
        assert!(!blue.contains("{{"), "{blue}");
        // Both upstreams once, each port picks one per request.
        assert_eq!(blue.matches("upstream blue {").count(), 1);
        assert_eq!(blue.matches("upstream green {").count(), 1);
        assert_eq!(blue.matches("proxy_pass http://$bgw_color;").count(), 2);
        assert_eq!(
            blue.matches("add_header X-Bgw-Color $bgw_color always;")
                .count(),
            2
        );
        assert!(blue.contains("lua_shared_dict bgw_live"), "{blue}");
        assert!(
            blue.contains("io.open(\"/srv/bgw/live-color\", \"r\")"),
            "{blue}"
        );
    }

    #[test]
    fn live_mode_loads_the_modules_first_and_binds_control_to_loopback() {
        let conf = render(&live_settings(), Color::Blue).unwrap();
        assert!(
            conf.contains("load_module /usr/lib/nginx/modules/ndk_http_module.so;\nload_module /usr/lib/nginx/modules/ngx_http_lua_module.so;\nworker_processes auto;"),
            "{conf}"
        );
        let control = conf.split("# CONTROL").nth(1).unwrap();
        assert!(control.contains("listen 127.0.0.1:8181;"), "{control}");
        assert!(control.contains("deny all;"), "{control}");
        // The public ports have no route to the control location.
        let public = conf.split("# CONTROL").next().unwrap();
        assert!(!public.contains("location = /bgw/live"), "{public}");
        assert!(public.contains("listen 80;") && public.contains("listen 8080;"));
        // Without modules to load (nginx loads them itself), no load_module.
        let s = ProxySettings {
            lua_modules: vec![],
            ..live_settings()
        };
        assert!(!render(&s, Color::Blue).unwrap().contains("load_module"));
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
