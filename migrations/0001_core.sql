-- The watchdog's core: checks with their stored runtime (state, deadlines,
-- instances), every event, and a bounded ring of recent pings per check.
-- Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE checks (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    kind          TEXT    NOT NULL,
    fingerprint   TEXT    NOT NULL,
    color         TEXT,
    uuid          TEXT,
    state         TEXT    NOT NULL,
    runtime       TEXT    NOT NULL,  -- JSON of state::Runtime
    next_deadline INTEGER,           -- ms; NULL when nothing is due
    ping_count    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    retired_at    INTEGER            -- removed from the config; history kept
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,    -- when it happened (a deadline, not when noticed)
    noticed_at  INTEGER NOT NULL,
    check_name  TEXT,
    kind        TEXT    NOT NULL,    -- state | instance | config | target | toggle | rollback | ...
    from_state  TEXT,
    to_state    TEXT,
    instance    TEXT,
    color       TEXT,
    reason      TEXT    NOT NULL,
    down_for_ms INTEGER,
    silenced    TEXT,                -- the silence that suppressed its alert
    data        TEXT                 -- JSON with anything else
);
CREATE INDEX events_by_check ON events (check_name, id);

CREATE TABLE pings (
    check_id INTEGER NOT NULL,
    slot     INTEGER NOT NULL,       -- ping_count % ping_history: a ring
    at       INTEGER NOT NULL,
    kind     TEXT    NOT NULL,       -- heartbeat | success | fail | start | log | exit | report
    instance TEXT,
    detail   TEXT,
    PRIMARY KEY (check_id, slot)
) WITHOUT ROWID;
