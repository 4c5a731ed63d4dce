//! Email over SMTP with lettre: plain, STARTTLS (`?tls=required`) or implicit
//! TLS (`smtps://`), optional authentication, multipart text + HTML.
//!
//! Each send opens one connection, sends one message and quits, within the
//! channel's time limit. Plain and STARTTLS sessions run over our own TCP
//! connection with `TCP_NODELAY`: lettre writes the message and its final
//! `.` separately, and with Nagle's algorithm the second write waits for
//! the server's delayed ACK (40 ms on Linux) on every message. Implicit TLS
//! uses lettre's transport as is. SMTP 4xx replies, timeouts, connection and TLS
//! errors are transient; 5xx replies (unknown mailbox, authentication
//! refused) are permanent. lettre's errors are rephrased in our words, and
//! the password and the SMTP URL are scrubbed from whatever the server said.
//!
//! When the notification has an event id, the `Message-ID` is derived from it
//! (`<bgw.42.down.blue@example.org>`), so the rare repeat after a crash
//! between send and commit is recognised as the same message by mail
//! clients that de-duplicate on it. So every notification the caller stores
//! must carry the id of its own event: a reminder is an event of its own, or
//! mail clients would fold the second reminder into the first.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use crate::error::{error_chain, percent_decode, Scrubber, SendError};
use crate::message::{Kind, Notification};
use crate::settings::{check_timeout, read_secret, EmailSettings};
use crate::slack::{GREEN, RED};
use crate::ConfigError;

/// A configured SMTP channel.
pub(crate) struct Email {
    session: Session,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    scrubber: Scrubber,
}

impl std::fmt::Debug for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email")
            .field("from", &self.from.to_string())
            .field("to", &self.to.len())
            .finish_non_exhaustive()
    }
}

/// How a send reaches the server.
enum Session {
    /// Plain or STARTTLS over our own `TCP_NODELAY` connection.
    Direct {
        host: String,
        port: u16,
        starttls: Option<TlsParameters>,
        hello: ClientId,
        credentials: Option<Credentials>,
    },
    /// Implicit TLS through lettre's transport.
    Transport(AsyncSmtpTransport<Tokio1Executor>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Security {
    Plain,
    StartTls,
    ImplicitTls,
}

impl Email {
    pub(crate) fn new(s: &EmailSettings) -> Result<Self, ConfigError> {
        const URL_KEY: &str = "notify.email.smtp_url";
        let url = url::Url::parse(s.smtp_url.expose_secret().trim())
            .map_err(|e| ConfigError::new(URL_KEY, format!("not a valid URL ({e})")))?;
        let mut tls_mode: Option<String> = None;
        for (k, v) in url.query_pairs() {
            match k.as_ref() {
                "tls" => tls_mode = Some(v.into_owned()),
                other => {
                    return Err(ConfigError::new(
                        URL_KEY,
                        format!("unknown query parameter {other:?} (only tls=required is known)"),
                    ))
                }
            }
        }
        let security = match (url.scheme(), tls_mode.as_deref()) {
            ("smtp", None | Some("none")) => Security::Plain,
            ("smtp", Some("required" | "starttls")) => Security::StartTls,
            ("smtps", None | Some("wrapper" | "implicit")) => Security::ImplicitTls,
            (scheme @ ("smtp" | "smtps"), Some(other)) => {
                return Err(ConfigError::new(
                    URL_KEY,
                    format!("unknown tls={other:?} for {scheme}:// (use smtp://...?tls=required for STARTTLS or smtps:// for implicit TLS)"),
                ))
            }
            (scheme, _) => {
                return Err(ConfigError::new(
                    URL_KEY,
                    format!("scheme must be smtp or smtps, not {scheme:?}"),
                ))
            }
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| ConfigError::new(URL_KEY, "the URL has no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = url.port().unwrap_or(match security {
            Security::Plain => 25,
            Security::StartTls => 587,
            Security::ImplicitTls => 465,
        });

        let mut scrubber = Scrubber::default();
        scrubber.add_url(&url);
        let credentials = credentials(s, &url)?;
        if let Some((_, password)) = &credentials {
            scrubber.add(password.expose_secret());
        }

        let timeout = check_timeout(s.timeout, "notify.email.timeout")?;
        let mut tls_params = None;
        if security != Security::Plain {
            let mut params = TlsParameters::builder(host.clone());
            if let Some(path) = &s.ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    ConfigError::new(
                        "notify.email.ca_file",
                        format!("cannot read {}: {e}", path.display()),
                    )
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|_| {
                    ConfigError::new(
                        "notify.email.ca_file",
                        format!("{} is not a PEM certificate", path.display()),
                    )
                })?;
                params = params.add_root_certificate(cert);
            }
            tls_params = Some(params.build().map_err(|e| {
                ConfigError::new(
                    URL_KEY,
                    format!("cannot set up TLS: {}", scrubber.scrub(&error_chain(&e))),
                )
            })?);
        }
        let hello = if url.path().len() > 1 {
            ClientId::Domain(url.path().trim_matches('/').into())
        } else {
            ClientId::default()
        };
        let credentials = credentials
            .map(|(user, password)| Credentials::new(user, password.expose_secret().into()));
        let session = match (security, tls_params) {
            (Security::ImplicitTls, Some(params)) => {
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.clone())
                        .port(port)
                        .timeout(Some(timeout))
                        .hello_name(hello)
                        .tls(Tls::Wrapper(params));
                if let Some(c) = credentials {
                    builder = builder.credentials(c);
                }
                Session::Transport(builder.build())
            }
            (_, starttls) => Session::Direct {
                host,
                port,
                starttls,
                hello,
                credentials,
            },
        };

        let from: Mailbox = s.from.trim().parse().map_err(|_| {
            ConfigError::new("notify.email.from", format!("invalid address {:?}", s.from))
        })?;
        if s.to.is_empty() {
            return Err(ConfigError::new(
                "notify.email.to",
                "no recipient: give at least one address",
            ));
        }
        let to =
            s.to.iter()
                .map(|a| {
                    a.trim().parse::<Mailbox>().map_err(|_| {
                        ConfigError::new("notify.email.to", format!("invalid address {a:?}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;

        Ok(Email {
            session,
            from,
            to,
            timeout: s.timeout.0,
            scrubber,
        })
    }

    pub(crate) async fn send(&self, n: &Notification) -> Result<(), SendError> {
        let message = self.message(n)?;
        let delivery = async {
            match &self.session {
                Session::Transport(transport) => transport
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|e| classify(&e)),
                Session::Direct {
                    host,
                    port,
                    starttls,
                    hello,
                    credentials,
                } => {
                    send_direct(
                        (host, *port),
                        starttls.as_ref(),
                        hello,
                        credentials.as_ref(),
                        &message,
                    )
                    .await
                }
            }
        };
        match tokio::time::timeout(self.timeout, delivery).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.scrubbed(&self.scrubber)),
            Err(_) => Err(SendError::transient(format!(
                "SMTP: no answer within {}",
                bgw_wire::format_duration(self.timeout)
            ))),
        }
    }

    /// The MIME message for `n`.
    fn message(&self, n: &Notification) -> Result<Message, SendError> {
        let mut builder = Message::builder().from(self.from.clone());
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let message_id = (n.event_id > 0).then(|| {
            let domain = self.from.email.domain();
            let check: String = n
                .check
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let kind = serde_json::to_value(n.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!("<bgw.{}.{kind}.{check}@{domain}>", n.event_id)
        });
        builder
            .subject(n.subject())
            .message_id(message_id)
            .multipart(
                MultiPart::alternative()
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_PLAIN)
                            .body(n.text()),
                    )
                    .singlepart(
                        SinglePart::builder()
                            .header(ContentType::TEXT_HTML)
                            .body(html(n)),
                    ),
            )
            .map_err(|e| SendError::permanent(format!("cannot build the email: {e}")))
    }
}

/// One SMTP session on a `TCP_NODELAY` connection: EHLO, STARTTLS when
/// asked (refused if the server does not offer it), AUTH, the message, QUIT.
async fn send_direct(
    (host, port): (&str, u16),
    starttls: Option<&TlsParameters>,
    hello: &ClientId,
    credentials: Option<&Credentials>,
    message: &Message,
) -> Result<(), SendError> {
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| SendError::transient(format!("SMTP: cannot connect: {e}")))?;
    let _ = tcp.set_nodelay(true);
    let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), hello)
        .await
        .map_err(|e| classify(&e))?;
    if let Some(params) = starttls {
        conn.starttls(params.clone(), hello)
            .await
            .map_err(|e| classify(&e))?;
    }
    if let Some(credentials) = credentials {
        conn.auth(DEFAULT_MECHANISMS, credentials)
            .await
            .map_err(|e| classify(&e))?;
    }
    conn.send(message.envelope(), &message.formatted())
        .await
        .map_err(|e| classify(&e))?;
    // The message is accepted; a failed QUIT changes nothing.
    let _ = conn.quit().await;
    Ok(())
}

/// User and password from the URL or the `username`/`password(_file)` keys;
/// each may come from one place only.
fn credentials(
    s: &EmailSettings,
    url: &url::Url,
) -> Result<Option<(String, SecretString)>, ConfigError> {
    let url_user = (!url.username().is_empty())
        .then(|| percent_decode(url.username()))
        .transpose()
        .map_err(|_| ConfigError::new("notify.email.smtp_url", "user name is not UTF-8"))?;
    let url_password = url
        .password()
        .map(percent_decode)
        .transpose()
        .map_err(|_| ConfigError::new("notify.email.smtp_url", "password is not UTF-8"))?
        .map(SecretString::from);
    let key_password = read_secret(
        s.password.as_ref(),
        s.password_file.as_deref(),
        "notify.email.password",
        "notify.email.password_file",
    )?;
    let user = match (url_user, &s.username) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "notify.email.username",
                "the user is also in smtp_url: give it in one place",
            ))
        }
        (Some(u), None) => Some(u),
        (None, Some(u)) => Some(u.clone()),
        (None, None) => None,
    };
    let password = match (url_password, key_password) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::new(
                "notify.email.password",
                "the password is also in smtp_url: give it in one place",
            ))
        }
        (a, b) => a.or(b),
    };
    match (user, password) {
        (Some(user), Some(password)) => Ok(Some((user, password))),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::new(
            "notify.email.password",
            "a user name is set but no password (password, password_file or user:password@ in smtp_url)",
        )),
        (None, Some(_)) => Err(ConfigError::new(
            "notify.email.username",
            "a password is set but no user name",
        )),
    }
}

/// Classifies a lettre error in our own words (its text may carry what the
/// server said, which is kept, but never our configuration).
fn classify(e: &lettre::transport::smtp::Error) -> SendError {
    let detail = error_chain(e);
    if e.is_permanent() {
        SendError::permanent(format!("SMTP server refused the message: {detail}"))
    } else if e.is_transient() {
        SendError::transient(format!("SMTP server deferred the message: {detail}"))
    } else if e.is_timeout() {
        SendError::transient("SMTP: timed out")
    } else if e.is_tls() || detail.contains("certificate") {
        SendError::transient(format!("SMTP: TLS failed: {detail}"))
    } else {
        SendError::transient(format!("SMTP: {detail}"))
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The HTML part: the same facts as [`Notification::text`], with a red or
/// green bar.
pub fn html(n: &Notification) -> String {
    let color = if n.is_bad() { RED } else { GREEN };
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html><body style=\"font-family: -apple-system, Segoe UI, Helvetica, Arial, sans-serif; color: #1d1c1d\">\n");
    out.push_str(&format!(
        "<div style=\"border-left: 6px solid {color}; padding: 4px 16px\">\n<h2 style=\"margin: 4px 0 8px 0\">{}</h2>\n",
        escape_html(&n.subject())
    ));
    if !n.reason.is_empty() {
        out.push_str(&format!("<p>{}</p>\n", escape_html(&n.reason)));
    }
    out.push_str("<table cellpadding=\"4\" style=\"border-collapse: collapse\">\n");
    for (label, value) in n.facts() {
        out.push_str(&format!(
            "<tr><th align=\"left\">{label}</th><td>{}</td></tr>\n",
            escape_html(&value)
        ));
    }
    out.push_str("</table>\n");
    if !n.members.is_empty() {
        let title = if n.kind == Kind::AllIsWell {
            "Checks"
        } else {
            "Members"
        };
        out.push_str(&format!("<h3>{title}</h3>\n<ul>\n"));
        for line in n.member_lines() {
            out.push_str(&format!("<li>{}</li>\n", escape_html(&line)));
        }
        out.push_str("</ul>\n");
    }
    out.push_str(&format!(
        "</div>\n<p style=\"color: #616061; font-size: 12px\">{}</p>\n</body></html>\n",
        escape_html(&n.footer())
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::down_blue;

    fn settings(url: &str) -> EmailSettings {
        EmailSettings::new(url, "bgw@example.org", vec!["ops@example.org".into()])
    }

    #[test]
    fn urls_choose_plain_starttls_or_implicit_tls() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://127.0.0.1:2525?tls=required",
            "smtps://u:p@127.0.0.1:2465",
            "smtp://mail.example.org",
        ] {
            Email::new(&settings(url)).unwrap_or_else(|e| panic!("{url}: {e}"));
        }
    }

    #[test]
    fn bad_settings_name_the_key_and_hide_the_password() {
        let cases = [
            (
                settings("http://h"),
                "notify.email.smtp_url: scheme must be smtp or smtps",
            ),
            (
                settings("smtp://h?tls=maybe"),
                "notify.email.smtp_url: unknown tls=",
            ),
            (settings("smtp://u:hunter22@h"), ""),
            (
                EmailSettings {
                    to: vec!["x".into()],
                    ..settings("smtp://h")
                },
                "notify.email.to: invalid address \"x\"",
            ),
            (
                EmailSettings {
                    to: vec![],
                    ..settings("smtp://h")
                },
                "notify.email.to: no recipient",
            ),
            (
                EmailSettings {
                    from: "nobody".into(),
                    ..settings("smtp://h")
                },
                "notify.email.from: invalid address",
            ),
            (
                EmailSettings {
                    password: Some("hunter22".into()),
                    ..settings("smtp://u:hunter22@h")
                },
                "notify.email.password: the password is also in smtp_url",
            ),
            (
                EmailSettings {
                    username: Some("u".into()),
                    ..settings("smtp://h")
                },
                "notify.email.password: a user name is set but no password",
            ),
        ];
        for (s, want) in cases {
            match Email::new(&s) {
                Ok(_) => assert!(want.is_empty(), "expected error {want:?}"),
                Err(e) => {
                    assert!(e.to_string().starts_with(want), "{e} != {want}");
                    assert!(!e.to_string().contains("hunter22"), "{e}");
                }
            }
        }
    }

    #[test]
    fn message_has_contract_subject_and_both_parts() {
        let email = Email::new(&settings("smtp://127.0.0.1:25")).unwrap();
        let raw = String::from_utf8(email.message(&down_blue()).unwrap().formatted()).unwrap();
        assert!(raw.contains("Subject: [bgw] DOWN blue\r\n"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain"), "{raw}");
        assert!(raw.contains("text/html"), "{raw}");
        assert!(
            raw.contains("Message-ID: <bgw.42.down.blue@example.org>"),
            "{raw}"
        );
    }

    #[test]
    fn html_is_escaped_and_coloured() {
        let n = Notification {
            reason: "GET /ping returned <b>502</b>".into(),
            ..down_blue()
        };
        let h = html(&n);
        assert!(h.contains("&lt;b&gt;502"), "{h}");
        assert!(h.contains(RED));
        assert!(h.contains("2026-11-26T14:03:20Z"));
    }
}
