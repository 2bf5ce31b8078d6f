"""Removing training files nobody needs any more, decided from what the store says about them.

Training a character leaves folders in three places under the data directory:

- ``uploads/characters/<folder>``, the photos a ``train_subject`` job learns from. Kept while a job naming them
  is queued or running, or failed or was canceled (``queue retry`` needs them) until that job is purged.
  Removed once a job naming them succeeded and none is queued or running: the LoRA exists, and the photos
  (children's pets, family things) should not be kept longer than needed. A folder no job names is removed
  after ``UPLOAD_GRACE_SECONDS`` (the bot saves the photos just before it queues the job, so a fresh folder may
  not be named yet).
- ``characters/<name>-job<ID>``, what job ID trained. Removed once that job has finished or is gone and no
  registered character's LoRA lies inside (failed, canceled, lost the name to another). A queued or running
  job's folder holds the checkpoint it resumes from and is never touched. Folders not named ``-job<ID>`` were
  made by hand and are left alone.
- ``class-images/<class>-<resolution>-<key>``, the class images of a class (``class_images.py``). They cost GPU
  time to make again, so they are removed only when no character and no queued or running training has that
  class, and nothing used them for ``queue.retention_days``.

:func:`plan_cleanup` only decides; :func:`remove` deletes, and only folders directly inside those three places,
never a symbolic link, never through one. Torch-free: the worker, the CLI and the bot all run it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyloom.characters.photos import CLASS_IMAGES_DIR
from storyloom.characters.registry import CHARACTERS_DIR
from storyloom.characters.uploads import PHOTOS_DIR
from storyloom.domain.paths import slug
from storyloom.errors import StoreError
from storyloom.queue.character import CharacterRecord
from storyloom.queue.job import JobStatus, TrainingReference, TrainingReferences

if TYPE_CHECKING:
    from storyloom.queue.async_store import AsyncJobStore
    from storyloom.queue.store import JobStore

logger = logging.getLogger(__name__)

UPLOAD_GRACE_SECONDS = 3600.0
DAY = 86400.0
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
ROOTS = (PHOTOS_DIR, CHARACTERS_DIR, CLASS_IMAGES_DIR)

_JOB_OUTPUT = re.compile(r"^.+-job(?P<job_id>[0-9]+)$")  # characters.job_output_dir
_CLASS_CACHE = re.compile(r"^(?P<slug>[a-z0-9]+(?:-[a-z0-9]+)*)-(?P<resolution>[0-9]+)-(?P<key>[0-9a-f]{12})$")
_ENDED = {JobStatus.SUCCEEDED: "succeeded", JobStatus.FAILED: "failed", JobStatus.CANCELED: "was canceled"}


@dataclass(frozen=True)
class TrainingFacts:
    """What the store says about training files: every ``train_subject`` job and every registered character."""

    references: TrainingReferences
    characters: tuple[CharacterRecord, ...]


@dataclass(frozen=True)
class Removal:
    path: Path
    reason: str

    def describe(self, data_dir: Path) -> str:
        try:
            where = self.path.relative_to(data_dir.expanduser().resolve()).as_posix()
        except ValueError:
            where = str(self.path)
        return f"{where} ({self.reason})"


def read_facts(store: JobStore) -> TrainingFacts:
    # Jobs before characters: a training that succeeds in between is still running in the first read (its
    # folder kept) and its character is in the second; the other order could see neither.
    references = store.training_references()
    return TrainingFacts(references, tuple(store.list_characters(all_guilds=True)))


async def read_facts_async(store: AsyncJobStore) -> TrainingFacts:
    references = await store.training_references()
    return TrainingFacts(references, tuple(await store.list_characters(all_guilds=True)))


def sweep(store: JobStore, data_dir: Path, *, retention_days: float, now: float | None = None) -> list[Removal]:
    """Plan and remove; what was removed is logged and returned. A store that cannot be read now only
    postpones the cleanup (logged), it never fails the caller."""
    try:
        facts = read_facts(store)
    except StoreError as exc:
        logger.warning("training files were not cleaned up: %s", exc)
        return []
    return _plan_and_remove(data_dir, facts, retention_days, now)


async def sweep_async(
    store: AsyncJobStore, data_dir: Path, *, retention_days: float, now: float | None = None
) -> list[Removal]:
    """:func:`sweep` for the bot: the store read on its loop, the file system work in a thread."""
    try:
        facts = await read_facts_async(store)
    except StoreError as exc:
        logger.warning("training files were not cleaned up: %s", exc)
        return []
    return await asyncio.to_thread(_plan_and_remove, data_dir, facts, retention_days, now)


def _plan_and_remove(data_dir: Path, facts: TrainingFacts, retention_days: float, now: float | None) -> list[Removal]:
    now = time.time() if now is None else now  # wall clock, like the files' modification times
    removed = remove(plan_cleanup(data_dir, facts, now=now, retention_days=retention_days), data_dir)
    for removal in removed:
        logger.info("removed %s", removal.describe(data_dir))
    return removed


# --- deciding ----------------------------------------------------------------------------------------------


def plan_cleanup(
    data_dir: Path,
    facts: TrainingFacts,
    *,
    now: float,
    retention_days: float,
    upload_grace_seconds: float = UPLOAD_GRACE_SECONDS,
) -> list[Removal]:
    """The folders that can go, with why; reads the folders and their modification times, deletes nothing."""
    root = data_dir.expanduser().resolve()
    return [
        *_unneeded_photos(root, facts.references.jobs, now - upload_grace_seconds),
        *_unneeded_outputs(root, facts),
        *_unused_class_images(root, facts, now, retention_days * DAY),
    ]


def _unneeded_photos(root: Path, jobs: Iterable[TrainingReference], fresh_after: float) -> Iterator[Removal]:
    photos_root = root / PHOTOS_DIR
    users: dict[str, list[TrainingReference]] = {}
    for job in jobs:
        name = _photo_folder(job.images_dir, root, photos_root)
        if name is not None:
            users.setdefault(name, []).append(job)
    for folder in _subfolders(photos_root):
        named_by = users.get(folder.name, [])
        if not named_by:
            if _last_modified(folder) < fresh_after:
                yield Removal(folder, "photos no job uses")
        elif not any(job.status in ACTIVE for job in named_by):
            succeeded = [job for job in named_by if job.status is JobStatus.SUCCEEDED]
            if succeeded:  # the character exists; retrying an earlier failed try would only clash with it
                yield Removal(folder, f"photos of {_jobs(succeeded)}, which succeeded")


def _unneeded_outputs(root: Path, facts: TrainingFacts) -> Iterator[Removal]:
    statuses = {job.job_id: job.status for job in facts.references.jobs}
    loras = [_absolute(character.lora_path, root) for character in facts.characters if character.has_lora]
    for folder in _subfolders(root / CHARACTERS_DIR):
        match = _JOB_OUTPUT.match(folder.name)
        if match is None:
            continue  # made by hand (or by ``storyloom train-subject --out``)
        job_id = int(match["job_id"])
        if job_id > facts.references.last_job_id:
            continue  # a job queued after the facts were read
        status = statuses.get(job_id)
        if status in ACTIVE or any(_inside(lora, folder) for lora in loras):
            continue
        ended = "is gone" if status is None else _ENDED.get(status, "is gone")
        yield Removal(folder, f"output of job {job_id}, which {ended}; no character uses it")


def _unused_class_images(root: Path, facts: TrainingFacts, now: float, keep_seconds: float) -> Iterator[Removal]:
    # A character made from a picture trained nothing: it keeps no class images.
    in_use = {slug(character.class_name, fallback="class") for character in facts.characters if character.has_lora}
    in_use |= {slug(job.class_name, fallback="class") for job in facts.references.jobs if job.status in ACTIVE}
    for folder in _subfolders(root / CLASS_IMAGES_DIR):
        match = _CLASS_CACHE.match(folder.name)
        if match is None or match["slug"] in in_use:
            continue
        unused = now - _last_modified(folder)
        if unused > keep_seconds:
            reason = (
                f"class images of {match['slug']!r}: no character of that class, unused for {unused / DAY:.0f} days"
            )
            yield Removal(folder, reason)


def _photo_folder(images_dir: str, root: Path, photos_root: Path) -> str | None:
    """The folder of ``photos_root`` that a job's ``images_dir`` names (None if it names none)."""
    if not images_dir:
        return None
    named = _absolute(images_dir, root)
    for candidate in (named, named.resolve()):  # an absolute path may reach the data directory through a link
        if photos_root in candidate.parents:
            return candidate.relative_to(photos_root).parts[0]
    return None


def _absolute(recorded: str, root: Path) -> Path:
    """A path recorded relative to the data directory (or absolute), normalised without touching the disk."""
    path = Path(recorded).expanduser()
    return Path(os.path.normpath(path if path.is_absolute() else root / path))


def _inside(path: Path, folder: Path) -> bool:
    return folder in path.parents or folder in path.resolve().parents


def _jobs(jobs: list[TrainingReference]) -> str:
    ids = ", ".join(str(job.job_id) for job in jobs)
    return f"job {ids}" if len(jobs) == 1 else f"jobs {ids}"


def _subfolders(parent: Path) -> list[Path]:
    """Real folders directly inside ``parent``; nothing when ``parent`` is missing or reached through a link."""
    if _through_link(parent) or not parent.is_dir():
        return []
    with os.scandir(parent) as entries:
        return sorted(Path(entry.path) for entry in entries if entry.is_dir(follow_symlinks=False))


def _through_link(path: Path) -> bool:
    """Whether ``path`` or a folder on the way to it from the data directory is a symbolic link."""
    return any(part.is_symlink() for part in (path, *path.parents[:2]))


def _last_modified(folder: Path) -> float:
    """The newest modification time of the folder and of anything in it (links are not followed)."""
    newest = 0.0
    try:
        for directory, subdirectories, files in os.walk(folder, followlinks=False):
            for name in (directory, *(os.path.join(directory, n) for n in (*subdirectories, *files))):
                newest = max(newest, os.lstat(name).st_mtime)
    except OSError:
        return float("inf")  # changing under our feet: someone is using it
    return newest


# --- deleting ----------------------------------------------------------------------------------------------


def remove(removals: Iterable[Removal], data_dir: Path) -> list[Removal]:
    """Delete each planned folder; returns those removed. ``ValueError`` (nothing deleted) if one is not a folder
    directly inside the photos, outputs or class-images folder; a folder already gone is skipped, and one that
    cannot be deleted is logged and skipped."""
    root = data_dir.expanduser().resolve()
    allowed = {root / name for name in ROOTS}
    planned = list(removals)
    for removal in planned:
        path = removal.path
        if path.parent not in allowed or path.name in ("", ".", "..") or Path(os.path.normpath(path)) != path:
            raise ValueError(f"refusing to delete {path}: only folders directly inside {', '.join(ROOTS)} may go")
    removed = []
    for removal in planned:
        path = removal.path
        if _through_link(path) or not path.is_dir():
            continue  # gone already, or a link (never followed, never deleted)
        try:
            _rmtree(path)
        except OSError as exc:
            logger.warning("could not remove %s: %s", removal.describe(data_dir), exc)
            continue
        removed.append(removal)
    return removed


def _rmtree(path: Path) -> None:
    # Several workers sweep the same folders: a file another one removed first is not an error.
    def ignore_gone(function: Any, name: str, error: Any) -> None:
        exc = error[1] if isinstance(error, tuple) else error
        if not isinstance(exc, FileNotFoundError):
            raise exc

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=ignore_gone)
    else:
        shutil.rmtree(path, onerror=ignore_gone)
