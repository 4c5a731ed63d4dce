//! Integration tests: the real `bgw-watchdog` process, a real SQLite file,
//! HTTP on loopback.

mod helpers;
mod ingest;
mod restart;
