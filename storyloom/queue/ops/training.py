"""``train_subject`` jobs: the name each one reserves, and the files each one refers to.

A character's name is taken from the moment its training is queued, not when the training ends: enqueueing
(or retrying) a ``train_subject`` job checks, inside the same write transaction that inserts it, that no
visible character and no waiting or running training already has that name, so two managers can never both
spend an hour of GPU time on "Biscuit" only for the second to fail at the end.
"""

from __future__ import annotations

import json
from typing import Any

from storyloom.queue import sql
from storyloom.queue.character import CharacterExists, name_key
from storyloom.queue.job import JobStatus, TrainingReference, TrainingReferences
from storyloom.queue.operation import Steps, one, query, reads, scalar


def check_name_free(name: str, guild_id: int | None) -> Steps[None]:
    """``CharacterExists`` when ``name`` is a character ``guild_id`` sees, or is being trained where it would be."""
    key = name_key(name)
    taken = yield from one(sql.SELECT_VISIBLE_CHARACTER, {"name_key": key, "guild_id": guild_id})
    if taken is not None:
        raise CharacterExists(f"a character named {taken['name']!r} already exists; choose another name")
    for row in (yield from query(sql.SELECT_ACTIVE_TRAININGS_IN_SCOPE, {"guild_id": guild_id})):
        other = str(_params(row).get("name", ""))
        if name_key(other) == key:
            raise CharacterExists(
                f"a character named {other!r} is already being trained (job {row['id']}); "
                "wait for it to finish or choose another name"
            )


@reads
def name_free(name: str, guild_id: int | None) -> Steps[None]:
    """:func:`check_name_free` on its own, so a request can be refused before its photos are even saved."""
    yield from check_name_free(name, guild_id)


@reads
def training_references() -> Steps[TrainingReferences]:
    last_job_id = yield from scalar(sql.LAST_JOB_ID)
    jobs = []
    for row in (yield from query(sql.SELECT_TRAININGS)):
        params = _params(row)
        jobs.append(
            TrainingReference(
                job_id=row["id"],
                status=JobStatus(row["status"]),
                name=str(params.get("name", "")),
                class_name=str(params.get("class_name", "")),
                images_dir=str(params.get("images_dir", "")),
            )
        )
    return TrainingReferences(tuple(jobs), int(last_job_id or 0))


def _params(row: Any) -> dict[str, Any]:
    params = json.loads(row["params"])
    return params if isinstance(params, dict) else {}
