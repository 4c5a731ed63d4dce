//! The operator commands: a thin client of the running watchdog's admin
//! API, so every action is recorded in one place.

use anyhow::{anyhow, bail, Context};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

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
}

/// The error text of an answer, for the user.
pub fn error_of(status: u16, body: &Value) -> anyhow::Error {
    match body.get("error").and_then(Value::as_str) {
        Some(e) => anyhow!("{e} (HTTP {status})"),
        None => anyhow!("the watchdog answered HTTP {status}"),
    }
}

/// `status`: one line per check, then the live color.
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
