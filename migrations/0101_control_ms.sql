-- One timestamp encoding: the control tables move from RFC 3339 TEXT to
-- milliseconds since the Unix epoch (UTC), like every other table. Existing
-- rows are converted ("2026-11-26T14:03:07.123Z" -> 1795615387123).

CREATE TABLE toggles_ms (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    from_color TEXT    CHECK (from_color IN ('blue', 'green')),
    to_color   TEXT    NOT NULL CHECK (to_color IN ('blue', 'green')),
    automatic  INTEGER NOT NULL CHECK (automatic IN (0, 1)),
    reason     TEXT    NOT NULL,
    ok         INTEGER NOT NULL CHECK (ok IN (0, 1)),
    error      TEXT
);
INSERT INTO toggles_ms (id, at, from_color, to_color, automatic, reason, ok, error)
    SELECT id, CAST(ROUND((julianday(at) - 2440587.5) * 86400000.0) AS INTEGER),
           from_color, to_color, automatic, reason, ok, error FROM toggles;
DROP TABLE toggles;
ALTER TABLE toggles_ms RENAME TO toggles;
CREATE INDEX toggles_ok_at ON toggles (ok, at);

CREATE TABLE deploys_ms (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    color  TEXT    NOT NULL CHECK (color IN ('blue', 'green')),
    image  TEXT    NOT NULL,
    ok     INTEGER NOT NULL CHECK (ok IN (0, 1)),
    output TEXT    NOT NULL
);
INSERT INTO deploys_ms (id, at, color, image, ok, output)
    SELECT id, CAST(ROUND((julianday(at) - 2440587.5) * 86400000.0) AS INTEGER),
           color, image, ok, output FROM deploys;
DROP TABLE deploys;
ALTER TABLE deploys_ms RENAME TO deploys;
CREATE INDEX deploys_color_at ON deploys (color, at);

CREATE TABLE rollback_state_ms (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    latched           INTEGER NOT NULL DEFAULT 0 CHECK (latched IN (0, 1)),
    latched_at        INTEGER,
    latch_reason      TEXT,
    disabled          INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    last_automatic_at INTEGER
);
INSERT INTO rollback_state_ms (id, latched, latched_at, latch_reason, disabled, last_automatic_at)
    SELECT id, latched,
           CAST(ROUND((julianday(latched_at) - 2440587.5) * 86400000.0) AS INTEGER),
           latch_reason, disabled,
           CAST(ROUND((julianday(last_automatic_at) - 2440587.5) * 86400000.0) AS INTEGER)
    FROM rollback_state;
DROP TABLE rollback_state;
ALTER TABLE rollback_state_ms RENAME TO rollback_state;
INSERT OR IGNORE INTO rollback_state (id) VALUES (1);

-- The events the alerting memory is rebuilt from at start (flips, flapping
-- notices, reminders) are found by kind and time.
CREATE INDEX events_by_kind_at ON events (kind, at);
