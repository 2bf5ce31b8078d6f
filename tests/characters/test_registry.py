"""The characters registry in the store, the checks before training, saving uploaded photos, and the whole
flow through a real worker: a train_subject job registers its character, which imagine and story then use
(its LoRA for that job only, its words in the prompt), while the base pipeline stays exactly as it was."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from storyloom.characters.registry import check_character_request, registry_lookup, remove_character_files
from storyloom.characters.uploads import Upload, save_training_photos
from storyloom.config import QueueConfig
from storyloom.domain.parameters import read_png_parameters
from storyloom.errors import InvalidInput
from storyloom.models.image.lora import with_character
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.queue import (
    ArtifactKind,
    AsyncJobStore,
    CharacterExists,
    CharacterNotFound,
    JobKind,
    JobStatus,
    JobStore,
    NewCharacter,
)
from storyloom.worker.registry import build_handlers
from storyloom.worker.resources import ModelResources, ModelSpec, default_specs
from storyloom.worker.testing import wait_until, worker_in_thread
from tests.support.images import artifact_image
from tests.support.jobs import finished, finished_somehow

KINDS = [kind.value for kind in JobKind]


def mittens(**changes) -> NewCharacter:
    values = {"name": "Mittens", "identifier": "bhna", "class_name": "cat", "lora_path": "characters/m/x.safetensors"}
    return NewCharacter(**{**values, **changes})


# --- the registry in the store ---------------------------------------------------------------------------


def test_characters_are_added_found_listed_and_deleted_per_guild() -> None:
    with JobStore.open(":memory:") as store:
        local = store.add_character(mittens(preview=b"jpeg", metadata={"steps": 4}))
        assert (local.token, local.guild_id, local.trained_by, local.preview) == ("bhna cat", None, 0, b"jpeg")
        paws = store.add_character(mittens(name="Paws", identifier="ohwx", class_name="Dog", guild_id=7, trained_by=42))
        assert paws.class_name == "dog"  # cleaned
        store.add_character(mittens(name="Rex", identifier="zqx", class_name="dog", guild_id=8))

        assert [c.name for c in store.list_characters(guild_id=7)] == ["Mittens", "Paws"]  # own + command line's
        assert [c.name for c in store.list_characters()] == ["Mittens"]
        assert [c.name for c in store.list_characters(all_guilds=True)] == ["Mittens", "Paws", "Rex"]
        assert store.character("  paws ", guild_id=7).id == paws.id
        assert store.find_character("Paws", guild_id=8) is None  # another guild's pet stays there
        with pytest.raises(CharacterNotFound, match="'Paws' is unknown; known characters: Mittens, Rex"):
            store.character("Paws", guild_id=8)

        for clash in (mittens(name="MITTENS"), mittens(name="mittens", guild_id=7), mittens(name="paws", guild_id=7)):
            with pytest.raises(CharacterExists, match="already exists"):
                store.add_character(clash)
        store.add_character(mittens(name="Paws"))  # the command line may reuse a guild's name: the guild's wins there
        assert store.character("Paws", guild_id=7).id == paws.id

        with pytest.raises(InvalidInput, match="registered on the command line"):
            store.delete_character("Mittens", guild_id=7)
        assert store.delete_character("paws", guild_id=7).id == paws.id
        assert store.character("Paws", guild_id=7).guild_id is None
        with pytest.raises(InvalidInput, match="registered on the command line"):
            store.delete_character("Paws", guild_id=7)
        with pytest.raises(CharacterNotFound, match="'Nobody' is unknown; no characters are registered yet"):
            store.delete_character("Nobody", guild_id=7)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "  "}, "name is empty"),
        ({"name": "<@everyone>"}, "character name '<@everyone>' is not allowed"),
        ({"identifier": "Bhna!"}, "token 'Bhna!' is not allowed"),
        ({"class_name": "c4t"}, "class 'c4t' is not allowed"),
        ({"identifier": "cat"}, "must differ from the class"),
        ({"lora_path": " "}, "path of its LoRA file"),
    ],
)
def test_malformed_characters_are_refused(changes, message: str) -> None:
    with JobStore.open(":memory:") as store:
        with pytest.raises(InvalidInput, match=message):
            store.add_character(mittens(**changes))
        assert store.list_characters(all_guilds=True) == []


def test_a_job_registers_its_character_atomically_with_its_success_and_a_taken_name_registers_nothing() -> None:
    with JobStore.open(":memory:") as store:
        first = store.enqueue("train_subject", _train_params(), user_id=1, guild_id=5)
        second = store.enqueue("train_subject", _train_params(name="Paws"), user_id=2, guild_id=5)
        store.claim("w", KINDS)
        done = store.complete(first.id, "w", characters=[mittens(guild_id=5, trained_by=1)])
        assert done.status is JobStatus.SUCCEEDED and store.character("Mittens", guild_id=5).job_id == first.id

        store.claim("w", KINDS)
        with pytest.raises(CharacterExists, match="'Paws' is already being trained"):
            store.add_character(mittens(name="Paws"))  # the command line cannot take a name a training reserved
        with pytest.raises(CharacterExists):  # a name taken since (here: the first job's) fails the whole completion
            store.complete(
                second.id, "w", characters=[mittens(name="Mittens", guild_id=5, trained_by=2, lora_path="o")]
            )
        assert store.get(second.id).status is JobStatus.RUNNING  # nothing of that completion happened
        assert [(c.name, c.trained_by) for c in store.list_characters(guild_id=5)] == [("Mittens", 1)]


def test_a_name_is_reserved_from_the_moment_its_training_is_queued() -> None:
    with JobStore.open(":memory:") as store:
        biscuit = store.enqueue("train_subject", _train_params(name="Biscuit"), user_id=1, guild_id=5)
        busy = f"a character named 'Biscuit' is already being trained \\(job {biscuit.id}\\); wait for it to finish"
        for name, guild_id in (("biscuit", 5), (" BISCUIT ", None)):  # the same guild, or the command line's
            with pytest.raises(CharacterExists, match=busy):
                store.enqueue("train_subject", _train_params(name=name), user_id=2, guild_id=guild_id)
        store.enqueue("train_subject", _train_params(name="Biscuit"), user_id=3, guild_id=6)  # another guild
        store.enqueue("train_subject", _train_params(name="Biscuits"), user_id=2, guild_id=5)

        store.claim("w", KINDS)  # running still reserves it
        with pytest.raises(CharacterExists, match="already being trained"):
            store.enqueue("train_subject", _train_params(name="Biscuit"), user_id=2, guild_id=5)
        store.complete(biscuit.id, "w", characters=[mittens(name="Biscuit", guild_id=5, trained_by=1)])
        with pytest.raises(CharacterExists, match="a character named 'Biscuit' already exists; choose another name"):
            store.enqueue("train_subject", _train_params(name="biscuit"), user_id=2, guild_id=5)
        store.add_character(mittens(name="Rex", identifier="ohwx"))  # command line: every guild sees it
        with pytest.raises(CharacterExists, match="'Rex' already exists"):
            store.enqueue("train_subject", _train_params(name="rex"), user_id=2, guild_id=9)
        store.enqueue("imagine", {"prompt": "Biscuit"}, user_id=2, guild_id=5)  # only trainings reserve names


def test_a_retried_training_needs_its_name_to_be_free_again() -> None:
    with JobStore.open(":memory:") as store:
        first = store.enqueue("train_subject", _train_params(name="Biscuit"), user_id=1, guild_id=5)
        store.cancel(first.id)
        second = store.enqueue("train_subject", _train_params(name="Biscuit"), user_id=2, guild_id=5)  # free again
        with pytest.raises(CharacterExists, match=f"already being trained \\(job {second.id}\\)"):
            store.retry(first.id)
        store.cancel(second.id)
        third = store.retry(first.id)
        assert third.params["name"] == "Biscuit" and third.status is JobStatus.QUEUED
        store.claim("w", KINDS)
        store.complete(third.id, "w", characters=[mittens(name="Biscuit", guild_id=5)])
        with pytest.raises(CharacterExists, match="'Biscuit' already exists"):
            store.retry(second.id)
        assert [j.id for j in store.list_jobs([JobStatus.QUEUED])] == []


async def test_the_bots_async_store_has_the_same_registry(tmp_path: Path) -> None:
    async with await AsyncJobStore.open(tmp_path / "jobs.db", QueueConfig()) as store:
        await store.add_character(mittens(guild_id=3))
        assert [c.name for c in await store.list_characters(guild_id=3)] == ["Mittens"]
        assert (await store.character("mittens", guild_id=3)).token == "bhna cat"
        assert (await store.delete_character("Mittens", guild_id=3)).name == "Mittens"

        job = await store.enqueue("train_subject", _train_params(name="Paws"), user_id=1, guild_id=3)
        with pytest.raises(CharacterExists, match=f"'Paws' is already being trained \\(job {job.id}\\)"):
            await store.enqueue("train_subject", _train_params(name="paws"), user_id=2, guild_id=3)
        await store.cancel(job.id)
        again = await store.enqueue("train_subject", _train_params(name="paws"), user_id=2, guild_id=3)
        with pytest.raises(CharacterExists, match="already being trained"):
            await store.retry(job.id)
        [reference] = [r for r in (await store.training_references()).jobs if r.status is JobStatus.QUEUED]
        assert (reference.job_id, reference.name, reference.class_name) == (again.id, "paws", "cat")


# --- checks before training, uploads, prompts -----------------------------------------------------------------


def test_a_training_request_is_checked_and_a_common_word_token_only_warns() -> None:
    request = check_character_request(" Mr  Paws ", "ohwx", " Teddy Bear ")
    assert (request.name, request.identifier, request.class_name, request.warnings) == (
        "Mr Paws",
        "ohwx",
        "teddy bear",
        (),
    )
    warned = check_character_request("Rex", "dog", "puppy")
    assert len(warned.warnings) == 1 and "common English word" in warned.warnings[0]
    with pytest.raises(InvalidInput, match="must differ from the class"):
        check_character_request("Rex", "dog", "dog")


def test_uploaded_photos_are_checked_and_saved_with_their_captions(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    uploads = [Upload(f"cat{i}.png", photo_bytes(i), caption="a cat on a sofa" if i == 0 else "") for i in range(3)]
    folder = save_training_photos(data_dir, uploads, min_images=3, max_images=30)
    saved = sorted(p.name for p in (data_dir / folder).iterdir())
    assert folder.startswith("uploads/") and saved == ["photo_01.png", "photo_01.txt", "photo_02.png", "photo_03.png"]

    for bad, message in (
        (uploads[:2], "at least 3 photos"),
        ([*uploads[:2], Upload("notes.txt", b"hello")], "notes.txt is not an image"),
        ([*uploads[:2], Upload("half.png", photo_bytes(1)[:200])], "half.png is a damaged image"),
    ):
        with pytest.raises(InvalidInput, match=message):
            save_training_photos(data_dir, bad, min_images=3, max_images=30)
    assert len(list((data_dir / "uploads" / "characters").iterdir())) == 1  # refused uploads write nothing


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("Mittens in a garden", "bhna cat in a garden"),
        ("a ((bhna cat)) in the snow", "a ((bhna cat)) in the snow"),
        ("a castle at night", "bhna cat, a castle at night"),
        ("(mittens:1.2) and a dog", "(bhna cat:1.2) and a dog"),
    ],
)
def test_a_characters_words_go_into_the_prompt(prompt: str, expected: str) -> None:
    assert with_character(prompt, identifier="bhna", class_name="cat", name="Mittens") == expected


def test_deleting_a_character_removes_only_files_under_the_characters_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    lora = data_dir / "characters" / "mittens-job1" / "pytorch_lora_weights.safetensors"
    lora.parent.mkdir(parents=True)
    lora.write_bytes(b"x")
    outside = tmp_path / "mine" / "lora.safetensors"
    outside.parent.mkdir()
    outside.write_bytes(b"x")
    with JobStore.open(":memory:") as store:
        inside = store.add_character(mittens(lora_path="characters/mittens-job1/pytorch_lora_weights.safetensors"))
        elsewhere = store.add_character(mittens(name="Paws", lora_path=str(outside)))
        assert registry_lookup(lambda name: store.character(name))("mittens").token == "bhna cat"
    assert remove_character_files(inside, data_dir) and not lora.parent.exists()
    assert not remove_character_files(elsewhere, data_dir) and outside.exists()


# --- through a real worker ------------------------------------------------------------------------------------

STORY = "Title: Mittens and the Moon\n\nMittens built a little boat.\n\nShe sailed to the moon and home again."
PLAN = json.dumps(
    {
        "title": "Mittens and the Moon",
        "characters": [{"name": "Mittens", "description": "a small orange cat"}],
        "pages": [{"page": n, "scene": f"scene {n} on the sea", "characters": ["Mittens"]} for n in (1, 2)],
    }
)


def test_a_train_subject_job_registers_a_character_that_imagine_and_story_then_draw_with(
    tmp_path: Path, tiny_models
) -> None:
    from storyloom.models.story.testing import ScriptedLanguageModel

    config = make_tiny_config(
        tmp_path, tiny_models, image={"steps": 3}, queue={"heartbeat_seconds": 0.2},
        training={"subject_learning_rate": 3e-3, "num_class_images": 2},
    )  # fmt: skip
    lm = ScriptedLanguageModel([lambda request: STORY if request.use_adapter else PLAN])
    specs = {**default_specs(), "story_writer": ModelSpec("story_writer", "language", lambda config, cache: lm)}
    resources = ModelResources(
        config, specs=specs, budget_bytes=10**12, estimates={"language": 1, "image": 1}, memory_probe=lambda: 0
    )
    data_dir = config.paths.data_dir
    folder = save_training_photos(
        data_dir, [Upload(f"{i}.png", photo_bytes(i)) for i in range(4)], min_images=3, max_images=30
    )

    with (
        JobStore.from_config(config) as store,
        worker_in_thread(config, handlers=build_handlers(), resources=resources),
    ):
        job = store.enqueue("train_subject", _train_params(images_dir=folder), user_id=7, guild_id=99, channel_id=1)
        finished(store, job.id)
        record = store.character("mittens", guild_id=99)
        assert (record.trained_by, record.job_id, record.token) == (7, job.id, "bhna cat")
        assert record.lora_path == f"characters/mittens-job{job.id}/pytorch_lora_weights.safetensors"
        assert (data_dir / record.lora_path).is_file() and record.preview[:2] == b"\xff\xd8"
        assert record.metadata["probe_loss_after"] < record.metadata["probe_loss_before"]
        assert store.find_character("Mittens", guild_id=100) is None
        artifacts = store.artifacts(job.id)
        kinds = [(a.kind, a.index) for a in artifacts]
        assert kinds == [
            (ArtifactKind.TEXT, 0),
            (ArtifactKind.GRID, 0),
            (ArtifactKind.IMAGE, 0),
            (ArtifactKind.IMAGE, 1),
        ]
        assert read_png_parameters(artifact_image(artifacts[2])).extra["Character"] == "Mittens"
        assert json.loads(artifacts[0].data)["steps"] == 4

        request = {"prompt": "Mittens in a garden", "seed": 5, "num_images": 1}
        plain = finished(store, store.enqueue("imagine", request, user_id=7, guild_id=99).id)
        drawn = finished(
            store, store.enqueue("imagine", {**request, "character": "Mittens"}, user_id=7, guild_id=99).id
        )
        plain_again = finished(store, store.enqueue("imagine", request, user_id=7, guild_id=99).id)
        base, with_lora, base_again = (pixels(store, j.id) for j in (plain, drawn, plain_again))
        assert np.array_equal(base, base_again)  # the LoRA was unloaded: the base draws exactly as before
        lora_only = finished(
            store, store.enqueue("imagine", {**request, "prompt": "bhna cat in a garden"}, user_id=7, guild_id=99).id
        )
        assert np.abs(with_lora.astype(int) - pixels(store, lora_only.id)).mean() > 0.5  # same prompt, LoRA or not
        stored = read_png_parameters(artifact_image(store.artifact(drawn.id, 0)))
        assert stored.prompt == "bhna cat in a garden" and stored.extra["Character"] == "Mittens"

        vary = finished(
            store, store.enqueue("vary", {"index": 0, "seed": 3}, user_id=7, guild_id=99, parent_id=drawn.id).id
        )
        assert read_png_parameters(artifact_image(store.artifact(vary.id, 0))).extra["Character"] == "Mittens"

        story = store.enqueue(
            "story",
            {"summary": "Mittens sails to the moon", "pages": 2, "seed": 3, "character": "Mittens"},
            user_id=7,
            guild_id=99,
        )
        finished(store, story.id)
        pages = store.children(story.id)
        assert [p.params["characters"] for p in pages] == [[{"name": "Mittens", "position": "whole"}]] * 2
        assert all("bhna cat" in p.params["prompt"] for p in pages)
        for page in pages:
            finished(store, page.id)
            assert read_png_parameters(artifact_image(store.artifact(page.id, 0))).extra["Character"] == "Mittens"

        unknown = finished_somehow(
            store, store.enqueue("imagine", {**request, "character": "Rex"}, user_id=7, guild_id=99).id
        )
        assert (
            unknown.status is JobStatus.FAILED
            and "'Rex' is unknown; known characters: Mittens" in unknown.error.message
        )
        elsewhere = finished_somehow(
            store, store.enqueue("imagine", {**request, "character": "Mittens"}, user_id=8, guild_id=100).id
        )
        assert elsewhere.status is JobStatus.FAILED and "unknown" in elsewhere.error.message

        with pytest.raises(CharacterExists, match="already exists"):
            store.enqueue("train_subject", _train_params(images_dir=folder), user_id=8, guild_id=99)
        assert not (data_dir / folder).exists()  # its photos went once the job succeeded
        outside = finished_somehow(
            store,
            store.enqueue(
                "train_subject", _train_params(name="Rex", images_dir="../../etc"), user_id=8, guild_id=99
            ).id,
        )
        assert outside.status is JobStatus.FAILED and "outside the data directory" in outside.error.message
        assert [c.name for c in store.list_characters(guild_id=99)] == ["Mittens"]


def test_a_canceled_train_story_job_keeps_its_checkpoint_and_its_retry_resumes_from_it(
    tmp_path: Path, tiny_models
) -> None:
    config = make_tiny_config(tmp_path, tiny_models, queue={"heartbeat_seconds": 0.2}, training={"checkpoint_every": 1})
    dataset = config.paths.data_dir / "pairs.json"
    dataset.parent.mkdir(parents=True, exist_ok=True)
    pairs = [
        {"summary": f"Bhna finds a {w}.", "story": f"Bhna the cat found a {w}. The end."}
        for w in ("hat", "boat", "moon")
    ]
    dataset.write_text(json.dumps(pairs))
    params = {"dataset": "pairs.json", "name": "bhna-tales", "max_steps": 60}
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        job = store.enqueue("train_story", params, user_id=1)
        wait_until(lambda: store.get(job.id).progress.step >= 2, 60, interval=0.02, what="training to make progress")
        store.cancel(job.id)
        canceled = finished_somehow(store, job.id)
        assert canceled.status is JobStatus.CANCELED
        state = json.loads(
            (config.paths.data_dir / "adapters" / "bhna-tales" / "checkpoint" / "state.json").read_text()
        )
        assert 2 <= state["step"] < 60

        retry = store.retry(job.id)
        finished(store, retry.id)
        (summary,) = store.artifacts(retry.id)
        result = json.loads(summary.data)
        assert result["resumed_from"] == state["step"] and result["steps"] == 60
        assert result["adapter_dir"] == "adapters/bhna-tales" and len(result["losses"]) == 60
        bad = finished_somehow(
            store, store.enqueue("train_story", {**params, "dataset": "../pairs.json"}, user_id=1).id
        )
        assert bad.status is JobStatus.FAILED and "outside the data directory" in bad.error.message


# --- helpers --------------------------------------------------------------------------------------------------


def _train_params(**changes) -> dict:
    return {
        "name": "Mittens",
        "identifier": "bhna",
        "class_name": "cat",
        "images_dir": "uploads/x",
        "max_steps": 4,
        **changes,
    }


def photo_bytes(index: int) -> bytes:
    picture = Image.new("RGB", (96, 80), (40, 90, 200))
    ImageDraw.Draw(picture).ellipse((18 + 4 * index, 12, 70 + 4 * index, 68), fill=(235, 125 - 5 * index, 30))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def pixels(store: JobStore, job_id: int) -> np.ndarray:
    return np.asarray(artifact_image(store.artifact(job_id, 0)))
