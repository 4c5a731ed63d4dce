//! Blue/green switching through nginx: the `[proxy]` settings, the pure
//! config renderer, the live file, the command runner, the client of
//! nginx's control location (`live` mode) and the [`Switcher`] that puts
//! them together in the order the contract fixes (render, write, `nginx -t`,
//! live file, reload, verify through the proxy; in `live` mode: live file,
//! the color set in nginx's memory, verify through the proxy).
//!
//! Everything here is an effect at the edge except [`render_with`], which is
//! a pure function of the settings, the template text and the live color.

mod check;
mod command;
mod live;
mod memory;
mod probe;
mod render;
mod settings;
mod switch;

pub use check::{check_mode, ModeCheck};
pub use command::{expand, run_command, CommandOutcome, OUTPUT_LIMIT};
pub use live::{read_live, restore_file, write_atomic, write_live, LiveState};
pub use memory::{get_color, set_color, ControlCall};
pub use probe::{probe_direct, DirectHealth};
pub use render::{render, render_with, RenderError, BUILTIN, BUILTIN_LIVE};
pub use settings::{ProxyConfigError, ProxySettings, SwitchMode, Upstream};
pub use switch::{InstallReport, Step, SwitchError, SwitchReport, Switcher, VERIFY_IN_A_ROW};
