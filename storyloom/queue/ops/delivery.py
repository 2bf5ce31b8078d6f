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

Ordering: a story's pages are listed only after the story itself was delivered and every earlier page was
delivered (or ended without a result), so pages arrive in page order even when several workers finish
them out of order. Jobs without a channel (CLI, benchmarks) are never listed.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence

from storyloom.queue import sql
from storyloom.queue.job import DeliveryIntent, Job
from storyloom.queue.operation import Steps, one, query, reads, writes
from storyloom.queue.transitions import InvalidTransition, load_job

# Discord accepts nonces of at most 25 characters.
_NONCE_BYTES = 8


def new_nonce(job_id: int) -> str:
    return f"sl{job_id}.{secrets.token_hex(_NONCE_BYTES)}"[:25]


@reads
def list_undelivered(limit: int) -> Steps[list[Job]]:
    return [Job.from_row(row) for row in (yield from query(sql.SELECT_UNDELIVERED, (limit,)))]


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
    if row["delivered_at"] is not None:
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
    if before is not None and before["delivered_at"] is not None:
        return False
    ids = json.dumps([int(i) for i in message_ids])
    yield from query(sql.MARK_DELIVERED, {"job_id": job_id, "nonce": new_nonce(job_id), "now": now, "ids": ids})
    return True


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
        return None
    return tuple(json.loads(row["message_ids"] or "[]"))
