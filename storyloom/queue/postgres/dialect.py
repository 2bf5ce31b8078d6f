"""The store's statements as PostgreSQL runs them.

Operations yield the statements of ``storyloom.queue.sql`` (SQLite's dialect, ``?`` and ``:name`` parameters).
Most run unchanged on PostgreSQL once their parameters are rewritten to psycopg's ``%s`` / ``%(name)s``; the few
that need PostgreSQL's own words are replaced here, keyed by the statement itself, so the logic that uses them
stays in one place for both backends. The replacements are where PostgreSQL differs on purpose:

- claims lock the row they take with ``FOR UPDATE SKIP LOCKED``: workers claim concurrently, never the same job,
  and never wait for each other;
- inside a write, a job is read ``FOR UPDATE``, which gives each transition the serial order SQLite's write lock
  gives (a cancel that races a claim waits for it and then sees the running job);
- enqueues take a transaction-scoped advisory lock, so per-user caps and reserved character names hold under
  concurrency;
- user turns come from a sequence; JSON list parameters are read with ``json_array_elements_text``.
"""

from __future__ import annotations

import functools
import re

from storyloom.queue import sql
from storyloom.queue.operation import Mode

# Statements replaced in every transaction mode.
_REPLACED: dict[str, str] = {
    sql.SELECT_NEXT_JOB: sql.SELECT_NEXT_JOB + "FOR UPDATE OF j SKIP LOCKED\n",
    sql.MARK_SERVED: """
INSERT INTO user_turns (user_id, last_served) VALUES (:user_id, nextval('user_turns_order'))
ON CONFLICT (user_id) DO UPDATE SET last_served = excluded.last_served
""",
    # Another worker recovering the same expired lease skips it instead of waiting to find it already recovered.
    sql.SELECT_EXPIRED_LEASES: sql.SELECT_EXPIRED_LEASES + " FOR UPDATE SKIP LOCKED",
    sql.RECORD_DURATION: """
INSERT INTO durations (kind, average, samples) VALUES (:kind, :seconds, 1)
ON CONFLICT (kind) DO UPDATE
SET average = durations.average + (excluded.average - durations.average) / LEAST(durations.samples + 1, :window),
    samples = durations.samples + 1
""",
    sql.MARK_DELIVERED: sql.MARK_DELIVERED.replace(
        "WHERE delivered_at IS NULL", "WHERE deliveries.delivered_at IS NULL"
    ),
    sql.LAST_JOB_ID: "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM jobs_id_seq",
    sql.SERIALIZE_ENQUEUE: "SELECT pg_advisory_xact_lock(:key)",
}

# Statements replaced only inside write transactions (``FOR UPDATE`` is an error in a read-only one).
_REPLACED_IN_WRITES: dict[str, str] = {
    sql.SELECT_JOB: sql.SELECT_JOB + " FOR UPDATE",
}

# SQLite's ``json_each(:list)`` reads a JSON list parameter; PostgreSQL's twin also names its column ``value``.
_JSON_EACH = re.compile(r"\bjson_each\((:\w+)\)")

# ``:name`` (not ``::cast``), ``?``, or a literal ``%``, outside quoted strings.
_TOKENS = re.compile(r"'(?:[^']|'')*'|(?<!:):([A-Za-z_]\w*)|\?|%")


def _placeholder(match: re.Match[str]) -> str:
    text = match.group(0)
    if text.startswith("'"):
        return text.replace("%", "%%")  # psycopg reads every % of the statement, quoted or not
    if match.group(1):
        return f"%({match.group(1)})s"
    return "%s" if text == "?" else "%%"


@functools.lru_cache(maxsize=512)
def translate(statement: str, mode: Mode) -> str:
    """``statement`` as psycopg runs it on PostgreSQL inside a transaction of ``mode``."""
    if mode is Mode.WRITE:
        statement = _REPLACED_IN_WRITES.get(statement, statement)
    statement = _REPLACED.get(statement, statement)
    statement = _JSON_EACH.sub(r"json_array_elements_text(CAST(\1 AS json))", statement)
    return _TOKENS.sub(_placeholder, statement)
