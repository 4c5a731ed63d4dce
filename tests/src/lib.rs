//! Harness for the workspace's end-to-end tests and the `bench` binary: starts
//! the real binaries, nginx, an SMTP server and a Slack receiver on loopback.
pub mod slack;
pub mod smtp;
pub mod nginx;
