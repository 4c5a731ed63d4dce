//! What the watchdog makes of a report from the checker or the prober: the
//! per-target states, the seed-style log lines and the alert transitions.
//!
//! Pure: the caller hands in the previous states, the report, the time and
//! the policy (`threshold_ms`, `fail_after`), stores the new states, writes
//! the lines (its log writer adds the `[HH:MM:SS] - ` prefix) and turns each
//! [`Transition`] into an event and a notification.
//!
//! A target alerts once when it has failed `fail_after` rounds in a row (not
//! once per failing round) and once more when it answers well again.

use bgw_wire::{Color, ProbeResult, Report, Target};
use chrono::{DateTime, Utc};

/// What the watchdog knows about one target as seen by one observer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TargetState {
    pub observer: String,
    pub target: Target,
    /// The color that served the last answer (a direct target's own color;
    /// for a proxy target the `X-Bgw-Color` of the last answer, `None` when
    /// nothing answered).
    pub color: Option<Color>,
    /// The last result was ok.
    pub ok: bool,
    pub consecutive_failures: u32,
    pub consecutive_ok: u32,
    /// A down transition was raised and no up transition since.
    pub alerting: bool,
    /// The error of the last failed result (kept while the target recovers,
    /// so an operator sees what went wrong last).
    pub last_error: Option<String>,
    pub last_latency_ms: Option<u64>,
    pub last_at: DateTime<Utc>,
}

/// The result of applying one report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Every state: those of `prev` (updated where the report spoke of them,
    /// in their order) followed by the targets seen for the first time.
    pub states: Vec<TargetState>,
    /// One line per result, in the report's order, without the time prefix.
    pub log_lines: Vec<String>,
    /// Targets that started alerting or recovered with this report.
    pub transitions: Vec<Transition>,
}

/// A target crossed `fail_after` failed rounds in a row, or recovered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub observer: String,
    pub target: Target,
    pub color: Option<Color>,
    /// `true`: failing `fail_after` rounds in a row; `false`: recovered.
    pub down: bool,
    /// Down: `GET /ping returned 502 (3 failed rounds in a row)`.
    /// Up: `answering again: 200 in 3ms`.
    pub reason: String,
}

/// Applies `report` to the states `prev` (all observers; only the report's
/// observer's entries change). `fail_after` of 0 is treated as 1.
pub fn apply_report(
    prev: &[TargetState],
    report: &Report,
    now: DateTime<Utc>,
    threshold_ms: u64,
    fail_after: u32,
) -> Outcome {
    let fail_after = fail_after.max(1);
    let mut states = prev.to_vec();
    let mut log_lines = Vec::with_capacity(report.results.len());
    let mut transitions = Vec::new();
    for result in &report.results {
        log_lines.push(probe_line(result, threshold_ms));
        let index = match states
            .iter()
            .position(|s| s.observer == report.observer && s.target == result.target)
        {
            Some(i) => i,
            None => {
                states.push(TargetState {
                    observer: report.observer.clone(),
                    target: result.target,
                    color: None,
                    ok: true,
                    consecutive_failures: 0,
                    consecutive_ok: 0,
                    alerting: false,
                    last_error: None,
                    last_latency_ms: None,
                    last_at: now,
                });
                states.len() - 1
            }
        };
        let state = &mut states[index];
        state.color = result.color.or(result.target.direct_color());
        state.ok = result.ok;
        state.last_latency_ms = result.latency_ms;
        state.last_at = now;
        if result.ok {
            state.consecutive_ok = state.consecutive_ok.saturating_add(1);
            state.consecutive_failures = 0;
            if state.alerting {
                state.alerting = false;
                transitions.push(Transition {
                    observer: state.observer.clone(),
                    target: state.target,
                    color: state.color,
                    down: false,
                    reason: recovery_reason(result),
                });
            }
        } else {
            let error = failure_reason(result);
            state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            state.consecutive_ok = 0;
            state.last_error = Some(error.clone());
            if !state.alerting && state.consecutive_failures >= fail_after {
                state.alerting = true;
                let rounds = if fail_after == 1 {
                    "1 failed round".to_string()
                } else {
                    format!("{fail_after} failed rounds in a row")
                };
                transitions.push(Transition {
                    observer: state.observer.clone(),
                    target: state.target,
                    color: state.color,
                    down: true,
                    reason: format!("{error} ({rounds})"),
                });
            }
        }
    }
    Outcome {
        states,
        log_lines,
        transitions,
    }
}

/// The seed-style log line of one result, without the time prefix:
///
/// - ok: `[blue-direct - OK] 3ms. Threshold: 2000ms`
/// - answered well but too slowly:
///   `WARNING: live-proxy taking too long to respond! 2350ms. Threshold: 2000ms`
/// - no answer or a bad status: `ALERT: green-direct not responding! connection refused`
/// - answered well but failed for another reason (served by the wrong color):
///   `ALERT: live-proxy failing! served by green, live is blue`
pub fn probe_line(r: &ProbeResult, threshold_ms: u64) -> String {
    let latency = r.latency_ms.unwrap_or(0);
    if r.ok {
        return format!(
            "[{} - OK] {latency}ms. Threshold: {threshold_ms}ms",
            r.target
        );
    }
    let answered_well = r.status.is_some_and(|s| (200..300).contains(&s));
    if answered_well && is_latency_failure(r, threshold_ms) {
        return format!(
            "WARNING: {} taking too long to respond! {latency}ms. Threshold: {threshold_ms}ms",
            r.target
        );
    }
    let error = failure_reason(r);
    if answered_well {
        format!("ALERT: {} failing! {error}", r.target)
    } else {
        format!("ALERT: {} not responding! {error}", r.target)
    }
}

/// Too slow is the only thing wrong: the observer said so (`latency ...`), or
/// it gave no reason and the latency is over the threshold.
fn is_latency_failure(r: &ProbeResult, threshold_ms: u64) -> bool {
    match r.error.as_deref() {
        Some(e) => e.starts_with("latency "),
        None => r.latency_ms.is_some_and(|l| l > threshold_ms),
    }
}

/// The observer's error, or one made from the status when it gave none.
fn failure_reason(r: &ProbeResult) -> String {
    if let Some(e) = r.error.as_deref().filter(|e| !e.trim().is_empty()) {
        return e.to_string();
    }
    match (r.status, r.latency_ms) {
        (Some(s), _) if !(200..300).contains(&s) => format!("returned {s}"),
        (Some(_), Some(l)) => format!("latency {l}ms"),
        (Some(_), None) => "failed".to_string(),
        (None, _) => "no answer".to_string(),
    }
}

fn recovery_reason(r: &ProbeResult) -> String {
    match (r.status, r.latency_ms) {
        (Some(s), Some(l)) => format!("answering again: {s} in {l}ms"),
        (Some(s), None) => format!("answering again: {s}"),
        _ => "answering again".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_790_000_000 + secs, 0).unwrap()
    }

    fn ok(target: Target, latency: u64) -> ProbeResult {
        ProbeResult {
            target,
            color: target.direct_color(),
            url: "http://127.0.0.1:3000/ping".into(),
            ok: true,
            status: Some(200),
            latency_ms: Some(latency),
            error: None,
        }
    }

    fn failed(
        target: Target,
        status: Option<u16>,
        latency: Option<u64>,
        error: &str,
    ) -> ProbeResult {
        ProbeResult {
            target,
            color: target.direct_color(),
            url: "http://127.0.0.1:3000/ping".into(),
            ok: false,
            status,
            latency_ms: latency,
            error: Some(error.into()),
        }
    }

    fn report(observer: &str, results: Vec<ProbeResult>) -> Report {
        Report {
            observer: observer.into(),
            results,
        }
    }

    /// Applies the reports one per second and returns the last outcome and
    /// every transition seen on the way.
    fn run(reports: &[Report], fail_after: u32) -> (Outcome, Vec<Transition>) {
        let mut states = Vec::new();
        let mut all = Vec::new();
        let mut last = None;
        for (i, r) in reports.iter().enumerate() {
            let out = apply_report(&states, r, at(i as i64), 2000, fail_after);
            states = out.states.clone();
            all.extend(out.transitions.clone());
            last = Some(out);
        }
        (last.expect("at least one report"), all)
    }

    #[test]
    fn ok_line_matches_the_seed_script() {
        assert_eq!(
            probe_line(&ok(Target::BlueDirect, 3), 2000),
            "[blue-direct - OK] 3ms. Threshold: 2000ms"
        );
    }

    #[test]
    fn slow_answer_is_a_warning_line_with_latency_and_threshold() {
        let r = failed(
            Target::LiveProxy,
            Some(200),
            Some(2350),
            "latency 2350ms over threshold 2000ms",
        );
        assert_eq!(
            probe_line(&r, 2000),
            "WARNING: live-proxy taking too long to respond! 2350ms. Threshold: 2000ms"
        );
    }

    #[test]
    fn slow_answer_without_an_error_text_is_still_a_warning() {
        let mut r = ok(Target::Public, 2500);
        r.ok = false;
        assert_eq!(
            probe_line(&r, 2000),
            "WARNING: public taking too long to respond! 2500ms. Threshold: 2000ms"
        );
    }

    #[test]
    fn connection_error_is_an_alert_line_with_the_error() {
        let r = failed(Target::GreenDirect, None, None, "connection refused");
        assert_eq!(
            probe_line(&r, 2000),
            "ALERT: green-direct not responding! connection refused"
        );
    }

    #[test]
    fn bad_status_is_an_alert_line_with_the_status() {
        let r = failed(
            Target::LiveProxy,
            Some(502),
            Some(4),
            "GET /ping returned 502",
        );
        assert_eq!(
            probe_line(&r, 2000),
            "ALERT: live-proxy not responding! GET /ping returned 502"
        );
    }

    #[test]
    fn bad_status_without_an_error_text_names_the_status() {
        let mut r = failed(Target::IdleProxy, Some(503), Some(4), "");
        r.error = None;
        assert_eq!(
            probe_line(&r, 2000),
            "ALERT: idle-proxy not responding! returned 503"
        );
    }

    #[test]
    fn wrong_color_is_an_alert_line_that_says_failing() {
        let mut r = failed(
            Target::LiveProxy,
            Some(200),
            Some(3),
            "served by green, live is blue",
        );
        r.color = Some(Color::Green);
        assert_eq!(
            probe_line(&r, 2000),
            "ALERT: live-proxy failing! served by green, live is blue"
        );
    }

    #[test]
    fn one_line_per_result_in_report_order() {
        let r = report(
            "checker",
            vec![
                ok(Target::BlueDirect, 3),
                failed(Target::GreenDirect, None, None, "connection refused"),
                ok(Target::LiveProxy, 5),
                ok(Target::IdleProxy, 6),
            ],
        );
        let out = apply_report(&[], &r, at(0), 2000, 3);
        assert_eq!(
            out.log_lines,
            vec![
                "[blue-direct - OK] 3ms. Threshold: 2000ms",
                "ALERT: green-direct not responding! connection refused",
                "[live-proxy - OK] 5ms. Threshold: 2000ms",
                "[idle-proxy - OK] 6ms. Threshold: 2000ms",
            ]
        );
        assert_eq!(out.states.len(), 4);
        assert!(out.transitions.is_empty());
    }

    #[test]
    fn failing_target_alerts_once_after_fail_after_rounds() {
        let failing = || {
            report(
                "checker",
                vec![failed(
                    Target::GreenDirect,
                    Some(500),
                    Some(2),
                    "GET /ping returned 500",
                )],
            )
        };
        let reports: Vec<Report> = (0..6).map(|_| failing()).collect();
        let mut states = Vec::new();
        let mut per_round = Vec::new();
        for (i, r) in reports.iter().enumerate() {
            let out = apply_report(&states, r, at(i as i64), 2000, 3);
            states = out.states;
            per_round.push(out.transitions.len());
        }
        assert_eq!(per_round, vec![0, 0, 1, 0, 0, 0]);
        let (_, all) = run(&reports, 3);
        assert_eq!(
            all,
            vec![Transition {
                observer: "checker".into(),
                target: Target::GreenDirect,
                color: Some(Color::Green),
                down: true,
                reason: "GET /ping returned 500 (3 failed rounds in a row)".into(),
            }]
        );
        let s = &states[0];
        assert!(s.alerting);
        assert!(!s.ok);
        assert_eq!(s.consecutive_failures, 6);
        assert_eq!(s.consecutive_ok, 0);
        assert_eq!(s.last_error.as_deref(), Some("GET /ping returned 500"));
        assert_eq!(s.last_at, at(5));
    }

    #[test]
    fn recovery_after_an_alert_raises_one_up_transition() {
        let bad = report(
            "checker",
            vec![failed(Target::BlueDirect, None, None, "connection refused")],
        );
        let good = report("checker", vec![ok(Target::BlueDirect, 4)]);
        let reports = vec![bad.clone(), bad, good.clone(), good];
        let (last, all) = run(&reports, 2);
        assert_eq!(all.len(), 2);
        assert!(all[0].down);
        assert!(!all[1].down);
        assert_eq!(all[1].reason, "answering again: 200 in 4ms");
        assert_eq!(all[1].color, Some(Color::Blue));
        let s = &last.states[0];
        assert!(s.ok && !s.alerting);
        assert_eq!(s.consecutive_ok, 2);
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.last_error.as_deref(), Some("connection refused"));
        assert_eq!(s.last_latency_ms, Some(4));
    }

    #[test]
    fn failures_interrupted_by_an_ok_round_do_not_alert() {
        let bad = report(
            "checker",
            vec![failed(
                Target::LiveProxy,
                Some(502),
                Some(1),
                "GET /ping returned 502",
            )],
        );
        let good = report("checker", vec![ok(Target::LiveProxy, 1)]);
        let reports = vec![bad.clone(), bad.clone(), good, bad.clone(), bad];
        let (last, all) = run(&reports, 3);
        assert!(all.is_empty(), "{all:?}");
        assert_eq!(last.states[0].consecutive_failures, 2);
        assert!(!last.states[0].alerting);
    }

    #[test]
    fn recovery_without_an_alert_raises_nothing() {
        let bad = report(
            "checker",
            vec![failed(Target::IdleProxy, None, None, "timed out after 30s")],
        );
        let good = report("checker", vec![ok(Target::IdleProxy, 1)]);
        let (_, all) = run(&[bad, good], 3);
        assert!(all.is_empty());
    }

    #[test]
    fn fail_after_one_alerts_on_the_first_failure() {
        let bad = report(
            "prober",
            vec![failed(Target::Watchdog, None, None, "connection refused")],
        );
        let (_, all) = run(&[bad], 1);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].reason, "connection refused (1 failed round)");
        assert_eq!(all[0].color, None);
    }

    #[test]
    fn fail_after_zero_behaves_like_one() {
        let bad = report(
            "prober",
            vec![failed(Target::Public, None, None, "connection refused")],
        );
        let (_, all) = run(&[bad], 0);
        assert_eq!(all.len(), 1);
    }

    #[test]
    fn observers_are_counted_separately() {
        let bad = |observer: &str| {
            report(
                observer,
                vec![failed(
                    Target::LiveProxy,
                    Some(502),
                    Some(1),
                    "GET /ping returned 502",
                )],
            )
        };
        // checker, prober, checker: neither has failed twice in a row on its own...
        let (last, all) = run(&[bad("checker"), bad("prober"), bad("checker")], 3);
        assert!(all.is_empty());
        assert_eq!(last.states.len(), 2);
        let checker = last
            .states
            .iter()
            .find(|s| s.observer == "checker")
            .unwrap();
        let prober = last.states.iter().find(|s| s.observer == "prober").unwrap();
        assert_eq!(checker.consecutive_failures, 2);
        assert_eq!(prober.consecutive_failures, 1);
        // ...and a third checker failure alerts for the checker only.
        let (_, all) = run(
            &[
                bad("checker"),
                bad("prober"),
                bad("checker"),
                bad("checker"),
            ],
            3,
        );
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].observer, "checker");
    }

    #[test]
    fn targets_missing_from_a_report_keep_their_state() {
        let first = report(
            "checker",
            vec![ok(Target::BlueDirect, 3), ok(Target::GreenDirect, 4)],
        );
        let second = report(
            "checker",
            vec![failed(Target::BlueDirect, None, None, "connection refused")],
        );
        let out1 = apply_report(&[], &first, at(0), 2000, 3);
        let out2 = apply_report(&out1.states, &second, at(1), 2000, 3);
        assert_eq!(out2.states.len(), 2);
        assert_eq!(out2.states[1], out1.states[1], "green untouched");
        assert_eq!(out2.states[0].last_at, at(1));
        assert!(!out2.states[0].ok);
    }

    #[test]
    fn prev_order_is_kept_and_new_targets_are_appended() {
        let prev = apply_report(
            &[],
            &report("prober", vec![ok(Target::Public, 1)]),
            at(0),
            2000,
            3,
        )
        .states;
        let out = apply_report(
            &prev,
            &report("checker", vec![ok(Target::BlueDirect, 1)]),
            at(1),
            2000,
            3,
        );
        let order: Vec<_> = out
            .states
            .iter()
            .map(|s| (s.observer.as_str(), s.target))
            .collect();
        assert_eq!(
            order,
            vec![("prober", Target::Public), ("checker", Target::BlueDirect)]
        );
    }

    #[test]
    fn proxy_state_takes_the_color_that_served_it() {
        let mut r = ok(Target::LiveProxy, 2);
        r.color = Some(Color::Green);
        let out = apply_report(&[], &report("checker", vec![r]), at(0), 2000, 3);
        assert_eq!(out.states[0].color, Some(Color::Green));
        // Nothing answered: no color is claimed.
        let r = failed(Target::LiveProxy, None, None, "connection refused");
        let mut r = r;
        r.color = None;
        let out = apply_report(&out.states, &report("checker", vec![r]), at(1), 2000, 3);
        assert_eq!(out.states[0].color, None);
    }

    #[test]
    fn a_direct_target_without_a_color_still_gets_its_own() {
        let mut r = ok(Target::GreenDirect, 2);
        r.color = None;
        let out = apply_report(&[], &report("checker", vec![r]), at(0), 2000, 3);
        assert_eq!(out.states[0].color, Some(Color::Green));
    }

    #[test]
    fn slow_rounds_count_as_failures() {
        let slow = report(
            "checker",
            vec![failed(
                Target::LiveProxy,
                Some(200),
                Some(2350),
                "latency 2350ms over threshold 2000ms",
            )],
        );
        let (last, all) = run(&[slow.clone(), slow.clone(), slow], 3);
        assert_eq!(all.len(), 1);
        assert_eq!(
            all[0].reason,
            "latency 2350ms over threshold 2000ms (3 failed rounds in a row)"
        );
        assert_eq!(last.states[0].last_latency_ms, Some(2350));
    }

    #[test]
    fn alert_again_after_a_recovery_and_new_failures() {
        let bad = report(
            "checker",
            vec![failed(Target::BlueDirect, None, None, "connection refused")],
        );
        let good = report("checker", vec![ok(Target::BlueDirect, 1)]);
        let (_, all) = run(&[bad.clone(), bad.clone(), good, bad.clone(), bad], 2);
        let downs: Vec<bool> = all.iter().map(|t| t.down).collect();
        assert_eq!(downs, vec![true, false, true]);
    }

    #[test]
    fn state_round_trips_through_json() {
        let out = apply_report(
            &[],
            &report("checker", vec![ok(Target::IdleProxy, 9)]),
            at(0),
            2000,
            3,
        );
        let json = serde_json::to_string(&out.states).unwrap();
        let back: Vec<TargetState> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, out.states);
        assert!(json.contains("\"idle-proxy\""));
    }
}
