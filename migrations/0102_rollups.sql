-- Uptime rollups for the status page: time spent up and down per check and
-- per UTC hour, folded incrementally from state events (never rescanned).
CREATE TABLE rollup_hours (
    check_name TEXT NOT NULL,
    hour INTEGER NOT NULL,          -- ms since the epoch / 3600000
    up_ms INTEGER NOT NULL DEFAULT 0,
    down_ms INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (check_name, hour)
) WITHOUT ROWID;

-- Where each check's open interval starts, and in which health.
CREATE TABLE rollup_cursor (
    check_name TEXT PRIMARY KEY,
    health TEXT NOT NULL,           -- up | down | unknown
    since INTEGER NOT NULL
) WITHOUT ROWID;

-- The last event folded in.
CREATE TABLE rollup_watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    event_id INTEGER NOT NULL
);
