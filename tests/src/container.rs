//! Real Docker containers for the agent: `agent_image()` builds (once per
//! binary content) an image from nothing, since no registry can be reached:
//! the debug `bgw-agent` and `bgw-testapp` at `/`, plus exactly the shared
//! libraries `ldd` lists for them at their paths, `docker import`ed with
//! `ENTRYPOINT ["/bgw-agent"]`. `Container` is one running container on the
//! host network, removed (`docker rm -f`) on drop, even when a test panics.
//!
//! Everything goes through the `docker` CLI: it is what an operator runs, and
//! it keeps the harness free of a Docker client crate.

use anyhow::{bail, Context};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The image's repository; the tag is a hash of the files it holds.
pub const IMAGE_REPO: &str = "bgw-e2e-agent";

/// Label on every container this harness starts: the test process's pid, so
/// containers left by a killed test run can be swept.
const PID_LABEL: &str = "bgw-e2e.pid";

/// Every wait polls up to this long.
const DEADLINE: Duration = Duration::from_secs(15);

/// Why Docker cannot be used here (`docker info` failed), or `None` when it can.
pub fn docker_unavailable() -> Option<String> {
    match Command::new("docker")
        .args(["info", "--format", "{{.ServerVersion}}"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`docker info` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(format!("cannot run `docker`: {e}")),
    }
}

/// Runs `docker ARGS` and returns its trimmed stdout; an error names the
/// command and carries docker's stderr.
pub fn docker<I, S>(args: I) -> anyhow::Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let out = Command::new("docker")
        .args(&args)
        .stdin(Stdio::null())
        .output()
        .context("running docker")?;
    checked(out, &format!("docker {}", args[0].to_string_lossy()))
}

fn checked(out: Output, what: &str) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!(
            "`{what}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The image holding `/bgw-agent` and `/bgw-testapp`, built on first use
/// and reused while the binaries (and libraries) do not change. Also sweeps
/// containers left behind by test processes that no longer exist.
pub fn agent_image() -> anyhow::Result<String> {
    static IMAGE: OnceLock<Mutex<Option<String>>> = OnceLock::new();
    let mut image = IMAGE
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(tag) = image.as_ref() {
        return Ok(tag.clone());
    }
    sweep_stale_containers();
    let tag = build_image(&[crate::bin("bgw-agent"), crate::bin("bgw-testapp")])?;
    *image = Some(tag.clone());
    Ok(tag)
}

/// Builds the image from `binaries` (placed at `/`) and their `ldd`
/// libraries; a no-op when the tag for that content already exists.
pub fn build_image(binaries: &[PathBuf]) -> anyhow::Result<String> {
    let mut files: Vec<(PathBuf, PathBuf)> = Vec::new(); // (source, path in image)
    for bin in binaries {
        let name = bin.file_name().context("binary without a name")?;
        files.push((bin.clone(), Path::new("/").join(name)));
        for lib in shared_libraries(bin)? {
            if !files.iter().any(|(_, p)| p == &lib) {
                files.push((lib.clone(), lib));
            }
        }
    }
    let tag = format!("{IMAGE_REPO}:{}", content_hash(&files)?);
    if docker(["image", "inspect", "--format", "{{.Id}}", &tag]).is_ok() {
        return Ok(tag);
    }

    let dir = tempfile::tempdir()?;
    let root = dir.path().join("root");
    for (source, path) in &files {
        let dest = root.join(path.strip_prefix("/")?);
        std::fs::create_dir_all(dest.parent().context("no parent")?)?;
        // `copy` follows symlinks (`/lib64/ld-linux-x86-64.so.2` is one)
        // and keeps the permission bits.
        std::fs::copy(source, &dest).with_context(|| format!("copying {}", source.display()))?;
    }
    // Mount points Docker fills in; the agent does not need them (with
    // `--network host` it takes its name from `$HOSTNAME`).
    for d in ["etc", "tmp", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let tar = dir.path().join("rootfs.tar");
    let out = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .output()
        .context("running tar")?;
    checked(out, "tar")?;
    let entrypoint = r#"ENTRYPOINT ["/bgw-agent"]"#;
    docker([
        OsStr::new("import"),
        OsStr::new("--change"),
        OsStr::new(entrypoint),
        tar.as_os_str(),
        OsStr::new(&tag),
    ])?;
    Ok(tag)
}

/// The absolute paths of the shared libraries `ldd` lists for `bin`
/// (the vDSO has no file and is skipped).
fn shared_libraries(bin: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .context("running ldd")?;
    let text = checked(out, "ldd")?;
    Ok(parse_ldd(&text))
}

fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or
            // `/lib64/ld-linux-x86-64.so.2 (0x...)`.
            let path = match line.split_once("=>") {
                Some((_, right)) => right,
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// A short hash of the files' paths and contents (`sha256sum`).
fn content_hash(files: &[(PathBuf, PathBuf)]) -> anyhow::Result<String> {
    let out = Command::new("sha256sum")
        .args(files.iter().map(|(source, _)| source))
        .output()
        .context("running sha256sum")?;
    let sums = checked(out, "sha256sum")?;
    let mut listing = String::new();
    for ((_, path), line) in files.iter().zip(sums.lines()) {
        let sum = line.split_whitespace().next().unwrap_or_default();
        listing.push_str(&format!("{sum} {}\n", path.display()));
    }
    let mut cmd = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("running sha256sum")?;
    use std::io::Write;
    cmd.stdin
        .take()
        .context("sha256sum stdin")?
        .write_all(listing.as_bytes())?;
    let total = checked(cmd.wait_with_output()?, "sha256sum")?;
    Ok(total.chars().take(16).collect())
}

/// Removes containers started by test processes that are gone (killed
/// before their `Drop` ran).
fn sweep_stale_containers() {
    let Ok(list) = docker([
        "ps",
        "-a",
        "--filter",
        &format!("label={PID_LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{.Label \"{PID_LABEL}\"}}}}"),
    ]) else {
        return;
    };
    for line in list.lines() {
        if let Some((id, pid)) = line.split_once(' ') {
            if !Path::new("/proc").join(pid.trim()).exists() {
                let _ = docker(["rm", "-f", id]);
            }
        }
    }
}

/// One container on the host network, removed on drop.
pub struct Container {
    /// Unique container name, also its hostname: with `--network host`
    /// Docker would give every container the host's name, and the agent
    /// names its instance after the hostname.
    pub name: String,
    pub id: String,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    /// Docker's `State.Error` (empty unless the container could not run).
    pub error: String,
}

impl Container {
    /// `docker run -d --network host --name N --hostname N [docker_args] IMAGE [args]`:
    /// `args` go to the image's entrypoint (`/bgw-agent`).
    pub fn run(image: &str, purpose: &str, docker_args: &[String], args: &[String]) -> Container {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "bgw-e2e-{}-{}-{purpose}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut cmd: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--network".into(),
            "host".into(),
            "--name".into(),
            name.clone(),
            "--hostname".into(),
            name.clone(),
            "--label".into(),
            format!("{PID_LABEL}={}", std::process::id()),
        ];
        cmd.extend(docker_args.iter().cloned());
        cmd.push(image.into());
        cmd.extend(args.iter().cloned());
        // Build the handle first so a failed start still removes what exists.
        let mut container = Container {
            name: name.clone(),
            id: String::new(),
        };
        container.id = docker(&cmd).unwrap_or_else(|e| panic!("starting {name}: {e:#}"));
        container
    }

    /// The hostname Docker gave the container.
    pub fn hostname(&self) -> String {
        self.inspect("{{.Config.Hostname}}")
    }

    /// `docker inspect --format FORMAT`.
    pub fn inspect(&self, format: &str) -> String {
        docker(["inspect", "--format", format, &self.name])
            .unwrap_or_else(|e| panic!("inspecting {}: {e:#}", self.name))
    }

    pub fn is_running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// `docker kill --signal SIG`.
    pub fn kill(&self, signal: &str) {
        docker(["kill", "--signal", signal, &self.name])
            .unwrap_or_else(|e| panic!("killing {}: {e:#}", self.name));
    }

    /// `docker stop` (SIGTERM, then SIGKILL after docker's default 10 s);
    /// returns how long it took.
    pub fn stop(&self) -> Duration {
        let start = Instant::now();
        docker(["stop", &self.name]).unwrap_or_else(|e| panic!("stopping {}: {e:#}", self.name));
        start.elapsed()
    }

    /// Polls until the container has exited (up to 15 s); its exit code.
    pub async fn wait_exit(&self) -> Exit {
        let start = Instant::now();
        loop {
            let state = self.inspect("{{.State.Status}} {{.State.ExitCode}} {{.State.Error}}");
            let mut parts = state.splitn(3, ' ');
            let status = parts.next().unwrap_or_default();
            if status == "exited" || status == "dead" {
                return Exit {
                    code: parts.next().unwrap_or_default().parse().unwrap_or(-1),
                    error: parts.next().unwrap_or_default().to_string(),
                };
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{} is still {status}; logs:\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The container's stdout and stderr so far (for failure messages).
    pub fn logs(&self) -> String {
        match Command::new("docker")
            .args(["logs", &self.name])
            .stdin(Stdio::null())
            .output()
        {
            Ok(out) => format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("(docker logs failed: {e})"),
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_the_library_paths_without_the_vdso() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
            \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f)\n\
            \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
            \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
    }
}
