//! What `bgw-checker` and `bgw-prober` share, and the two file primitives the
//! watchdog uses too.
//!
//! - the probe: fetch a URL and judge the answer ([`probe`]), the schedule of
//!   overlapping rounds ([`rounds`]) and the seed script's log line of each
//!   result ([`seed_line`], [`log_seed_lines!`]);
//! - the report client: delivery to the watchdog with jittered backoff
//!   ([`delivery`]);
//! - the edge of a reporter binary: shared flags, start, stop, exit codes
//!   ([`cli`]), logging ([`telemetry`]) and the layered settings helpers
//!   ([`settings`]);
//! - the live file, read one way everywhere ([`live`]), and the one atomic
//!   file write ([`atomic_file`]).
//!
//! Nothing here pulls in a database, a mail client or a server, so a
//! reporter stays a small binary.

pub mod atomic_file;
pub mod cli;
pub mod delivery;
pub mod live;
pub mod probe;
pub mod rounds;
pub mod seed_line;
pub mod settings;
pub mod telemetry;

pub use atomic_file::write_atomic;
pub use live::{read_live, LiveState};
