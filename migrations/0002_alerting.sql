-- Alerting: the durable outbox of notifications (written in the same
-- transaction as the events that cause them), operator silences, and the
-- per-target states of the checker's and prober's probes.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER,             -- the event that caused it
    channel         TEXT    NOT NULL,    -- slack | email | webhook
    group_key       TEXT,                -- same key, same channel, close in time: one message
    payload         TEXT    NOT NULL,    -- JSON of bgw_notify::Notification
    state           TEXT    NOT NULL,    -- pending | delivered | failed | merged | cancelled
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    delivered_at    INTEGER,
    merged_into     INTEGER              -- the notification that carried it
);
CREATE INDEX notifications_due ON notifications (channel, state, next_attempt_at);
CREATE INDEX notifications_by_event ON notifications (event_id);

CREATE TABLE silences (
    id         INTEGER PRIMARY KEY,
    target     TEXT    NOT NULL,         -- a check name or a color
    until      INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX silences_until ON silences (until);

CREATE TABLE targets (
    observer TEXT NOT NULL,
    target   TEXT NOT NULL,
    state    TEXT NOT NULL,              -- JSON of reports::TargetState
    PRIMARY KEY (observer, target)
) WITHOUT ROWID;
