"""Blobs: files any host may need (a character's LoRA weights, a training's photos), stored once by SHA-256.

The digest is computed by the caller before the transaction, so a blob is written at most once however many
jobs name it. Reading one back is checked by :class:`storyloom.queue.blobs.BlobCache` against the digest.
"""

from __future__ import annotations

from storyloom.queue import sql
from storyloom.queue.operation import Steps, query, reads, scalar, writes


@writes
def put_blob(digest: str, data: bytes, now: float) -> Steps[str]:
    yield from query(sql.INSERT_BLOB, {"digest": digest, "size": len(data), "data": data, "now": now})
    return digest


@reads
def blob(digest: str) -> Steps[bytes | None]:
    data = yield from scalar(sql.SELECT_BLOB, (digest,))
    return None if data is None else bytes(data)


@reads
def has_blob(digest: str) -> Steps[bool]:
    return bool((yield from scalar(sql.HAS_BLOB, (digest,))))


@writes
def purge_unreferenced_blobs(before: float, limit: int) -> Steps[int]:
    return len((yield from query(sql.PURGE_UNREFERENCED_BLOBS, {"before": before, "limit": limit})))
