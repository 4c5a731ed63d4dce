-- Blue/green control (owned by watchdog/src/control.rs): every switch of the
-- live color, every deploy, and the automatic rollback's latch.
-- Times are UTC RFC 3339 with milliseconds ("2026-11-26T14:03:07.123Z"),
-- so they sort as text.

CREATE TABLE IF NOT EXISTS toggles (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         TEXT    NOT NULL,
    from_color TEXT    CHECK (from_color IN ('blue', 'green')),
    to_color   TEXT    NOT NULL CHECK (to_color IN ('blue', 'green')),
    automatic  INTEGER NOT NULL CHECK (automatic IN (0, 1)),
    reason     TEXT    NOT NULL,
    ok         INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error      TEXT
);
CREATE INDEX IF NOT EXISTS toggles_ok_at ON toggles (ok, at);

CREATE TABLE IF NOT EXISTS deploys (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT    NOT NULL,
    color  TEXT    NOT NULL CHECK (color IN ('blue', 'green')),
    image  TEXT    NOT NULL,
    ok     INTEGER NOT NULL CHECK (ok IN (0, 1)),
    output TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS deploys_color_at ON deploys (color, at);

-- One row: the state of automatic rollback.
CREATE TABLE IF NOT EXISTS rollback_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    latched           INTEGER NOT NULL DEFAULT 0 CHECK (latched IN (0, 1)),
    latched_at        TEXT,
    latch_reason      TEXT,
    disabled          INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    last_automatic_at TEXT
);
INSERT OR IGNORE INTO rollback_state (id) VALUES (1);
