//! A real SMTP server for the tests: `tests/tools/smtp_sink.py` (aiosmtpd)
//! as a child process on a free loopback port, killed on drop.
//!
//! Messages are read back from the files the sink writes, decoded by
//! Python's email package, so a test checks what a mail client would show.
//! TLS modes generate a private CA and a server certificate for 127.0.0.1
//! with the `openssl` CLI; [`SmtpSink::ca_file`] is the CA to trust.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How the sink secures connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP (`smtp://`).
    #[default]
    None,
    /// STARTTLS required before anything else (`smtp://...?tls=required`).
    StartTls,
    /// TLS from the first byte (`smtps://`).
    Implicit,
}

/// Options of [`SmtpSink::start`].
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// Require AUTH with this user and password.
    pub auth: Option<(String, String)>,
    pub tls: SmtpTls,
}

/// One message as the sink received it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Email {
    pub subject: String,
    /// The `From` header.
    pub from: String,
    /// Addresses of the `To` header.
    pub to: Vec<String>,
    /// Envelope sender and recipients.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    pub message_id: String,
    /// Top-level MIME type (`multipart/alternative`).
    pub content_type: String,
    /// The decoded text/plain part, if any.
    pub text: Option<String>,
    /// The decoded text/html part, if any.
    pub html: Option<String>,
    /// Whether the session was encrypted (STARTTLS or implicit TLS).
    pub tls: bool,
    /// Who authenticated, if anyone.
    pub auth_user: Option<String>,
    /// When the sink accepted it (seconds since the Unix epoch).
    pub received_unix: f64,
    /// The raw message as received.
    #[serde(skip)]
    pub raw: String,
}

impl Email {
    pub fn received_at(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs_f64(self.received_unix)
    }
}

/// The running aiosmtpd sink.
pub struct SmtpSink {
    _child: Child,
    port: u16,
    dir: tempfile::TempDir,
    opts: SmtpOptions,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    /// Starts `smtp_sink.py` and waits (up to 20 s) until it listens.
    /// Panics with the script's stderr if it cannot start (is aiosmtpd
    /// installed? `scripts/install-deps.sh` installs it).
    pub async fn start(opts: SmtpOptions) -> SmtpSink {
        let dir = tempfile::tempdir().expect("temp dir for the SMTP sink");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/smtp_sink.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .arg("--port")
            .arg("0")
            .arg("--dir")
            .arg(dir.path().join("mail"));
        if let Some((user, pass)) = &opts.auth {
            cmd.arg("--auth").arg(format!("{user}:{pass}"));
        }
        if opts.tls != SmtpTls::None {
            let (cert, key) = make_certificates(dir.path());
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            cmd.arg(match opts.tls {
                SmtpTls::StartTls => "--starttls",
                _ => "--implicit-tls",
            });
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python3 tests/tools/smtp_sink.py");

        let stderr = Arc::new(Mutex::new(Vec::new()));
        let err_lines = stderr.clone();
        let mut err = BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = err.next_line().await {
                eprintln!("smtp_sink: {line}");
                err_lines.lock().unwrap().push(line);
            }
        });
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = out.next_line().await {
                if let Some(port) = line.strip_prefix("READY ") {
                    return port.trim().parse::<u16>().ok();
                }
            }
            None
        })
        .await;
        let port = match ready {
            Ok(Some(port)) => port,
            _ => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                panic!(
                    "smtp_sink.py did not start (is aiosmtpd installed?): {}",
                    stderr.lock().unwrap().join("\n")
                );
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        SmtpSink {
            _child: child,
            port,
            dir,
            opts,
            stderr,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL to configure, without credentials:
    /// `smtp://127.0.0.1:<port>`, `...?tls=required` or `smtps://...`.
    pub fn url(&self) -> String {
        match self.opts.tls {
            SmtpTls::None => format!("smtp://127.0.0.1:{}", self.port),
            SmtpTls::StartTls => format!("smtp://127.0.0.1:{}?tls=required", self.port),
            SmtpTls::Implicit => format!("smtps://127.0.0.1:{}", self.port),
        }
    }

    /// [`Self::url`] with `user:password@` when the sink requires AUTH
    /// (user and password percent-encoded).
    pub fn url_with_credentials(&self) -> String {
        let Some((user, pass)) = &self.opts.auth else {
            return self.url();
        };
        let url = self.url();
        let (scheme, rest) = url.split_once("://").expect("scheme");
        format!("{scheme}://{}:{}@{rest}", encode(user), encode(pass))
    }

    /// The CA certificate that signed the sink's TLS certificate.
    pub fn ca_file(&self) -> Option<PathBuf> {
        (self.opts.tls != SmtpTls::None).then(|| self.dir.path().join("ca.pem"))
    }

    /// Makes the sink refuse every recipient with `code` (e.g. 451 or 550),
    /// or accept them again with `None`.
    pub fn set_reject(&self, code: Option<u16>) {
        let path = self.dir.path().join("mail/.reject");
        match code {
            Some(code) => {
                let tmp = self.dir.path().join("reject.tmp");
                std::fs::write(&tmp, code.to_string()).expect("write reject file");
                std::fs::rename(&tmp, &path).expect("install reject file");
            }
            None => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Where the sink writes each message (`<n>.eml` as received, `<n>.json`
    /// decoded).
    pub fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Messages received so far, in arrival order.
    pub fn messages(&self) -> Vec<Email> {
        let mail = self.dir.path().join("mail");
        let mut numbered: Vec<(u64, PathBuf)> = std::fs::read_dir(&mail)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| {
                        let name = e.file_name().into_string().ok()?;
                        let n = name.strip_suffix(".json")?.parse().ok()?;
                        Some((n, e.path()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        numbered.sort();
        numbered
            .into_iter()
            .filter_map(|(n, path)| {
                let mut email: Email = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
                email.raw =
                    std::fs::read_to_string(mail.join(format!("{n}.eml"))).unwrap_or_default();
                Some(email)
            })
            .collect()
    }

    /// Polls until at least `n` messages arrived; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Email> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.messages();
            if got.len() >= n {
                return got;
            }
            if Instant::now() >= deadline {
                panic!(
                    "SMTP sink: {} of {n} messages after {timeout:?}; stderr: {}",
                    got.len(),
                    self.stderr.lock().unwrap().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A private CA and a server certificate for 127.0.0.1/localhost, signed by
/// it (rustls refuses a CA certificate used as the server's own). Returns
/// (cert, key); the CA is `dir/ca.pem`.
fn make_certificates(dir: &Path) -> (PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=bgw test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .expect("write server.ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ]);
    (dir.join("server.pem"), dir.join("server.key"))
}
