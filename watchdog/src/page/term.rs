//! The status page in a terminal (`bgw-watchdog status`): the same view,
//! as text, coloured blue and green like the original scripts when `ansi`
//! (stdout is a terminal), plain otherwise.

use super::view::{Tone, View};
use bgw_wire::Color;
use std::fmt::Write;

struct Paint(bool);

impl Paint {
    fn code(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    fn color(&self, c: Color) -> String {
        let code = match c {
            Color::Blue => "1;34",
            Color::Green => "1;32",
        };
        self.code(code, c.as_str())
    }

    fn tone(&self, t: Tone, s: &str) -> String {
        let code = match t {
            Tone::Ok => "32",
            Tone::Warn => "33",
            Tone::Bad => "1;31",
            Tone::Info => "36",
            Tone::Muted => "2",
        };
        self.code(code, s)
    }
}

fn pct(u: Option<f64>) -> String {
    u.map_or("-".into(), |p| format!("{p:.2}%"))
}

/// Renders `view` for a terminal.
pub fn render(v: &View, ansi: bool) -> String {
    let p = Paint(ansi);
    let b = &v.banner;
    let mut out = String::new();
    let _ = match b.live {
        Some(c) => writeln!(
            out,
            "LIVE {}{}   IDLE {} ({})",
            p.color(c),
            b.since_ago
                .as_deref()
                .map(|a| format!(" since {a} ago"))
                .unwrap_or_default(),
            p.color(c.other()),
            p.tone(b.idle_health.tone, &b.idle_health.text)
        ),
        None => writeln!(
            out,
            "LIVE {}",
            p.tone(Tone::Bad, b.live_error.as_deref().unwrap_or("undefined"))
        ),
    };
    for side in &b.versions {
        let _ = writeln!(
            out,
            "  {:<5} versions: {}",
            p.color(side.color),
            if side.versions.is_empty() {
                "-".to_string()
            } else {
                side.versions.join(", ")
            }
        );
    }
    let r = &b.rollback;
    let _ = writeln!(
        out,
        "rollback: {}{}{}",
        p.tone(r.tone, &r.text),
        r.window_remaining
            .as_deref()
            .map(|w| format!("; window {w} left"))
            .unwrap_or_default(),
        r.cooldown_remaining
            .as_deref()
            .map(|c| format!("; cooldown {c} left"))
            .unwrap_or_default(),
    );
    if let Some(s) = &b.last_switch {
        let _ = writeln!(
            out,
            "last switch: {} -> {} {} ago by {}{}: {}",
            s.from.map_or("none".to_string(), |c| p.color(c)),
            p.color(s.to),
            s.ago,
            s.by,
            if s.ok { "" } else { " (FAILED)" },
            s.reason
        );
    }
    let _ = writeln!(
        out,
        "\nchecks: {} total, {} up, {} late, {} down, {} other (page {}/{})",
        v.summary.total,
        v.summary.up,
        v.summary.late,
        v.summary.down,
        v.summary.other,
        v.paging.page,
        v.paging.pages
    );
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:<6} {:<8} {:<10} {:<12} {:<14} {:<9} {:<8} REASON",
        "CHECK",
        "KIND",
        "COLOR",
        "STATE",
        "FOR",
        "LAST SIGNAL",
        "NEXT DEADLINE",
        "INSTANCES",
        "UP 24H"
    );
    for c in &v.checks {
        let color = match c.color.as_deref() {
            Some("blue") => p.color(Color::Blue),
            Some("green") => p.color(Color::Green),
            _ => "-".into(),
        };
        // Pad before painting: escape codes have no width.
        let pad = |s: &str, w: usize| format!("{s:<w$}");
        let _ = writeln!(
            out,
            "{:<24} {:<10} {}{} {} {:<10} {:<12} {:<14} {:<9} {:<8} {}",
            c.name,
            c.kind,
            color,
            " ".repeat(6usize.saturating_sub(c.color.as_deref().map_or(1, str::len))),
            p.tone(c.tone, &pad(&c.state, 8)),
            c.for_,
            c.last_signal_ago
                .as_deref()
                .map_or("never".into(), |a| format!("{a} ago")),
            c.deadline_in.as_deref().unwrap_or("-"),
            if c.instances_total > 0 {
                format!("{}/{}", c.instances_up, c.instances_total)
            } else {
                "-".into()
            },
            pct(c.uptime[0]),
            c.reason
        );
    }
    if !v.targets.is_empty() {
        let _ = writeln!(out, "\ntargets:");
        for t in &v.targets {
            let _ = writeln!(
                out,
                "  {:<10} {:<13} {} {:>6} (threshold {} ms){}",
                t.observer,
                t.target,
                p.tone(
                    if t.ok { Tone::Ok } else { Tone::Bad },
                    if t.ok { "ok     " } else { "FAILING" }
                ),
                t.latency_ms.map_or("-".into(), |ms| format!("{ms} ms")),
                t.threshold_ms,
                t.error
                    .as_deref()
                    .filter(|_| !t.ok)
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
        }
    }
    if !v.timeline.is_empty() {
        let _ = writeln!(out, "\nrecent events:");
        for e in v.timeline.iter().take(10) {
            let sent: Vec<String> = e
                .deliveries
                .iter()
                .map(|(c, s)| format!("{c}:{s}"))
                .collect();
            let _ = writeln!(
                out,
                "  {} {}{}",
                e.at.format("%m-%d %H:%M:%S"),
                p.tone(e.tone, &e.text),
                if sent.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", sent.join(" "))
                }
            );
        }
    }
    out
}
