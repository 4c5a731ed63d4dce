//! What `bgw-watchdog check-config` says about switching: the mode in use
//! and, in `live` mode, whether nginx can load the Lua module, found out
//! the way that counts: `test_cmd` on the rendered live-mode config, written
//! to a temporary file (the real config is not touched).

use super::command::run_command;
use super::render::render;
use super::settings::{ProxySettings, SwitchMode};
use bgw_wire::Color;
use std::path::PathBuf;

/// The result of [`check_mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeCheck {
    pub mode: SwitchMode,
    /// `live` mode: `Some(true)` when `test_cmd` accepts the rendered
    /// config (the module loads); `None` in `reload` mode.
    pub module_loads: Option<bool>,
    /// Lines for the operator, each ending in a newline.
    pub text: String,
}

/// Says which mode is in use; in `live` mode runs `test_cmd` on the
/// rendered config.
pub async fn check_mode(settings: &ProxySettings) -> ModeCheck {
    let mode = settings.mode;
    if mode == SwitchMode::Reload {
        return ModeCheck {
            mode,
            module_loads: None,
            text:
                "proxy mode: reload (each switch renders nginx_conf, runs test_cmd and reload_cmd; \
                   keep-alive clients may see a connection closed)\n"
                    .to_string(),
        };
    }
    let mut text = format!(
        "proxy mode: live (the live color is set in nginx's memory through 127.0.0.1:{}/bgw/live; no reload at a switch)\n",
        settings.control_listen
    );
    for module in &settings.lua_modules {
        let found = std::path::Path::new(module).is_file();
        text.push_str(&format!(
            "  load_module {module}: {}\n",
            if found {
                "present"
            } else {
                "MISSING (apt-get install libnginx-mod-http-lua)"
            }
        ));
    }
    let config = match render(settings, Color::Blue) {
        Ok(c) => c,
        Err(e) => {
            text.push_str(&format!("  cannot render the live-mode config: {e}\n"));
            return ModeCheck {
                mode,
                module_loads: Some(false),
                text,
            };
        }
    };
    // Next to the real config (same relative paths) when that directory is
    // writable, else in the temp directory.
    let mut path = scratch_path(settings.nginx_conf.parent());
    let mut written = std::fs::write(&path, &config);
    if written.is_err() {
        path = scratch_path(Some(&std::env::temp_dir()));
        written = std::fs::write(&path, &config);
    }
    if let Err(e) = written {
        text.push_str(&format!(
            "  cannot write {} to test the config: {e}\n",
            path.display()
        ));
        return ModeCheck {
            mode,
            module_loads: None,
            text,
        };
    }
    let conf = path.display().to_string();
    let test = run_command(
        &settings.test_cmd,
        &[("conf", conf.as_str()), ("live", "blue"), ("idle", "green")],
        settings.command_timeout.0,
    )
    .await;
    let _ = std::fs::remove_file(&path);
    if test.ok {
        text.push_str("  test_cmd accepts the live-mode config: nginx loads the Lua module\n");
    } else {
        text.push_str(&format!(
            "  WARNING: test_cmd refuses the live-mode config, so switches will fail (is libnginx-mod-http-lua installed? see proxy.lua_modules): {}\n",
            test.summary()
        ));
    }
    ModeCheck {
        mode,
        module_loads: Some(test.ok),
        text,
    }
}

/// A file of our own in `dir` (the temp directory when there is none).
fn scratch_path(dir: Option<&std::path::Path>) -> PathBuf {
    dir.filter(|d| !d.as_os_str().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!(".bgw-check-config-{}.conf", std::process::id()))
}
