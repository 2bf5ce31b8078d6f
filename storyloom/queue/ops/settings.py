"""Each user's saved defaults: a small JSON object of text values per user, opaque to the queue.

The bot decides what the keys mean (negative prompt, aspect ratio, style) and validates the values before
saving; the store only keeps them, so a new kind of default needs no new migration.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from storyloom.queue import sql
from storyloom.queue.operation import Steps, one, query, reads, writes


@reads
def user_settings(user_id: int) -> Steps[dict[str, str]]:
    row = yield from one(sql.SELECT_USER_SETTINGS, (user_id,))
    return {} if row is None else dict(json.loads(row["settings"]))


@writes
def save_user_settings(user_id: int, values: Mapping[str, str], now: float) -> Steps[dict[str, str]]:
    """Replace the user's defaults with ``values`` (already cleaned); an empty mapping forgets the user."""
    if not values:
        yield from query(sql.DELETE_USER_SETTINGS, (user_id,))
        return {}
    encoded = json.dumps(dict(values), ensure_ascii=False, sort_keys=True)
    yield from query(sql.UPSERT_USER_SETTINGS, {"user_id": user_id, "settings": encoded, "now": now})
    return dict(values)
