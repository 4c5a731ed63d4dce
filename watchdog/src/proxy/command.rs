//! Runs the operator-configured commands (`test_cmd`, `reload_cmd`,
//! `deploy_cmd`, `scale_cmd`) without a shell: the template is split into
//! arguments on whitespace first, then `{var}` placeholders are filled in
//! each argument, so an image name such as `x; touch /tmp/pwned` stays one
//! argument and nothing interprets it. Output is captured (bounded) for the
//! event log; a command that overruns its timeout is killed.

use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Most bytes of output kept per command (stdout then stderr).
pub const OUTPUT_LIMIT: usize = 8 * 1024;

/// What happened when a command ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CommandOutcome {
    /// Exited with status 0 within the timeout.
    pub ok: bool,
    /// The exit code; `None` when it could not start, was killed or timed out.
    pub exit_code: Option<i32>,
    /// stdout then stderr, at most [`OUTPUT_LIMIT`] bytes (lossy UTF-8); or
    /// why it could not start.
    pub output: String,
    pub timed_out: bool,
    /// The argv as run, shell-quoted for reading (never run through a shell).
    pub display: String,
    pub duration: Duration,
}

impl CommandOutcome {
    /// One line for logs and errors: `` `nginx -t -c /x` exited with 1: <output tail> ``.
    pub fn summary(&self) -> String {
        let status = if self.timed_out {
            format!(
                "timed out after {}",
                bgw_wire::format_duration(self.duration)
            )
        } else {
            match self.exit_code {
                Some(0) => "succeeded".to_string(),
                Some(code) => format!("exited with {code}"),
                None if self.output.starts_with("cannot start") => "could not start".to_string(),
                None => "was killed by a signal".to_string(),
            }
        };
        let tail: Vec<&str> = self
            .output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        let tail = tail[tail.len().saturating_sub(3)..].join(" | ");
        if tail.is_empty() {
            format!("`{}` {status}", self.display)
        } else {
            format!("`{}` {status}: {tail}", self.display)
        }
    }
}

/// Pure: splits `template` on whitespace, then fills `{name}` placeholders
/// in each argument in one pass (a value is never re-scanned, and braces that
/// are not a known placeholder, such as docker's `{{.ID}}`, stay as written).
pub fn expand(template: &str, vars: &[(&str, &str)]) -> Vec<String> {
    template
        .split_whitespace()
        .map(|arg| {
            let mut out = String::with_capacity(arg.len());
            let mut rest = arg;
            'scan: while let Some(i) = rest.find('{') {
                out.push_str(&rest[..i]);
                let after = &rest[i + 1..];
                for (name, value) in vars {
                    if let Some(tail) = after.strip_prefix(name).and_then(|t| t.strip_prefix('}')) {
                        out.push_str(value);
                        rest = tail;
                        continue 'scan;
                    }
                }
                out.push('{');
                rest = after;
            }
            out.push_str(rest);
            out
        })
        .collect()
}

/// Quotes an argv for display, the way a shell user would type it.
fn display(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./:=@%+,{}".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `template` with `vars` filled in, for at most `timeout`.
pub async fn run_command(
    template: &str,
    vars: &[(&str, &str)],
    timeout: Duration,
) -> CommandOutcome {
    let argv = expand(template, vars);
    let shown = display(&argv);
    let started = Instant::now();
    let fail = |output: String| CommandOutcome {
        ok: false,
        exit_code: None,
        output,
        timed_out: false,
        display: shown.clone(),
        duration: started.elapsed(),
    };
    let Some((program, args)) = argv.split_first() else {
        return fail("cannot start: empty command".to_string());
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("cannot start {program}: {e}")),
    };
    let stdout = tokio::spawn(read_bounded(child.stdout.take()));
    let stderr = tokio::spawn(read_bounded(child.stderr.take()));
    let (status, timed_out) = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => (status.ok(), false),
        Err(_) => {
            let _ = child.start_kill();
            (child.wait().await.ok(), true)
        }
    };
    // A grandchild may keep the pipes open; do not wait for it forever.
    let grace = Duration::from_secs(1);
    let out = tokio::time::timeout(grace, stdout)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let err = tokio::time::timeout(grace, stderr)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut bytes = out;
    if !bytes.is_empty() && !err.is_empty() && !bytes.ends_with(b"\n") {
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(&err);
    let truncated = bytes.len() > OUTPUT_LIMIT;
    bytes.truncate(OUTPUT_LIMIT);
    let mut output = String::from_utf8_lossy(&bytes).into_owned();
    if truncated {
        output.push_str("\n... (output truncated)");
    }
    let exit_code = if timed_out {
        None
    } else {
        status.and_then(|s| s.code())
    };
    CommandOutcome {
        ok: exit_code == Some(0),
        exit_code,
        output,
        timed_out,
        display: shown,
        duration: started.elapsed(),
    }
}

/// Reads a pipe to its end, keeping the first bytes (one more than the
/// limit, so truncation shows) and draining the rest so the child never
/// blocks on a full pipe.
async fn read_bounded<R: AsyncRead + Unpin>(reader: Option<R>) -> Vec<u8> {
    let Some(mut reader) = reader else {
        return Vec::new();
    };
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match reader.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = (OUTPUT_LIMIT + 1).saturating_sub(kept.len());
                kept.extend_from_slice(&chunk[..n.min(room)]);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_splits_first_then_substitutes_per_argument() {
        let argv = expand(
            "docker service update --image {image} {color}-service",
            &[("image", "x; touch /tmp/pwned"), ("color", "green")],
        );
        assert_eq!(
            argv,
            vec![
                "docker",
                "service",
                "update",
                "--image",
                "x; touch /tmp/pwned",
                "green-service"
            ]
        );
    }

    #[test]
    fn expansion_never_rescans_values_and_keeps_unknown_braces() {
        let argv = expand(
            "echo {a} {b} --format {{.ID}} {missing}",
            &[("a", "{b}"), ("b", "B")],
        );
        assert_eq!(
            argv,
            vec!["echo", "{b}", "B", "--format", "{{.ID}}", "{missing}"]
        );
        assert_eq!(
            expand(
                "scale {color}-service={n}",
                &[("color", "blue"), ("n", "3")]
            ),
            vec!["scale", "blue-service=3"]
        );
    }

    #[test]
    fn display_quotes_what_a_shell_would_split() {
        assert_eq!(
            display(&["echo".into(), "a b".into(), "it's".into(), "/x.conf".into()]),
            r"echo 'a b' 'it'\''s' /x.conf"
        );
    }

    #[tokio::test]
    async fn captures_exit_code_and_both_streams() {
        let o = run_command(
            "sh -c {script}",
            &[("script", "echo out; echo err >&2; exit 3")],
            Duration::from_secs(10),
        )
        .await;
        assert!(!o.ok);
        assert_eq!(o.exit_code, Some(3));
        assert_eq!(o.output, "out\nerr\n");
        assert!(
            o.summary().contains("exited with 3: out | err"),
            "{}",
            o.summary()
        );
    }

    #[tokio::test]
    async fn a_hostile_argument_reaches_the_program_as_one_argument() {
        let marker = std::env::temp_dir().join(format!("bgw-pwned-unit-{}", std::process::id()));
        let hostile = format!("x; touch {}", marker.display());
        let o = run_command(
            "printf [%s] {image}",
            &[("image", &hostile)],
            Duration::from_secs(10),
        )
        .await;
        assert!(o.ok, "{o:?}");
        assert_eq!(o.output, format!("[{hostile}]"));
        assert!(!marker.exists());
    }

    #[tokio::test]
    async fn a_slow_command_is_killed_at_the_timeout() {
        let o = run_command("sleep 30", &[], Duration::from_millis(200)).await;
        assert!(o.timed_out && !o.ok && o.exit_code.is_none(), "{o:?}");
        assert!(o.duration < Duration::from_secs(10));
        assert!(o.summary().contains("timed out"), "{}", o.summary());
    }

    #[tokio::test]
    async fn a_missing_program_or_empty_template_is_an_error_not_a_panic() {
        let o = run_command("/nonexistent/bgw-nothing --x", &[], Duration::from_secs(5)).await;
        assert!(!o.ok && o.output.starts_with("cannot start"), "{o:?}");
        let o = run_command("   ", &[], Duration::from_secs(5)).await;
        assert!(!o.ok && o.output.contains("empty command"), "{o:?}");
    }

    #[tokio::test]
    async fn output_is_bounded() {
        let o = run_command("head -c 100000 /dev/zero", &[], Duration::from_secs(10)).await;
        assert!(o.ok);
        assert!(o.output.len() < OUTPUT_LIMIT + 64);
        assert!(o.output.ends_with("(output truncated)"));
    }
}
