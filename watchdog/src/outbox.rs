//! The durable outbox, after planning: notifications are rows written by
//! the monitor in the same transaction as the events that cause them
//! (`alerting::plan`). Here they are delivered and kept coming:
//!
//! - [`delivery`]: one worker per channel (a slow or dead channel never
//!   delays another), exponential backoff with jitter, `Retry-After`, a
//!   permanent refusal recorded as an event and alerted on the other
//!   channels. After a crash, pending rows are simply picked up again: a
//!   crash between a send and its bookkeeping can repeat that one message,
//!   never lose it.
//! - [`grouping`]: when a pending notification may leave, pure: the first
//!   of a group at once, what follows within `group_window` in one
//!   follow-up.
//! - [`reminders`]: the timers that record events without a check's signal
//!   (reminders while a check stays down, the all-is-well summary).

pub mod delivery;
pub mod grouping;
pub mod reminders;

pub use delivery::{run_channel, ChannelHealth, Delivery};
pub use reminders::{run_timers, Timers};
