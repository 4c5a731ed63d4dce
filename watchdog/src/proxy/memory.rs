//! `live` mode: the live color in nginx's memory, read and set through the
//! control location the live template binds to loopback
//! (`GET`/`PUT http://127.0.0.1:<control_listen>/bgw/live`, body `blue` or
//! `green`). nginx answers with the color it holds after the request.

use bgw_wire::Color;
use std::time::{Duration, Instant};

/// What one request to the control location did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlCall {
    /// `PUT http://127.0.0.1:8081/bgw/live green`, for logs and events.
    pub display: String,
    /// The color nginx holds now, or why the request failed.
    pub result: Result<Color, String>,
    pub duration: Duration,
}

impl ControlCall {
    /// As a [`super::CommandOutcome`], so a live switch reports like a reload.
    pub fn outcome(&self) -> super::CommandOutcome {
        super::CommandOutcome {
            ok: self.result.is_ok(),
            exit_code: self.result.is_ok().then_some(0),
            output: match &self.result {
                Ok(c) => c.to_string(),
                Err(e) => e.clone(),
            },
            timed_out: false,
            display: self.display.clone(),
            duration: self.duration,
        }
    }
}

/// Sets the live color in nginx's memory; `Ok` only when nginx answers 200
/// with `color` back.
pub async fn set_color(http: &reqwest::Client, url: &str, color: Color) -> ControlCall {
    let started = Instant::now();
    let sent = http.put(url).body(color.as_str()).send().await;
    let result = match answer(sent).await {
        Ok(held) if held == color => Ok(held),
        Ok(held) => Err(format!("nginx holds {held} after setting {color}")),
        Err(e) => Err(e),
    };
    ControlCall {
        display: format!("PUT {url} {color}"),
        result,
        duration: started.elapsed(),
    }
}

/// The live color nginx holds in memory.
pub async fn get_color(http: &reqwest::Client, url: &str) -> ControlCall {
    let started = Instant::now();
    let result = answer(http.get(url).send().await).await;
    ControlCall {
        display: format!("GET {url}"),
        result,
        duration: started.elapsed(),
    }
}

async fn answer(sent: reqwest::Result<reqwest::Response>) -> Result<Color, String> {
    let resp = sent.map_err(|e| {
        if e.is_connect() {
            "cannot connect (is nginx running the live-mode config, with the Lua module?)"
                .to_string()
        } else {
            format!("request failed: {e}")
        }
    })?;
    let status = resp.status();
    let body = resp
        .text()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?;
    let shown: String = body.trim().chars().take(80).collect();
    if !status.is_success() {
        return Err(format!("nginx answered {} {shown:?}", status.as_u16()));
    }
    Color::from_live_file(&body).ok_or_else(|| format!("nginx answered {shown:?}, not a color"))
}
