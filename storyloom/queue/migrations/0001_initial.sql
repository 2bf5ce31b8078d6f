-- storyloom job store, schema version 1.
-- Times are Unix seconds (REAL). IDs of Discord objects are plain integers. JSON columns hold text.

PRAGMA application_id = 1398033485;  -- 'STLM': lets the store recognise a file that is not its own

CREATE TABLE jobs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: old buttons must not point at new jobs
    kind             TEXT    NOT NULL,
    params           TEXT    NOT NULL,                   -- JSON, validated at enqueue
    status           TEXT    NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'canceled')),
    user_id          INTEGER NOT NULL,
    guild_id         INTEGER,
    channel_id       INTEGER,
    thread_id        INTEGER,
    message_id       INTEGER,
    parent_id        INTEGER REFERENCES jobs(id) ON DELETE SET NULL,
    page_index       INTEGER,                            -- set on follow-ups; delivery keeps this order
    created_at       REAL    NOT NULL,
    started_at       REAL,
    finished_at      REAL,
    attempts         INTEGER NOT NULL DEFAULT 0,         -- runs that ended with the worker lost
    runs             INTEGER NOT NULL DEFAULT 0,         -- times claimed
    worker_id        TEXT,
    lease_expires_at REAL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    progress_step    INTEGER NOT NULL DEFAULT 0,
    progress_total   INTEGER NOT NULL DEFAULT 0,
    progress_stage   TEXT    NOT NULL DEFAULT '',
    progress_at      REAL,
    preview          BLOB,                               -- latest small JPEG while running
    error_message    TEXT,                               -- safe to show a user
    error_type       TEXT,
    error_traceback  TEXT
);

CREATE INDEX jobs_by_status_user ON jobs (status, user_id, id);
CREATE INDEX jobs_by_lease ON jobs (status, lease_expires_at);
CREATE INDEX jobs_by_parent ON jobs (parent_id, page_index);
CREATE INDEX jobs_by_finish ON jobs (status, finished_at);

CREATE TABLE artifacts (
    id         INTEGER PRIMARY KEY,
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('image', 'grid', 'text', 'file')),
    idx        INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    mime       TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    metadata   TEXT    NOT NULL DEFAULT '{}',
    created_at REAL    NOT NULL,
    UNIQUE (job_id, kind, idx)
);

-- One row per job the bot started to deliver; see storyloom/queue/ops/delivery.py for the protocol.
CREATE TABLE deliveries (
    job_id       INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    nonce        TEXT    NOT NULL,
    started_at   REAL    NOT NULL,
    tries        INTEGER NOT NULL DEFAULT 1,
    delivered_at REAL,
    message_ids  TEXT                                    -- JSON list
);

-- Fairness: the user with the smallest last_served (0 = never) gets the next job.
CREATE TABLE user_turns (
    user_id     INTEGER PRIMARY KEY,
    last_served INTEGER NOT NULL
);

-- Moving average of run time per job kind, for ETAs.
CREATE TABLE durations (
    kind    TEXT    PRIMARY KEY,
    average REAL    NOT NULL,
    samples INTEGER NOT NULL
);

CREATE TABLE workers (
    id         TEXT    PRIMARY KEY,
    host       TEXT    NOT NULL,
    pid        INTEGER NOT NULL,
    device     TEXT    NOT NULL,
    started_at REAL    NOT NULL,
    last_seen  REAL    NOT NULL,
    job_id     INTEGER,
    models     TEXT    NOT NULL DEFAULT '[]',
    stopped_at REAL
);
