//! When pending notifications may leave, pure.
//!
//! - A notification outside any group (a rollback, a failed switch, a
//!   reminder) leaves as soon as it is due.
//! - Grouped ones (a color's downs, a color's recoveries) leave at once when
//!   their group sent nothing within the last `group_window`: the first
//!   alert never waits. Otherwise they wait until `group_window` after the
//!   group's last message and leave together, as one follow-up that names
//!   every member. So a group sends at most one message per window, and a
//!   mass outage of N colors yields at most N messages per channel per
//!   window (plus one for each ungrouped event).
//! - A notification never leaves before an earlier one about the same check
//!   (a recovery waits for its down's follow-up), so messages about one
//!   check arrive in order.
//! - A retry waits for its backoff (`next_attempt_at`).

use crate::store::PendingRow;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

/// What a channel worker does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send these rows (indexes into the pending list) as one message.
    Send(Vec<usize>),
    /// Nothing is due before this time.
    At(DateTime<Utc>),
    /// Nothing is pending.
    Idle,
}

/// When each pending row may leave.
pub fn ready_times(
    pending: &[PendingRow],
    last_sent: &HashMap<String, DateTime<Utc>>,
    window: Duration,
) -> Vec<DateTime<Utc>> {
    let window = chrono::TimeDelta::from_std(window).unwrap_or_default();
    let mut by_check: HashMap<&str, DateTime<Utc>> = HashMap::new();
    let mut order: Vec<usize> = (0..pending.len()).collect();
    order.sort_by_key(|&i| pending[i].id);
    let mut ready = vec![DateTime::<Utc>::MIN_UTC; pending.len()];
    for i in order {
        let row = &pending[i];
        let mut at = row.next_attempt_at.max(row.created_at);
        if let Some(sent) = row.group_key.as_ref().and_then(|g| last_sent.get(g)) {
            if row.attempts == 0 && row.created_at < *sent + window {
                at = at.max(*sent + window);
            }
        }
        let check = by_check
            .entry(row.notification.check.as_str())
            .or_insert(at);
        at = at.max(*check);
        *check = at;
        ready[i] = at;
    }
    ready
}

/// The next thing to do with `pending` at `now`.
pub fn next(
    pending: &[PendingRow],
    last_sent: &HashMap<String, DateTime<Utc>>,
    window: Duration,
    now: DateTime<Utc>,
) -> Next {
    if pending.is_empty() {
        return Next::Idle;
    }
    let ready = ready_times(pending, last_sent, window);
    let first = (0..pending.len())
        .min_by_key(|&i| (ready[i], pending[i].id))
        .expect("not empty");
    if ready[first] > now {
        return Next::At(ready[first]);
    }
    let mut send = vec![first];
    if let Some(group) = &pending[first].group_key {
        let mut rest: Vec<usize> = (0..pending.len())
            .filter(|&i| i != first && ready[i] <= now)
            .filter(|&i| pending[i].group_key.as_ref() == Some(group))
            .collect();
        rest.sort_by_key(|&i| pending[i].id);
        send.extend(rest);
    }
    Next::Send(send)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bgw_notify::{Kind, Notification};

    fn t(ms: i64) -> DateTime<Utc> {
        "2026-11-26T14:00:00Z".parse::<DateTime<Utc>>().unwrap()
            + chrono::TimeDelta::milliseconds(ms)
    }

    fn row(id: i64, check: &str, group: Option<&str>, created: i64) -> PendingRow {
        PendingRow {
            id,
            group_key: group.map(String::from),
            notification: Notification {
                event_id: id,
                kind: Kind::Down,
                check: check.into(),
                color: None,
                state: "down".into(),
                reason: "x".into(),
                at: t(created),
                down_for: None,
                live: None,
                from: None,
                to: None,
                members: vec![],
                source: "watchdog".into(),
            },
            attempts: 0,
            next_attempt_at: t(created),
            created_at: t(created),
        }
    }

    const WINDOW: Duration = Duration::from_secs(2);

    #[test]
    fn the_first_alert_of_a_group_leaves_at_once_with_what_committed_beside_it() {
        let pending = [
            row(1, "blue", Some("down:blue"), 0),
            row(2, "checker:blue-direct", Some("down:blue"), 0),
        ];
        assert_eq!(
            next(&pending, &HashMap::new(), WINDOW, t(0)),
            Next::Send(vec![0, 1])
        );
    }

    #[test]
    fn what_follows_within_the_window_waits_and_leaves_as_one_follow_up() {
        let sent = HashMap::from([("down:blue".to_string(), t(0))]);
        let pending = [
            row(3, "blue-2", Some("down:blue"), 500),
            row(4, "blue-3", Some("down:blue"), 1500),
        ];
        assert_eq!(next(&pending, &sent, WINDOW, t(1600)), Next::At(t(2000)));
        assert_eq!(
            next(&pending, &sent, WINDOW, t(2000)),
            Next::Send(vec![0, 1])
        );
    }

    #[test]
    fn a_straggler_after_the_window_opens_a_new_group_and_leaves_at_once() {
        let sent = HashMap::from([("down:blue".to_string(), t(0))]);
        let pending = [row(5, "blue-4", Some("down:blue"), 2500)];
        assert_eq!(next(&pending, &sent, WINDOW, t(2500)), Next::Send(vec![0]));
    }

    #[test]
    fn other_groups_and_ungrouped_alerts_are_not_held_by_a_busy_group() {
        let sent = HashMap::from([("down:blue".to_string(), t(0))]);
        let pending = [
            row(6, "blue-5", Some("down:blue"), 100),
            row(7, "green", Some("down:green"), 100),
            row(8, "rollback", None, 100),
        ];
        assert_eq!(next(&pending, &sent, WINDOW, t(100)), Next::Send(vec![1]));
        assert_eq!(
            next(&pending[2..], &sent, WINDOW, t(100)),
            Next::Send(vec![0])
        );
    }

    #[test]
    fn a_recovery_inside_the_window_waits_for_its_down_and_then_leaves() {
        let sent = HashMap::from([("down:blue".to_string(), t(0))]);
        let mut up = row(10, "blue-2", Some("up:blue"), 800);
        up.notification.kind = Kind::Up;
        let pending = [row(9, "blue-2", Some("down:blue"), 500), up];
        assert_eq!(next(&pending, &sent, WINDOW, t(900)), Next::At(t(2000)));
        assert_eq!(next(&pending, &sent, WINDOW, t(2000)), Next::Send(vec![0]));
        // Once the down is out, the recovery (its own group) goes at once.
        let sent = HashMap::from([("down:blue".to_string(), t(2000))]);
        assert_eq!(
            next(&pending[1..], &sent, WINDOW, t(2000)),
            Next::Send(vec![0])
        );
    }

    #[test]
    fn a_retry_waits_for_its_backoff() {
        let mut r = row(11, "blue", Some("down:blue"), 0);
        r.attempts = 2;
        r.next_attempt_at = t(4000);
        assert_eq!(
            next(&[r], &HashMap::new(), WINDOW, t(100)),
            Next::At(t(4000))
        );
    }
}
