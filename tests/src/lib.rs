//! Harness for the workspace's end-to-end tests and the `bench` binary: starts
//! the real binaries, nginx, an SMTP server and a Slack receiver on loopback.
pub mod attack;
pub mod browser;
pub mod container;
pub mod fake_watchdog;
pub mod measure;
pub mod nginx;
pub mod slack;
pub mod smtp;
pub mod swarm;
pub mod system;
pub mod watchdog;

use std::path::PathBuf;

/// A binary of this workspace, built next to the running test or bench
/// (`target/<profile>/<name>`). `scripts/test.sh` builds every binary before
/// the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}
