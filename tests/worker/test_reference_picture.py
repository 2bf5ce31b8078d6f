"""A character's reference picture as a worker reads it: from the job store into the host's file cache once,
checked against its digest, decoded as RGB; through a job's context on a real worker too."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from storyloom.config import Config
from storyloom.errors import StoreError
from storyloom.queue import JobKind, JobStatus, JobStore, NewCharacter
from storyloom.queue.blobs import BlobCache
from storyloom.worker.context import HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import text_artifact
from storyloom.worker.handlers.characters import reference_picture
from storyloom.worker.testing import worker_in_thread
from tests.support.images import noisy_png
from tests.support.jobs import finished

DRAWING = noisy_png(80, 72, seed=5)


def pip(digest: str, name: str = "Pip") -> NewCharacter:
    return NewCharacter(name=name, identifier="", class_name="", lora_path="", reference_digest=digest)


def test_the_picture_is_fetched_once_into_the_cache_and_decoded(tmp_path: Path) -> None:
    with JobStore.open(str(tmp_path / "jobs.db")) as store:
        record = store.add_character(pip(store.put_blob(DRAWING)))
        fetched: list[str] = []
        cache = BlobCache(tmp_path / "cache", 1024 * 1024)

        def files(digest: str, suffix: str, what: str) -> Path:
            return cache.file(digest, lambda: fetched.append(digest) or store.blob(digest), suffix=suffix, what=what)

        picture = reference_picture(record, files)
        assert picture is not None and (picture.mode, picture.size) == ("RGB", (80, 72))
        assert picture.tobytes() == Image.open(io.BytesIO(DRAWING)).convert("RGB").tobytes()
        assert reference_picture(record, files).tobytes() == picture.tobytes()
        assert fetched == [record.reference_digest]  # the second read came from this host's cache

        trained = store.add_character(
            NewCharacter(name="Mittens", identifier="bhna", class_name="cat", lora_path="x.safetensors")
        )
        assert reference_picture(trained, files) is None

        gone = store.add_character(pip("f" * 64, name="Gone"))  # its picture is not in the store
        with pytest.raises(StoreError, match="reference picture of character 'Gone'.*no longer in the job store"):
            reference_picture(gone, files)


def describe_reference(context: JobContext) -> HandlerResult:
    record = context.lookup_character(context.params.prompt)
    picture = reference_picture(record, context.lookup_file)
    return HandlerResult((text_artifact(0, "size.txt", f"{picture.width}x{picture.height}"),))


def test_a_job_reads_the_picture_through_its_context(tmp_path: Path, tiny_config: Config) -> None:
    with JobStore.from_config(tiny_config) as store:
        store.add_character(pip(store.put_blob(DRAWING)))
        job = store.enqueue("imagine", {"prompt": "Pip"}, user_id=1)
        with worker_in_thread(tiny_config, handlers={JobKind.IMAGINE: describe_reference}) as worker:
            done = finished(store, job.id)
        assert done.status is JobStatus.SUCCEEDED, done.error
        [artifact] = store.artifacts(job.id)
        assert artifact.data == b"80x72"
        assert any(worker.files.directory.rglob("*.png"))  # kept in the worker's cache for the next job


def test_the_command_line_reads_the_picture_through_the_same_cache(tiny_config: Config) -> None:
    from storyloom.worker.handlers.characters import stored_reference_picture

    with JobStore.from_config(tiny_config) as store:
        record = store.add_character(pip(store.put_blob(DRAWING)))
        trained = store.add_character(NewCharacter(name="Mittens", identifier="bhna", class_name="cat", lora_path="x"))
    picture = stored_reference_picture(tiny_config, record)
    assert picture is not None and picture.size == (80, 72)
    assert any(tiny_config.blob_cache_dir.rglob("*.png"))
    assert stored_reference_picture(tiny_config, trained) is None
