//! Wrapper mode's child: the app the agent starts, signals, waits for and
//! whose exit code it returns. Waiting on the child reaps it, which is all
//! a PID 1 that spawned one process owes the kernel.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

pub use rustix::process::Signal;

/// Starts `command` with the agent's stdin, stdout and stderr.
pub fn spawn(command: &[OsString]) -> std::io::Result<tokio::process::Child> {
    let (program, args) = command
        .split_first()
        .expect("the argument parser rejects an empty command");
    tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(false)
        .spawn()
}

/// Sends `signal` to the child, if it has not been reaped yet.
pub fn forward(child: &tokio::process::Child, signal: Signal) {
    let pid = child
        .id()
        .and_then(|id| rustix::process::Pid::from_raw(id as i32));
    if let Some(pid) = pid {
        // ESRCH: it just exited; the wait will tell.
        let _ = rustix::process::kill_process(pid, signal);
    }
}

/// The code the agent exits with: the child's, or 128+N when signal N
/// killed it (as a shell reports it).
pub fn exit_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(signal)) => 128 + signal,
        (None, None) => 1,
    }
}

/// `app exited with code 1` / `app killed by signal 9`: the `fail` detail.
pub fn describe_exit(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("app exited with code {code}"),
        (None, Some(signal)) => format!("app killed by signal {signal}"),
        (None, None) => "app exited".to_string(),
    }
}

/// The shell's convention for a command that cannot start: 127 not found,
/// 126 found but not executable.
pub fn spawn_failure_code(e: &std::io::Error) -> i32 {
    match e.kind() {
        std::io::ErrorKind::NotFound => 127,
        _ => 126,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell_convention() {
        // Raw wait statuses: exit code in the high byte, signal in the low bits.
        let exited_3 = ExitStatus::from_raw(3 << 8);
        assert_eq!(exit_code(exited_3), 3);
        assert_eq!(describe_exit(exited_3), "app exited with code 3");
        let killed_9 = ExitStatus::from_raw(9);
        assert_eq!(exit_code(killed_9), 137);
        assert_eq!(describe_exit(killed_9), "app killed by signal 9");
        assert_eq!(exit_code(ExitStatus::from_raw(0)), 0);
    }

    #[tokio::test]
    async fn a_missing_command_is_127() {
        let e = spawn(&["/nonexistent/app".into()]).unwrap_err();
        assert_eq!(spawn_failure_code(&e), 127);
    }
}
