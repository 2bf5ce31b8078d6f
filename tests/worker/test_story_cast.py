"""The story job with characters, run by a real worker (scripted language model, tiny Stable Diffusion): the cast
card (a portrait per character, the composed card), the pages' parameters (characters, places, the consistent
option, the portrait they share attention with), and a continuation written on from the story as edited."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from storyloom.domain.seeds import cast_seed
from storyloom.domain.story.cast_card import MARGIN, PORTRAIT_SIDE
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.models.story.prompts import PLANNER_SYSTEM_PROMPT
from storyloom.models.story.testing import ScriptedLanguageModel
from storyloom.models.story.writer import TextRequest
from storyloom.queue import ArtifactKind, JobKind, JobStatus, JobStore, NewCharacter
from storyloom.worker.handlers.stories import story
from storyloom.worker.resources import ModelResources, ModelSpec, default_specs
from storyloom.worker.testing import worker_in_thread
from tests.support.images import artifact_image, noisy_png
from tests.support.jobs import finished

STORY = (
    "Title: Bhna and Pip\n\nBhna the cat built a little boat.\n\n"
    "Pip the robot and Bhna sailed across the sea.\n\nThe moon came down to say hello to Pip.\n\n"
    "Then Bhna sailed home to sleep."
)
PLAN = {
    "title": "Bhna and Pip",
    "characters": [
        {"name": "Bhna", "description": "a small orange cat"},
        {"name": "Moon", "description": "a smiling silver moon"},
    ],
    "pages": [
        {"page": 1, "scene": "a cat building a boat on a beach", "characters": ["Bhna"]},
        {
            "page": 2,
            "scene": "a cat and a robot in a boat at sea",
            "characters": [{"name": "Pip", "position": "right"}, {"name": "Bhna", "position": "left"}],
        },
        {"page": 3, "scene": "the moon greets a robot", "characters": ["Moon", "Pip"]},
        {"page": 4, "scene": "a cat asleep in its bed", "characters": ["Bhna"]},
    ],
}
SEQUEL = "Title: The Return\n\nBhna and Pip sailed again.\n\nThey found an island."


def reference_only(name: str, digest: str, description: str) -> NewCharacter:
    return NewCharacter(
        name=name, identifier="", class_name="", lora_path="", reference_digest=digest, description=description
    )


def resources(config, lm: ScriptedLanguageModel) -> ModelResources:
    specs = {**default_specs(), "story_writer": ModelSpec("story_writer", "language", lambda config, cache: lm)}
    return ModelResources(config, specs=specs)


def answer(request: TextRequest) -> str:
    """The story, its plan, a chapter synopsis, the next chapter (whose plan is left to the fallback)."""
    if request.system == PLANNER_SYSTEM_PROMPT:
        return json.dumps(PLAN) if "Page 4:" in request.prompt else "no plan"
    if "Summarize this chapter" in request.prompt:
        return "Bhna built a boat and sailed the sea with Pip, and the moon said hello."
    return SEQUEL if "Write chapter" in request.prompt or "Chapter 2" in request.prompt else STORY


def scripted() -> ScriptedLanguageModel:
    return ScriptedLanguageModel([answer])


def test_a_story_with_two_characters_opens_with_its_cast_card_and_places_them_on_its_pages(
    tmp_path: Path, tiny_models
) -> None:
    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 2})
    lm = scripted()
    with (
        JobStore.from_config(config) as store,
        worker_in_thread(config, handlers={JobKind.STORY: story}, resources=resources(config, lm)),
    ):
        store.add_character(reference_only("Bhna", store.put_blob(noisy_png(48, 48, seed=1)), "a small orange cat"))
        store.add_character(reference_only("Pip", store.put_blob(noisy_png(48, 48, seed=2)), "a tin robot"))
        request = {"summary": "Bhna and Pip sail to the moon", "pages": 4, "seed": 11, "characters": ["bhna", "Pip"]}
        job = store.enqueue("story", {**request, "consistent": True}, user_id=1)
        assert finished(store, job.id).status is JobStatus.SUCCEEDED
        document, card, *portraits = store.artifacts(job.id)
        plan = json.loads(document.data)
        assert "The main characters are Bhna, a small orange cat; Pip, a tin robot" in lm.requests[0].prompt

        # the cast card: the registered characters first (with their own descriptions), then the planner's
        assert [(p.kind, p.index, p.metadata["character"]) for p in portraits] == [
            (ArtifactKind.IMAGE, 0, "Bhna"), (ArtifactKind.IMAGE, 1, "Pip"), (ArtifactKind.IMAGE, 2, "Moon"),
        ]  # fmt: skip
        assert [p.metadata["seed"] for p in portraits] == [cast_seed(11, n) for n in ("Bhna", "Pip", "Moon")]
        assert card.kind is ArtifactKind.GRID and card.metadata["cast"][1] == {
            "name": "Pip",
            "description": "a tin robot",
        }
        assert artifact_image(card).width == MARGIN + 3 * (PORTRAIT_SIDE + MARGIN)
        assert document.metadata["cast_job"] == job.id and document.metadata["cast_size"] == 3
        # each registered character's portrait is drawn with its picture: not what the same seed draws plainly
        assert "Bhna" in artifact_image(portraits[0]).info["parameters"]
        assert artifact_image(portraits[2]).info["parameters"].count("Character:") == 0

        pages = store.children(job.id)
        characters = [page.params["characters"] for page in pages]
        assert characters == [
            [{"name": "Bhna", "position": "whole"}],
            [{"name": "Bhna", "position": "left"}, {"name": "Pip", "position": "right"}],
            [{"name": "Pip", "position": "right"}],  # the Moon shares the page, on the left
            [{"name": "Bhna", "position": "whole"}],
        ]
        assert [page.params["reference"] for page in pages] == [
            {"job": job.id, "index": index} for index in (0, 0, 1, 0)
        ]  # the portrait of the page's first character in the cast
        assert all(page.params["consistent"] is True for page in pages)
        assert plan["pages"][1]["positions"] == {"Bhna": "left", "Pip": "right"}
        assert "Bhna, a small orange cat on the left; Pip, a tin robot on the right" in pages[1].params["prompt"]


def test_a_continuation_is_written_on_from_the_edited_pages_and_title(tmp_path: Path, tiny_models) -> None:
    from storyloom.models.story.testing import FakeTxt2Img
    from storyloom.worker.registry import build_handlers

    config = make_tiny_config(tmp_path, tiny_models)
    lm, pictures = scripted(), FakeTxt2Img()
    specs = {
        "story_writer": ModelSpec("story_writer", "language", lambda config, cache: lm),
        "txt2img": ModelSpec("txt2img", "image", lambda config, cache: pictures),
    }
    models = ModelResources(config, specs=specs, budget_bytes=100, estimates={"language": 1, "image": 1})
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers(), resources=models):
        request = {"summary": "Bhna and Pip sail to the moon", "pages": 4, "seed": 11, "consistent": False}
        first = store.enqueue("story", request, user_id=1)
        assert finished(store, first.id).status is JobStatus.SUCCEEDED
        for page in store.children(first.id):
            assert finished(store, page.id).status is JobStatus.SUCCEEDED
        last = store.children(first.id)[-1]
        edited = {**last.params, "text": "Then Bhna flew home on a kite.", "seed": last.params["seed"]}
        redraw = store.enqueue("story_page", edited, user_id=2, parent_id=first.id)
        assert finished(store, redraw.id).status is JobStatus.SUCCEEDED
        store.set_story_title(first.id, "The Kite Cat")

        sequel = store.enqueue("story", {"summary": "They sail again", "continue_from": first.id}, user_id=1)
        assert finished(store, sequel.id).status is JobStatus.SUCCEEDED
        chapter = next(r for r in lm.requests if "Chapter 2" in r.prompt or "Write chapter" in r.prompt)
        assert "Then Bhna flew home on a kite." in chapter.prompt and "Then Bhna sailed home" not in chapter.prompt
        plan = json.loads(store.artifact(sequel.id, 0, ArtifactKind.TEXT).data)
        assert plan["title"] == "The Kite Cat" and plan["pages"][3]["text"] == "Then Bhna flew home on a kite."
        assert "flew home on a kite" in plan["chapters"][0]["text"]
        new_pages = store.children(sequel.id)
        assert new_pages and all(page.params["reference"]["job"] == first.id for page in new_pages)
        assert store.artifacts(sequel.id)[1:] == []  # a new chapter draws no second cast card


def test_a_page_with_one_character_draws_as_a_page_queued_before_characters_had_places(
    tmp_path: Path, tiny_models
) -> None:
    from storyloom.worker.registry import build_handlers

    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 2})
    page = {"page": 0, "text": "Pip naps.", "prompt": "a robot naps in a garden", "seed": 5, "consistent": False}
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        store.add_character(reference_only("Pip", store.put_blob(noisy_png(48, 48, seed=2)), "a tin robot"))
        cover = store.enqueue("imagine", {"prompt": "a cover", "seed": 1, "num_images": 1}, user_id=1)
        finished(store, cover.id)
        before = store.enqueue("story_page", {**page, "character": "Pip"}, user_id=1, parent_id=cover.id)
        now = {**page, "characters": [{"name": "Pip", "position": "whole"}]}
        placed = store.enqueue("story_page", now, user_id=1, parent_id=cover.id)
        plain = store.enqueue("story_page", page, user_id=1, parent_id=cover.id)
        pixels = [
            np.asarray(artifact_image(store.artifacts(finished(store, job.id).id)[0]), dtype=np.int16)
            for job in (before, placed, plain)
        ]
    assert np.array_equal(pixels[0], pixels[1])
    assert np.abs(pixels[1] - pixels[2]).mean() > 1.0  # Pip's picture did steer both
