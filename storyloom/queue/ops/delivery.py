"""Delivery records: results reach Discord at least once underneath, exactly once as the user sees it.

The protocol the bot follows for every job :func:`list_undelivered` returns:

1. ``intent = begin_delivery(job_id)`` records *before posting* that a delivery is under way, with a nonce
   that stays the same for every later try of the same job. ``None`` means someone already delivered it.
2. If ``intent.resumed`` is true, an earlier try got this far and may have posted before the bot died.
   The bot looks for a message carrying ``intent.nonce`` (it sends the nonce with ``enforce_nonce``, and
   mentions the job ID in the message), and if it finds one it skips to step 4 with that message's ID.
3. Post the results, sending ``intent.nonce`` as the message nonce (Discord drops a duplicate with the
   same nonce sent within a few minutes, which covers a crash right after posting).
4. ``record_delivery(job_id, message_ids)`` marks it delivered. This is idempotent: a second call returns
   False and keeps the first message IDs, so a retry after a crash between 3 and 4 changes nothing.

A crash before 1 leaves no trace (the job is listed again); between 1 and 3, the search finds nothing and
the bot posts; between 3 and 4, the search (or Discord's nonce check) finds the post. So nothing is lost
and nothing is posted twice.

A try that fails instead is recorded one of two ways. ``postpone_delivery`` (a temporary failure: 429, 5xx,
the network) counts it and holds the job back for a delay that doubles with each failure up to a cap; the job
is not listed again before then. ``end_delivery`` ends the delivery without its results: refused (a 4xx that
will not change, such as an archived thread or a missing permission) or given up (too many failures). The
record keeps the outcome, the reason and any notice posted instead, and the delivery is over (``ended_at``).

Ordering: a story's pages are listed only after the story's delivery is over and every earlier page's is
over (or the page ended without a result), so pages arrive in page order even when several workers finish
them out of order. Jobs without a channel (CLI, benchmarks) are never listed. At most ``per_destination``
jobs of one channel or thread are listed at a time, so one destination's backlog or failures never hold up
another's.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence

from storyloom.queue import sql
from storyloom.queue.job import DeliveryIntent, DeliveryOutcome, DeliveryRecord, Job
from storyloom.queue.operation import Row, Steps, one, query, reads, writes
from storyloom.queue.transitions import InvalidTransition, load_job

# Discord accepts nonces of at most 25 characters.
_NONCE_BYTES = 8


def new_nonce(job_id: int) -> str:
    return f"sl{job_id}.{secrets.token_hex(_NONCE_BYTES)}"[:25]


@reads
def list_undelivered(
    limit: int, per_destination: int, now: float, shard_count: int = 0, shards: Sequence[int] = ()
) -> Steps[list[Job]]:
    """Jobs ready to be delivered; with ``shard_count``, only those of guilds on ``shards`` (Discord's rule:
    ``(guild_id >> 22) % shard_count``; direct messages belong to shard 0)."""
    rows = yield from query(
        sql.SELECT_UNDELIVERED,
        {
            "limit": limit,
            "per_destination": per_destination,
            "now": now,
            "shard_count": shard_count,
            "shards": json.dumps(list(shards)),
        },
    )
    return [Job.from_row(row) for row in rows]


@writes
def begin_delivery(job_id: int, now: float) -> Steps[DeliveryIntent | None]:
    job = yield from load_job(job_id)
    if not job.is_finished:
        raise InvalidTransition(f"job {job_id} is {job.status}; only finished jobs are delivered")
    row = yield from one(sql.SELECT_DELIVERY, (job_id,))
    if row is None:
        nonce = new_nonce(job_id)
        yield from query(sql.INSERT_DELIVERY_INTENT, (job_id, nonce, now))
        return DeliveryIntent(job_id, nonce, now, resumed=False)
    if row["ended_at"] is not None:
        return None
    yield from query(sql.RETRY_DELIVERY_INTENT, (job_id,))
    return DeliveryIntent(job_id, row["nonce"], row["started_at"], resumed=True)


@writes
def record_delivery(job_id: int, message_ids: Sequence[int], now: float) -> Steps[bool]:
    """Mark delivered; True if this call did it, False if it already was (the first message IDs are kept)."""
    job = yield from load_job(job_id)
    if not job.is_finished:
        raise InvalidTransition(f"job {job_id} is {job.status}; only finished jobs are delivered")
    before = yield from one(sql.SELECT_DELIVERY, (job_id,))
    if before is not None and before["ended_at"] is not None:
        return False
    ids = json.dumps([int(i) for i in message_ids])
    yield from query(sql.MARK_DELIVERED, {"job_id": job_id, "nonce": new_nonce(job_id), "now": now, "ids": ids})
    return True


@writes
def postpone_delivery(
    job_id: int, reason: str, now: float, *, first_delay: float, max_delay: float, not_before: float
) -> Steps[DeliveryRecord]:
    """A temporary failure: counted, and the job held back for ``first_delay * 2**(failures - 1)`` seconds (at
    most ``max_delay``, at least ``not_before``, as a rate limit may ask)."""
    row = yield from _open_delivery(job_id)
    if row["ended_at"] is None:
        failures = row["failures"] + 1
        delay = max(not_before, min(max_delay, first_delay * 2 ** (failures - 1)))
        params = {"job_id": job_id, "failures": failures, "reason": reason, "next_try_at": now + delay}
        yield from query(sql.POSTPONE_DELIVERY, params)
    return DeliveryRecord.from_row((yield from _open_delivery(job_id)))


@writes
def end_delivery(
    job_id: int, outcome: DeliveryOutcome, reason: str, message_ids: Sequence[int], now: float
) -> Steps[DeliveryRecord]:
    """End a delivery that posted none of its results (``message_ids``: any notice that took their place)."""
    if outcome is DeliveryOutcome.POSTED:
        raise ValueError("a posted delivery is recorded with record_delivery")
    row = yield from _open_delivery(job_id)
    if row["ended_at"] is None:
        ids = json.dumps([int(i) for i in message_ids])
        params = {"job_id": job_id, "outcome": outcome.value, "reason": reason, "now": now, "ids": ids}
        yield from query(sql.END_DELIVERY, params)
    return DeliveryRecord.from_row((yield from _open_delivery(job_id)))


@reads
def delivery_record(job_id: int) -> Steps[DeliveryRecord | None]:
    """Where the delivery of a job stands (None before the bot first tried)."""
    yield from load_job(job_id)
    row = yield from one(sql.SELECT_DELIVERY, (job_id,))
    return None if row is None else DeliveryRecord.from_row(row)


def _open_delivery(job_id: int) -> Steps[Row]:
    row = yield from one(sql.SELECT_DELIVERY, (job_id,))
    if row is None:
        raise InvalidTransition(f"the delivery of job {job_id} was not begun")
    return row


@reads
def delivered_messages(job_id: int) -> Steps[tuple[int, ...] | None]:
    """The message IDs a delivered job produced, or None if it is not delivered (yet)."""
    return (yield from _delivered_messages(job_id))


@reads
def is_delivered(job_id: int) -> Steps[bool]:
    return (yield from _delivered_messages(job_id)) is not None


def _delivered_messages(job_id: int) -> Steps[tuple[int, ...] | None]:
    yield from load_job(job_id)
    row = yield from one(sql.SELECT_DELIVERY, (job_id,))
    if row is None or row["delivered_at"] is None:
        return None  # not yet, or ended without posting
    return tuple(json.loads(row["message_ids"] or "[]"))
