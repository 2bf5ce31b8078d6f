"""The persistent job queue: the only channel between the bot and the workers.

Imports neither discord nor torch, so the bot stays small and a worker could live on another machine.
``JobStore`` (sqlite3) serves workers and the CLI, ``AsyncJobStore`` (aiosqlite) the bot; both run the same
operations (``ops``) and the same SQL (``sql``). The delivery protocol is described in ``ops/delivery.py``.
"""

from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.character import CharacterExists, CharacterNotFound, CharacterRecord, NewCharacter
from storyloom.queue.job import (
    Artifact,
    ArtifactKind,
    DeliveryIntent,
    Destination,
    HeartbeatReply,
    Job,
    JobError,
    JobKind,
    JobStatus,
    NewArtifact,
    NewJob,
    Progress,
    QueuePosition,
    TrainingReference,
    TrainingReferences,
    WorkerInfo,
)
from storyloom.queue.params import PARAMS_BY_KIND, validate_params
from storyloom.queue.store import JobStore
from storyloom.queue.transitions import InvalidTransition, JobNotFound, LeaseLost

__all__ = [
    "Artifact",
    "ArtifactKind",
    "AsyncJobStore",
    "CharacterExists",
    "CharacterNotFound",
    "CharacterRecord",
    "DeliveryIntent",
    "Destination",
    "HeartbeatReply",
    "InvalidTransition",
    "Job",
    "JobError",
    "JobKind",
    "JobNotFound",
    "JobStatus",
    "JobStore",
    "LeaseLost",
    "NewArtifact",
    "NewCharacter",
    "NewJob",
    "PARAMS_BY_KIND",
    "Progress",
    "QueuePosition",
    "TrainingReference",
    "TrainingReferences",
    "WorkerInfo",
    "validate_params",
]
