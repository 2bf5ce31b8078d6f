"""Every SQL statement the store runs, in one place (the schema itself lives in ``migrations/``)."""

from __future__ import annotations

JOB_COLUMNS = (
    "id, kind, params, status, user_id, guild_id, channel_id, thread_id, message_id, parent_id, page_index, "
    "created_at, started_at, finished_at, attempts, runs, worker_id, lease_expires_at, cancel_requested, "
    "progress_step, progress_total, progress_stage, progress_at, preview IS NOT NULL AS has_preview, "
    "error_message, error_type, error_traceback"
)


def _prefixed(alias: str) -> str:
    return ", ".join(
        f"{alias}.preview IS NOT NULL AS has_preview" if c.startswith("preview") else f"{alias}.{c}"
        for c in (part.strip() for part in JOB_COLUMNS.split(","))
    )


FINISHED = "('succeeded', 'failed', 'canceled')"

# --- connection set-up and schema --------------------------------------------------------------------

USER_VERSION = "PRAGMA user_version"
APPLICATION_ID = "PRAGMA application_id"
TABLE_COUNT = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
JOURNAL_WAL = "PRAGMA journal_mode = WAL"
SYNCHRONOUS_NORMAL = "PRAGMA synchronous = NORMAL"  # with WAL: durable across process crashes, cheap commits
FOREIGN_KEYS_ON = "PRAGMA foreign_keys = ON"
DATA_VERSION = "PRAGMA data_version"


def set_user_version(version: int) -> str:
    return f"PRAGMA user_version = {int(version)}"


def set_busy_timeout(milliseconds: int) -> str:
    return f"PRAGMA busy_timeout = {int(milliseconds)}"


# --- jobs --------------------------------------------------------------------------------------------

SELECT_JOB = f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?"

INSERT_JOB = f"""
INSERT INTO jobs (kind, params, user_id, guild_id, channel_id, thread_id, message_id, parent_id, page_index, created_at)
VALUES (:kind, :params, :user_id, :guild_id, :channel_id, :thread_id, :message_id, :parent_id, :page_index, :now)
RETURNING {JOB_COLUMNS}
"""

# Enqueues run one at a time, so caps and reserved character names hold: SQLite's write lock already does
# that (this is a no-op there); PostgreSQL takes a transaction-scoped advisory lock (see postgres/dialect.py).
SERIALIZE_ENQUEUE = "SELECT :key"
ENQUEUE_LOCK_KEY = 1398033486

# Caps count what users asked for; a story's pages are the system's follow-ups and never count.
COUNT_WAITING_OF_USER = "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND user_id = ? AND page_index IS NULL"
COUNT_WAITING = "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND page_index IS NULL"

UPDATABLE_COLUMNS = frozenset(
    {
        "started_at", "finished_at", "attempts", "runs", "worker_id", "lease_expires_at", "cancel_requested",
        "progress_step", "progress_total", "progress_stage", "progress_at", "preview",
        "error_message", "error_type", "error_traceback",
    }
)  # fmt: skip


def update_job_status(columns: tuple[str, ...]) -> str:
    """The one UPDATE that changes a job's status; guarded by the status it was read with."""
    unknown = set(columns) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"not an updatable job column: {sorted(unknown)}")
    assignments = "".join(f", {column} = :{column}" for column in columns)
    return (
        f"UPDATE jobs SET status = :status{assignments} WHERE id = :id AND status = :from_status "
        f"RETURNING {JOB_COLUMNS}"
    )


LIST_JOBS = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE status IN (SELECT value FROM json_each(:statuses)) AND (:user_id IS NULL OR user_id = :user_id)
ORDER BY id DESC LIMIT :limit
"""

SELECT_CHILDREN = f"SELECT {JOB_COLUMNS} FROM jobs WHERE parent_id = ? ORDER BY page_index, id"
SELECT_UNFINISHED_FOLLOWUPS = f"""
SELECT {JOB_COLUMNS} FROM jobs
WHERE parent_id = ? AND page_index IS NOT NULL AND status IN ('queued', 'running') ORDER BY page_index
"""

SET_DESTINATION = f"""
UPDATE jobs SET channel_id = COALESCE(:channel_id, channel_id), thread_id = COALESCE(:thread_id, thread_id),
                message_id = COALESCE(:message_id, message_id)
WHERE id = :id RETURNING {JOB_COLUMNS}
"""

REQUEST_CANCEL = "UPDATE jobs SET cancel_requested = 1 WHERE id = ? AND status = 'running'"

# A character trained by a queued or running job will be seen where ``guild_id`` looks (the same guild, or either
# side registered from the command line, which every guild sees); names are compared in Python (``name_key``).
SELECT_ACTIVE_TRAININGS_IN_SCOPE = """
SELECT id, params FROM jobs
WHERE kind = 'train_subject' AND status IN ('queued', 'running')
  AND (:guild_id IS NULL OR guild_id IS NULL OR guild_id = :guild_id)
ORDER BY id
"""
SELECT_TRAININGS = "SELECT id, status, params FROM jobs WHERE kind = 'train_subject' ORDER BY id"
LAST_JOB_ID = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'jobs'), 0)"

# At most :limit jobs per transaction, oldest first: a purge never holds the write lock for long.
PURGE_FINISHED = f"""
DELETE FROM jobs WHERE id IN (
    SELECT id FROM jobs WHERE status IN {FINISHED} AND finished_at < :before ORDER BY finished_at, id LIMIT :limit
) RETURNING id
"""
PURGE_STOPPED_WORKERS = "DELETE FROM workers WHERE stopped_at IS NOT NULL AND stopped_at < ?"
COUNT_RUNNING = "SELECT COUNT(*) FROM jobs WHERE status = 'running'"
VACUUM = "VACUUM"

# --- storage per user --------------------------------------------------------------------------------

# What a job stores: its results and the files given with its request.
_STORED_BYTES = """
(SELECT job_id, LENGTH(data) AS bytes FROM artifacts UNION ALL SELECT job_id, LENGTH(data) AS bytes FROM job_inputs)
"""
SELECT_USERS_OVER_STORAGE = f"""
SELECT j.user_id, SUM(s.bytes) AS bytes FROM jobs j JOIN {_STORED_BYTES} s ON s.job_id = j.id
WHERE j.status IN {FINISHED}
GROUP BY j.user_id HAVING SUM(s.bytes) > :limit ORDER BY j.user_id
"""
# A user's finished jobs that may go to make room, oldest first: their delivery is over (or they were never
# meant to be posted), and no waiting or running job works on them.
SELECT_REMOVABLE_RESULTS = f"""
SELECT j.id, COALESCE(SUM(s.bytes), 0) AS bytes FROM jobs j LEFT JOIN {_STORED_BYTES} s ON s.job_id = j.id
WHERE j.user_id = :user_id AND j.status IN {FINISHED}
  AND (j.channel_id IS NULL OR EXISTS (SELECT 1 FROM deliveries d WHERE d.job_id = j.id AND d.ended_at IS NOT NULL))
  AND NOT EXISTS (SELECT 1 FROM jobs c WHERE c.parent_id = j.id AND c.status IN ('queued', 'running'))
GROUP BY j.id, j.finished_at ORDER BY j.finished_at, j.id LIMIT :limit
"""
DELETE_FINISHED_JOB = f"DELETE FROM jobs WHERE id = ? AND status IN {FINISHED} RETURNING id"

# --- claiming, leases, progress ----------------------------------------------------------------------

# Round-robin across users, FIFO within a user: the user served least recently (never = 0) goes first,
# and among them the oldest job. fairness.serving_order() predicts exactly this order for positions.
SELECT_NEXT_JOB = f"""
SELECT {_prefixed("j")} FROM jobs j LEFT JOIN user_turns t ON t.user_id = j.user_id
WHERE j.status = 'queued' AND j.kind IN (SELECT value FROM json_each(:kinds))
ORDER BY COALESCE(t.last_served, 0), j.id
LIMIT 1
"""

HAS_WORK = """
SELECT EXISTS (SELECT 1 FROM jobs WHERE status = 'queued' AND kind IN (SELECT value FROM json_each(:kinds)))
    OR EXISTS (SELECT 1 FROM jobs WHERE status = 'running' AND lease_expires_at < :now)
"""

MARK_SERVED = """
INSERT INTO user_turns (user_id, last_served) VALUES (:user_id, (SELECT COALESCE(MAX(last_served), 0) + 1 FROM user_turns))
ON CONFLICT (user_id) DO UPDATE SET last_served = excluded.last_served
"""

SELECT_EXPIRED_LEASES = f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'running' AND lease_expires_at < ? ORDER BY id"
SELECT_RUNNING_OF_WORKER = f"SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'running' AND worker_id = ? ORDER BY id"
SELECT_RUNNING_ON_HOST = f"""
SELECT {JOB_COLUMNS} FROM jobs WHERE status = 'running' AND substr(worker_id, 1, length(:prefix)) = :prefix ORDER BY id
"""

RENEW_LEASE = """
UPDATE jobs SET lease_expires_at = :expires WHERE id = :id AND status = 'running' AND worker_id = :worker_id
RETURNING cancel_requested
"""

REPORT_PROGRESS = """
UPDATE jobs SET progress_step = :step, progress_total = :total, progress_stage = :stage, progress_at = :now,
                preview = COALESCE(:preview, preview)
WHERE id = :id AND status = 'running' AND worker_id = :worker_id
RETURNING cancel_requested
"""

SELECT_CANCEL_STATE = "SELECT status, worker_id, cancel_requested FROM jobs WHERE id = ?"
SELECT_PREVIEW = "SELECT preview FROM jobs WHERE id = ?"

# --- artifacts ---------------------------------------------------------------------------------------

INSERT_ARTIFACT = """
INSERT INTO artifacts (job_id, kind, idx, name, mime, data, metadata, created_at)
VALUES (:job_id, :kind, :idx, :name, :mime, :data, :metadata, :now)
"""
SELECT_ARTIFACTS = "SELECT * FROM artifacts WHERE job_id = ? ORDER BY id"
SELECT_ARTIFACT = "SELECT * FROM artifacts WHERE job_id = ? AND kind = ? AND idx = ?"
HAS_ARTIFACT = "SELECT EXISTS (SELECT 1 FROM artifacts WHERE job_id = ? AND kind = ? AND idx = ?)"

# --- inputs (files given with a request) and deleting a result --------------------------------------

INSERT_INPUT = "INSERT INTO job_inputs (job_id, idx, name, mime, data) VALUES (:job_id, :idx, :name, :mime, :data)"
COPY_INPUTS = """
INSERT INTO job_inputs (job_id, idx, name, mime, data)
SELECT :to_job, idx, name, mime, data FROM job_inputs WHERE job_id = :from_job
"""
SELECT_INPUTS = "SELECT idx, name, mime, data FROM job_inputs WHERE job_id = ? ORDER BY idx"
DELETE_ARTIFACTS = "DELETE FROM artifacts WHERE job_id = ? RETURNING id"
DELETE_INPUTS = "DELETE FROM job_inputs WHERE job_id = ? RETURNING idx"

# --- durations and positions -------------------------------------------------------------------------

# Running mean for the first `window` samples, then an exponential moving average with weight 1/window.
RECORD_DURATION = """
INSERT INTO durations (kind, average, samples) VALUES (:kind, :seconds, 1)
ON CONFLICT (kind) DO UPDATE SET average = average + (excluded.average - average) / MIN(samples + 1, :window),
                                 samples = samples + 1
"""
SELECT_DURATIONS = "SELECT kind, average FROM durations"

SELECT_WAITING_FOR_ORDER = """
SELECT j.id, j.user_id, j.kind, COALESCE(t.last_served, 0) AS last_served
FROM jobs j LEFT JOIN user_turns t ON t.user_id = j.user_id
WHERE j.status = 'queued' ORDER BY j.id
"""
SELECT_RUNNING_FOR_ETA = "SELECT id, kind, started_at FROM jobs WHERE status = 'running'"
COUNT_LIVE_WORKERS = "SELECT COUNT(*) FROM workers WHERE stopped_at IS NULL AND last_seen >= ?"

# --- workers -----------------------------------------------------------------------------------------

UPSERT_WORKER = """
INSERT INTO workers (id, host, pid, device, started_at, last_seen, job_id, models)
VALUES (:id, :host, :pid, :device, :now, :now, NULL, '[]')
ON CONFLICT (id) DO UPDATE SET last_seen = :now, stopped_at = NULL
"""
TOUCH_WORKER = "UPDATE workers SET last_seen = :now, job_id = :job_id, models = :models WHERE id = :id"
WORKER_TOOK_JOB = "UPDATE workers SET last_seen = :now, job_id = :job_id WHERE id = :id"
STOP_WORKER = "UPDATE workers SET stopped_at = :now, job_id = NULL WHERE id = :id AND stopped_at IS NULL"
SELECT_WORKERS = "SELECT * FROM workers WHERE stopped_at IS NULL OR stopped_at >= ? ORDER BY started_at"

# --- delivery ----------------------------------------------------------------------------------------

SELECT_DELIVERY = "SELECT * FROM deliveries WHERE job_id = ?"
INSERT_DELIVERY_INTENT = "INSERT INTO deliveries (job_id, nonce, started_at) VALUES (?, ?, ?)"
RETRY_DELIVERY_INTENT = "UPDATE deliveries SET tries = tries + 1 WHERE job_id = ?"
MARK_DELIVERED = """
INSERT INTO deliveries (job_id, nonce, started_at, delivered_at, message_ids, outcome, ended_at)
VALUES (:job_id, :nonce, :now, :now, :ids, 'posted', :now)
ON CONFLICT (job_id) DO UPDATE SET delivered_at = :now, message_ids = :ids, outcome = 'posted', ended_at = :now,
                                   next_try_at = NULL
WHERE deliveries.ended_at IS NULL
"""
# A temporary failure: counted, explained, and held back until :next_try_at.
POSTPONE_DELIVERY = """
UPDATE deliveries SET failures = :failures, reason = :reason, next_try_at = :next_try_at
WHERE job_id = :job_id AND ended_at IS NULL
"""
# The end of a delivery that posted nothing: refused for good, or given up after too many failures.
END_DELIVERY = """
UPDATE deliveries SET outcome = :outcome, reason = :reason, ended_at = :now, next_try_at = NULL, message_ids = :ids
WHERE job_id = :job_id AND ended_at IS NULL
"""

# Finished jobs with a destination whose delivery is not over (the short `undelivered` table, kept by triggers)
# and not held back by a failure's back-off. A follow-up page waits until its story's delivery is over and every
# earlier page's is over (or the page ended without a result), so pages reach users in order. At most :per_destination jobs of one channel or thread are
# listed, so a destination with a long backlog (or one that keeps failing) never crowds out the others.
SELECT_UNDELIVERED = f"""
SELECT * FROM (
    SELECT {_prefixed("j")},
           COALESCE(p.finished_at, j.finished_at) AS sort_finished, COALESCE(p.id, j.id) AS sort_story,
           COALESCE(j.page_index, -1) AS sort_page,
           ROW_NUMBER() OVER (
               PARTITION BY COALESCE(j.thread_id, j.channel_id)
               ORDER BY COALESCE(p.finished_at, j.finished_at), COALESCE(p.id, j.id), COALESCE(j.page_index, -1), j.id
           ) AS place_in_destination
    FROM undelivered u
    CROSS JOIN jobs j  -- SQLite keeps this order (the short table first); PostgreSQL plans it as a plain join
    LEFT JOIN deliveries d ON d.job_id = j.id
    LEFT JOIN jobs p ON p.id = j.parent_id AND j.page_index IS NOT NULL
    WHERE j.id = u.job_id
      AND j.status IN {FINISHED}
      AND j.channel_id IS NOT NULL
      AND d.ended_at IS NULL
      AND (d.next_try_at IS NULL OR d.next_try_at <= :now)
      AND (:shard_count = 0 OR (CASE WHEN j.guild_id IS NULL THEN 0 ELSE (j.guild_id >> 22) % :shard_count END)
           IN (SELECT CAST(value AS INTEGER) FROM json_each(:shards)))
      AND (j.page_index IS NULL OR j.parent_id IS NULL OR (
            EXISTS (SELECT 1 FROM deliveries pd WHERE pd.job_id = j.parent_id AND pd.ended_at IS NOT NULL)
            AND NOT EXISTS (
                SELECT 1 FROM jobs s LEFT JOIN deliveries sd ON sd.job_id = s.id
                WHERE s.parent_id = j.parent_id AND s.page_index < j.page_index
                  AND sd.ended_at IS NULL AND s.status NOT IN ('failed', 'canceled'))))
) ready
WHERE place_in_destination <= :per_destination
ORDER BY sort_finished, sort_story, sort_page, id
LIMIT :limit
"""

# --- user settings -----------------------------------------------------------------------------------

SELECT_USER_SETTINGS = "SELECT settings FROM user_settings WHERE user_id = ?"
UPSERT_USER_SETTINGS = """
INSERT INTO user_settings (user_id, settings, updated_at) VALUES (:user_id, :settings, :now)
ON CONFLICT (user_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at
"""
DELETE_USER_SETTINGS = "DELETE FROM user_settings WHERE user_id = ?"

# --- characters --------------------------------------------------------------------------------------

CHARACTER_COLUMNS = (
    "id, name, identifier, class_name, description, lora_path, lora_digest, preview, trained_by, guild_id, job_id, "
    "metadata, created_at, reference_digest, reference_weight"
)

INSERT_CHARACTER = f"""
INSERT INTO characters (name, name_key, identifier, class_name, description, lora_path, lora_digest, preview, trained_by,
                        guild_id, job_id, metadata, created_at, reference_digest, reference_weight)
VALUES (:name, :name_key, :identifier, :class_name, :description, :lora_path, :lora_digest, :preview, :trained_by,
        :guild_id, :job_id, :metadata, :now, :reference_digest, :reference_weight)
RETURNING {CHARACTER_COLUMNS}
"""

# What a guild sees: its own characters and the command line's (NULL guild); its own win a name clash.
SELECT_VISIBLE_CHARACTER = f"""
SELECT {CHARACTER_COLUMNS} FROM characters
WHERE name_key = :name_key AND (guild_id IS NULL OR guild_id = :guild_id)
ORDER BY guild_id IS NULL LIMIT 1
"""

LIST_CHARACTERS = f"""
SELECT {CHARACTER_COLUMNS} FROM characters
WHERE :all_guilds OR guild_id IS NULL OR guild_id = :guild_id
ORDER BY name_key, guild_id IS NULL, guild_id
"""

DELETE_CHARACTER = f"""
DELETE FROM characters WHERE name_key = :name_key AND COALESCE(guild_id, 0) = COALESCE(:guild_id, 0)
RETURNING {CHARACTER_COLUMNS}
"""

# A character of exactly this scope gets a (new) reference picture; its preview only when one is given.
SET_CHARACTER_REFERENCE = f"""
UPDATE characters SET reference_digest = :reference_digest, reference_weight = :reference_weight,
                      preview = COALESCE(:preview, preview)
WHERE name_key = :name_key AND COALESCE(guild_id, 0) = COALESCE(:guild_id, 0)
RETURNING {CHARACTER_COLUMNS}
"""

# --- blobs: files every host may need, by SHA-256 ----------------------------------------------------------

INSERT_BLOB = """
INSERT INTO blobs (digest, size, data, created_at) VALUES (:digest, :size, :data, :now)
ON CONFLICT (digest) DO NOTHING
"""
SELECT_BLOB = "SELECT data FROM blobs WHERE digest = ?"
HAS_BLOB = "SELECT EXISTS (SELECT 1 FROM blobs WHERE digest = ?)"
# Old blobs nothing refers to any more: not a character's LoRA or reference picture, not the photos of a waiting or
# running training.
# A few at a time (``:limit``): a blob may be a large file, and heartbeats must get the write lock in between.
PURGE_UNREFERENCED_BLOBS = """
DELETE FROM blobs WHERE digest IN (
    SELECT b.digest FROM blobs b WHERE b.created_at < :before
      AND NOT EXISTS (SELECT 1 FROM characters c WHERE c.lora_digest = b.digest OR c.reference_digest = b.digest)
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.kind = 'train_subject' AND j.status IN ('queued', 'running')
                      AND j.params LIKE '%' || b.digest || '%')
    LIMIT :limit)
RETURNING digest
"""

# --- stories as edited ----------------------------------------------------------------------------------

SELECT_PAGE_PICTURES = "SELECT page, job_id, chosen_at FROM page_pictures WHERE story_id = ? ORDER BY page"
UPSERT_PAGE_PICTURE = """
INSERT INTO page_pictures (story_id, page, job_id, chosen_at) VALUES (:story_id, :page, :job_id, :now)
ON CONFLICT (story_id, page) DO UPDATE SET job_id = excluded.job_id, chosen_at = excluded.chosen_at
"""
SELECT_STORY_TITLE = "SELECT title, edited_at FROM story_titles WHERE story_id = ?"
UPSERT_STORY_TITLE = """
INSERT INTO story_titles (story_id, title, edited_at) VALUES (:story_id, :title, :now)
ON CONFLICT (story_id) DO UPDATE SET title = excluded.title, edited_at = excluded.edited_at
"""
