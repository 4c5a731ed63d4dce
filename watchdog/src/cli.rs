//! The operator commands: a thin client of the running watchdog's admin
//! API, so every action is recorded in one place.

use anyhow::{anyhow, bail, Context};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

/// The admin token the commands present: `admin_token` from the
/// configuration, else the one the watchdog generated next to its database
/// (readable on the watchdog's host by its user); `None` when neither is
/// there (read-only commands still work from loopback).
pub fn admin_token(settings: &crate::config::Settings) -> Option<SecretString> {
    settings.admin_token.clone().or_else(|| {
        crate::admin_token::read(&crate::admin_token::path_for(&settings.database)).ok()
    })
}

/// Talks to the admin API at `base` with the admin token.
pub struct Client {
    base: String,
    token: Option<SecretString>,
    http: reqwest::Client,
}

impl Client {
    pub fn new(base: &str, token: Option<SecretString>) -> anyhow::Result<Client> {
        let base = base.trim_end_matches('/').to_string();
        let base = if base.contains("://") {
            base
        } else {
            format!("http://{base}")
        };
        Ok(Client {
            base,
            token,
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .build()?,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t.expose_secret()),
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach the watchdog at {}: {}",
                self.base,
                e.without_url()
            )
        })?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }
}

/// The error text of an answer, for the user.
pub fn error_of(status: u16, body: &Value) -> anyhow::Error {
    match body.get("error").and_then(Value::as_str) {
        Some(e) => anyhow!("{e} (HTTP {status})"),
        None => anyhow!("the watchdog answered HTTP {status}"),
    }
}

/// `status`: the status page's view (`GET /status.json`) as coloured text
/// (`ansi`) or JSON; where the page is off, the plain table of the admin API.
pub async fn status_page(
    client: &Client,
    page: usize,
    json: bool,
    ansi: bool,
) -> anyhow::Result<String> {
    let (code, body) = client.get(&format!("/status.json?page={page}")).await?;
    match code {
        200 if json => Ok(format!("{}\n", serde_json::to_string_pretty(&body)?)),
        200 => {
            let view: crate::page::view::View =
                serde_json::from_value(body).context("malformed status view")?;
            Ok(crate::page::term::render(&view, ansi))
        }
        404 => status(client).await,
        _ => Err(error_of(code, &body)),
    }
}

/// `status` without the page: one line per check, then the live color.
pub async fn status(client: &Client) -> anyhow::Result<String> {
    let (code, body) = client.get("/api/v1/checks").await?;
    if code != 200 {
        return Err(error_of(code, &body));
    }
    let checks = body["checks"]
        .as_array()
        .context("malformed answer: no checks")?;
    let mut out = format!(
        "{:<24} {:<10} {:<6} {:<8} {:<20} {:<20} {}\n",
        "CHECK", "KIND", "COLOR", "STATE", "LAST SIGNAL", "NEXT DEADLINE", "REASON"
    );
    let short = |v: &Value| {
        v.as_str()
            .map(|s| s.get(..19).unwrap_or(s).replace('T', " "))
            .unwrap_or_else(|| "-".into())
    };
    for c in checks {
        out.push_str(&format!(
            "{:<24} {:<10} {:<6} {:<8} {:<20} {:<20} {}\n",
            c["name"].as_str().unwrap_or("?"),
            c["kind"].as_str().unwrap_or("?"),
            c["color"].as_str().unwrap_or("-"),
            c["state"].as_str().unwrap_or("?"),
            short(&c["last_signal"]),
            short(&c["next_deadline"]),
            c["reason"].as_str().unwrap_or(""),
        ));
    }
    match client.get("/api/v1/live").await {
        Ok((200, live)) => out.push_str(&format!(
            "live: {}  idle: {}\n",
            live["live"].as_str().unwrap_or("undefined"),
            live["idle"].as_str().unwrap_or("undefined")
        )),
        _ => out.push_str("live: unknown\n"),
    }
    Ok(out)
}

/// `pause` / `resume`.
pub async fn pause_resume(client: &Client, check: &str, action: &str) -> anyhow::Result<String> {
    let (code, body) = client
        .post(
            &format!("/api/v1/checks/{check}/{action}"),
            serde_json::json!({}),
        )
        .await?;
    match code {
        200 => Ok(format!(
            "{check}: {}\n",
            body["state"].as_str().unwrap_or("?")
        )),
        _ => bail!(error_of(code, &body)),
    }
}

/// `live`: the live color, from the running watchdog; when it cannot be
/// reached, from `live_file` directly (said on stderr). An undefined live
/// color is an error (exit 1).
pub async fn live(client: &Client, live_file: &std::path::Path) -> anyhow::Result<String> {
    let body = match client.get("/api/v1/live").await {
        Ok((200, body)) => body,
        Ok((code, body)) => bail!(error_of(code, &body)),
        Err(e) => {
            eprintln!("bgw-watchdog: {e}; reading {} instead", live_file.display());
            return match crate::proxy::read_live(live_file) {
                crate::proxy::LiveState::Live(c) => Ok(format!("{c}\n")),
                crate::proxy::LiveState::Missing => {
                    bail!(
                        "the live color is undefined: {} does not exist",
                        live_file.display()
                    )
                }
                crate::proxy::LiveState::Invalid(why) => {
                    bail!("the live color is undefined: {why}")
                }
            };
        }
    };
    match body["live"].as_str() {
        Some(c) => Ok(format!("{c}\n")),
        None => bail!(
            "{}",
            body["error"]
                .as_str()
                .unwrap_or("the live color is undefined")
        ),
    }
}

/// `toggle [blue|green]`: exit 0 when switched, 1 refused or failed.
pub async fn toggle(
    client: &Client,
    to: Option<bgw_wire::Color>,
    reason: Option<&str>,
) -> anyhow::Result<String> {
    let mut body = serde_json::json!({});
    if let Some(c) = to {
        body["to"] = serde_json::json!(c);
    }
    if let Some(r) = reason {
        body["reason"] = serde_json::json!(r);
    }
    let (code, body) = client.post("/api/v1/toggle", body).await?;
    if code != 200 {
        bail!(error_of(code, &body));
    }
    Ok(format!(
        "switched {} -> {} in {} ms; live: {}\n",
        body["from"].as_str().unwrap_or("undefined"),
        body["to"].as_str().unwrap_or("?"),
        body["took_ms"].as_u64().unwrap_or(0),
        body["live"].as_str().unwrap_or("?"),
    ))
}

/// `deploy <color> <image>`: refused (exit 1) when the color is live.
pub async fn deploy(
    client: &Client,
    color: bgw_wire::Color,
    image: &str,
) -> anyhow::Result<String> {
    let (code, body) = client
        .post(
            "/api/v1/deploy",
            serde_json::json!({ "color": color, "image": image }),
        )
        .await?;
    if code != 200 {
        bail!(error_of(code, &body));
    }
    Ok(format!(
        "deployed {image} to {color}\n{}",
        output_block(&body["output"])
    ))
}

/// `scale <color> <n>`.
pub async fn scale(client: &Client, color: bgw_wire::Color, n: u32) -> anyhow::Result<String> {
    let (code, body) = client
        .post(
            "/api/v1/scale",
            serde_json::json!({ "color": color, "n": n }),
        )
        .await?;
    if code != 200 {
        bail!(error_of(code, &body));
    }
    Ok(format!(
        "scaled {color} to {n}\n{}",
        output_block(&body["output"])
    ))
}

fn output_block(v: &Value) -> String {
    match v.as_str().map(str::trim_end) {
        Some(o) if !o.is_empty() => format!("{o}\n"),
        _ => String::new(),
    }
}

/// `rollback status|rearm|disable`.
pub async fn rollback(client: &Client, action: &str) -> anyhow::Result<String> {
    let (code, body) = match action {
        "status" => client.get("/api/v1/rollback").await?,
        "rearm" | "disable" => {
            client
                .post(&format!("/api/v1/rollback/{action}"), serde_json::json!({}))
                .await?
        }
        other => bail!("unknown rollback action {other:?}: use status, rearm or disable"),
    };
    if code != 200 {
        bail!(error_of(code, &body));
    }
    Ok(describe_rollback(&body))
}

fn describe_rollback(b: &Value) -> String {
    let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
    let mut out = format!(
        "automatic rollback: {}{}\n",
        text(&b["state"]),
        b["disabled_by"]
            .as_str()
            .map(|d| format!(" (by {d})"))
            .unwrap_or_default()
    );
    out.push_str(&format!(
        "mode: {}  failover: {}  window: {}  cooldown: {}  quorum: {}  fail_after: {}\n",
        text(&b["mode"]),
        b["failover"],
        text(&b["window"]),
        text(&b["cooldown"]),
        b["quorum"],
        b["fail_after"]
    ));
    if b["state"] == "latched" {
        out.push_str(&format!(
            "latched at {}: {}\n",
            text(&b["latched_at"]),
            text(&b["latch_reason"])
        ));
    }
    match b["last_toggle"].as_object() {
        Some(t) => out.push_str(&format!(
            "last toggle: {} -> {} at {} ({}), window remaining: {}\n",
            t.get("from").and_then(Value::as_str).unwrap_or("undefined"),
            t.get("to").and_then(Value::as_str).unwrap_or("?"),
            t.get("at").and_then(Value::as_str).unwrap_or("?"),
            if t.get("automatic").and_then(Value::as_bool) == Some(true) {
                "automatic"
            } else {
                "manual"
            },
            text(&b["window_remaining"])
        )),
        None => out.push_str("last toggle: none\n"),
    }
    out.push_str(&format!(
        "last automatic switch: {}, cooldown remaining: {}\n",
        text(&b["last_automatic_at"]),
        text(&b["cooldown_remaining"])
    ));
    match b["last_decision"].as_object() {
        Some(d) => {
            let decision = &d["decision"];
            let what = decision["decision"].as_str().unwrap_or("?");
            let reason = decision["reason"].as_str().unwrap_or("");
            out.push_str(&format!(
                "last decision ({}): {what}{}{}\n",
                d.get("at").and_then(Value::as_str).unwrap_or("?"),
                decision["rule"]
                    .as_str()
                    .map(|r| format!(" [{r}]"))
                    .unwrap_or_default(),
                if reason.is_empty() {
                    String::new()
                } else {
                    format!(": {reason}")
                }
            ));
        }
        None => out.push_str("last decision: none (not evaluated since the start)\n"),
    }
    out
}

/// `silence <check|color> <duration> --reason <text>`.
pub async fn silence(
    client: &Client,
    target: &str,
    duration: &str,
    reason: &str,
) -> anyhow::Result<String> {
    let (code, body) = client
        .post(
            "/api/v1/silences",
            serde_json::json!({ "target": target, "duration": duration, "reason": reason }),
        )
        .await?;
    if code != 201 && code != 200 {
        bail!(error_of(code, &body));
    }
    Ok(format!(
        "silence #{} on {target} until {}\n",
        body["id"],
        body["until"].as_str().unwrap_or("?")
    ))
}

/// `silences`: the active silences.
pub async fn silences(client: &Client) -> anyhow::Result<String> {
    let (code, body) = client.get("/api/v1/silences").await?;
    if code != 200 {
        bail!(error_of(code, &body));
    }
    let rows = body["silences"]
        .as_array()
        .context("malformed answer: no silences")?;
    if rows.is_empty() {
        return Ok("no active silences\n".into());
    }
    let mut out = format!(
        "{:<6} {:<24} {:<22} {}\n",
        "ID", "TARGET", "UNTIL", "REASON"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<6} {:<24} {:<22} {}\n",
            r["id"],
            r["target"].as_str().unwrap_or("?"),
            r["until"]
                .as_str()
                .map(|s| s.get(..19).unwrap_or(s).replace('T', " "))
                .unwrap_or_else(|| "?".into()),
            r["reason"].as_str().unwrap_or(""),
        ));
    }
    Ok(out)
}

/// `unsilence <id>`.
pub async fn unsilence(client: &Client, id: i64) -> anyhow::Result<String> {
    let (code, body) = client.delete(&format!("/api/v1/silences/{id}")).await?;
    if code != 200 {
        bail!(error_of(code, &body));
    }
    Ok(format!("silence #{id} ended\n"))
}
