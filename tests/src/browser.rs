//! A real browser for the status page's tests: headless Chromium (Debian's
//! `chromium` and `chromium-driver`) driven through `chromedriver` over the
//! W3C WebDriver HTTP protocol with plain reqwest calls. [`Browser::start`]
//! answers `None` (after a loud message) when chromedriver is not installed,
//! unless `BGW_E2E_REQUIRE_BROWSER=1`, which makes that a failure.

use anyhow::{bail, Context};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn which(names: &[&str]) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in names {
        for dir in
            std::env::split_paths(&path).chain(["/usr/bin".into(), "/usr/lib/chromium".into()])
        {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p.display().to_string());
            }
        }
    }
    None
}

/// One WebDriver session in a headless Chromium.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    /// Starts chromedriver and a session, or `None` when no browser is installed.
    pub async fn start() -> anyhow::Result<Option<Browser>> {
        let (Some(driver), Some(chromium)) = (
            which(&["chromedriver"]),
            which(&["chromium", "chromium-browser", "google-chrome"]),
        ) else {
            let msg = "\n\n!!!!!!!! SKIPPING THE BROWSER TEST: chromium / chromedriver are not installed \
                       (scripts/install-deps.sh installs them; BGW_E2E_REQUIRE_BROWSER=1 makes this a failure) !!!!!!!!\n\n";
            if std::env::var("BGW_E2E_REQUIRE_BROWSER").as_deref() == Ok("1") {
                bail!("{msg}");
            }
            eprintln!("{msg}");
            return Ok(None);
        };
        let port = crate::watchdog::free_port();
        let child = Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {driver}"))?;
        let mut b = Browser {
            driver: child,
            base: format!("http://127.0.0.1:{port}"),
            session: String::new(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()?,
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = b.http.get(format!("{}/status", b.base)).send().await {
                if r.status().is_success() {
                    break;
                }
            }
            if start.elapsed() > Duration::from_secs(20) {
                bail!("chromedriver did not answer on :{port}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--force-color-profile=srgb"]}
        }}});
        let v = b
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await?;
        b.session = v["sessionId"]
            .as_str()
            .context("no sessionId in the answer")?
            .to_string();
        Ok(Some(b))
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let v: Value = resp.json().await?;
        if !status.is_success() {
            bail!("WebDriver {path}: {status}: {}", v["value"]["message"]);
        }
        Ok(v["value"].clone())
    }

    fn path(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    /// Navigates to `url`.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::POST,
            &self.path("/url"),
            Some(json!({"url": url})),
        )
        .await
        .map(|_| ())
    }

    /// Runs `script` (a function body; `return` gives the answer).
    pub async fn eval(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            reqwest::Method::POST,
            &self.path("/execute/sync"),
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The visible text of the first element matching `css` (W3C find + text).
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let el = self
            .call(
                reqwest::Method::POST,
                &self.path("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .context("no element reference")?
            .to_string();
        let t = self
            .call(
                reqwest::Method::GET,
                &self.path(&format!("/element/{id}/text")),
                None,
            )
            .await?;
        Ok(t.as_str().unwrap_or_default().to_string())
    }

    /// Polls `script` until it returns `true`; how long that took.
    pub async fn wait_for(&self, script: &str, limit: Duration) -> anyhow::Result<Duration> {
        let start = Instant::now();
        loop {
            if self.eval(script).await? == Value::Bool(true) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                bail!("not true within {limit:?}: {script}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A PNG screenshot of the window, written to `path`.
    pub async fn screenshot(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let v = self
            .call(reqwest::Method::GET, &self.path("/screenshot"), None)
            .await?;
        let png = decode_base64(v.as_str().context("no screenshot")?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png)?;
        Ok(())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (the screenshot), without a crate for it.
fn decode_base64(s: &str) -> anyhow::Result<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c).context("invalid base64")? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len().saturating_sub(1)]);
    }
    Ok(out)
}
