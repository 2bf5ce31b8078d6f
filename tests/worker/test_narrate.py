"""The narrate job in a real worker on the tiny voices: recordings keyed by what is heard, clear refusals, and
the narration models sharing the memory budget with the others."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyloom.config import Config
from storyloom.models.narration.media import probe
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.queue import ArtifactKind, JobStatus, JobStore
from storyloom.worker.registry import build_handlers
from storyloom.worker.resources import GB, IMAGE, NARRATION, ModelResources
from storyloom.worker.testing import worker_in_thread
from tests.support.jobs import finished, finished_somehow

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PAGE = "The little boat sailed home. The moon was bright."


@pytest.fixture
def config(tmp_path: Path, tiny_models) -> Config:
    return make_tiny_config(tmp_path, tiny_models, queue={"heartbeat_seconds": 0.2})


def recordings(store: JobStore, job_id: int) -> list:
    return [a for a in store.artifacts(job_id) if a.kind is ArtifactKind.FILE]


def test_pages_are_read_once_and_read_again_when_their_text_changes(config: Config, store: JobStore) -> None:
    def narrate(text: str, voice: str = "willow") -> int:
        pages = [{"number": 1, "text": text}, {"number": 2, "text": "  "}]
        params = {"pages": pages, "narration": {"voice": voice}}
        return finished(store, store.enqueue("narrate", params, user_id=1).id).id

    with worker_in_thread(config, handlers=build_handlers()):
        first, again = narrate(PAGE), narrate(PAGE)
        edited = narrate(PAGE + " Everyone was asleep.")
        other_voice = narrate(PAGE, "river")
    [one] = recordings(store, first)
    assert (one.name, one.mime, one.metadata["page"], one.metadata["voice"]) == ("page-1.ogg", "audio/ogg", 1, "willow")
    assert probe(one.data).audio_seconds == pytest.approx(one.metadata["seconds"], abs=0.05)
    assert recordings(store, again)[0].data == one.data  # the empty page 2 was skipped both times
    longer = recordings(store, edited)[0]
    assert longer.data != one.data and longer.metadata["seconds"] > one.metadata["seconds"]
    assert recordings(store, other_voice)[0].data != one.data
    cached = sorted((config.paths.data_dir / "cache" / "narration").glob("*.npz"))
    assert len(cached) == 3  # the page, the edited page, the page in another voice


def test_unknown_voices_and_languages_fail_with_what_is_allowed(config: Config, store: JobStore) -> None:
    pages = [{"number": 1, "text": PAGE}]
    with worker_in_thread(config, handlers=build_handlers()):
        voice = store.enqueue("narrate", {"pages": pages, "narration": {"voice": "granny"}}, user_id=1)
        french = store.enqueue("narrate", {"pages": pages, "language": "fr"}, user_id=1)
        empty = store.enqueue("narrate", {"pages": [{"number": 1, "text": " "}]}, user_id=1)
        failed = [finished_somehow(store, job.id) for job in (voice, french, empty)]
    assert all(job.status is JobStatus.FAILED for job in failed)
    assert failed[0].error.message == "voice 'granny' is unknown; voices: bramble, clover, river, willow"
    assert "cannot speak French (fr); it speaks English (en), Chinese (zh)" in failed[1].error.message
    assert "nothing to read aloud" in failed[2].error.message


def test_the_narrator_makes_room_and_is_unloaded_for_a_group_that_needs_it(config: Config) -> None:
    estimates = {IMAGE: 3 * GB, NARRATION: 1 * GB}
    resources = ModelResources(config, budget_bytes=3 * GB, estimates=estimates, memory_probe=lambda: 0)
    try:
        narrator = resources.narrator()
        assert resources.narrator() is narrator  # kept warm
        assert resources.loaded_groups() == {NARRATION}
        resources.txt2img()  # Stable Diffusion needs the whole budget: the voices go
        assert resources.loaded_groups() == {IMAGE}
        assert resources.narrator() is not narrator and resources.loaded_groups() == {NARRATION}
    finally:
        resources.close()
