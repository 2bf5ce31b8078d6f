"""Story pages with characters on the tiny models, run by a real worker: two characters from reference pictures
each steer their place in the picture, and a page shares self-attention with the story's reference picture when
the consistent look is on (off: the plain page, bit for bit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.queue import JobStatus, JobStore, NewCharacter
from storyloom.worker.registry import build_handlers
from storyloom.worker.testing import worker_in_thread
from tests.support.images import artifact_image, noisy_png
from tests.support.jobs import finished

PAGE = {"page": 0, "text": "Pip and Rex play.", "prompt": "a cat and a dog play in a garden", "seed": 21}


def reference_only(name: str, digest: str, weight: float | None = None) -> NewCharacter:
    return NewCharacter(
        name=name, identifier="", class_name="", lora_path="", reference_digest=digest, reference_weight=weight
    )


def page_pixels(store: JobStore, job_id: int) -> np.ndarray:
    done = finished(store, job_id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    picture = store.artifacts(job_id)[0]
    return np.asarray(artifact_image(picture), dtype=np.int16)


def test_story_pages_draw_with_two_characters_and_with_shared_attention(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 3})
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        store.add_character(reference_only("Pip", store.put_blob(noisy_png(48, 48, seed=1)), weight=0.8))
        store.add_character(reference_only("Rex", store.put_blob(noisy_png(48, 48, seed=2))))
        cover = store.enqueue("imagine", {"prompt": "a red cat", "seed": 3, "num_images": 1}, user_id=1)
        finished(store, cover.id)

        plain = store.enqueue("story_page", PAGE, user_id=1, parent_id=cover.id)
        pair = {**PAGE, "characters": [{"name": "Pip", "position": "left"}, {"name": "Rex", "position": "right"}]}
        both = store.enqueue("story_page", pair, user_id=1, parent_id=cover.id)
        reference = {"job": cover.id, "index": 0}
        shared = store.enqueue(
            "story_page", {**PAGE, "reference": reference, "consistent": True}, user_id=1, parent_id=cover.id
        )
        unshared = store.enqueue(
            "story_page", {**PAGE, "reference": reference, "consistent": False}, user_id=1, parent_id=cover.id
        )
        by_budget = store.enqueue(
            "story_page", {**PAGE, "reference": reference}, user_id=1, parent_id=cover.id
        )  # a CPU host: it fits

        plain_pixels = page_pixels(store, plain.id)
        assert np.abs(page_pixels(store, both.id) - plain_pixels).mean() > 1.0
        assert np.abs(page_pixels(store, shared.id) - plain_pixels).mean() > 0.1
        assert np.array_equal(page_pixels(store, unshared.id), plain_pixels)
        assert np.array_equal(page_pixels(store, by_budget.id), page_pixels(store, shared.id))
        picture = store.artifacts(both.id)[0]
        assert picture.metadata["consistent"] is False and store.artifacts(shared.id)[0].metadata["consistent"] is True
        from storyloom.domain.parameters import read_png_parameters

        drawn = read_png_parameters(artifact_image(picture)).extra
        assert (drawn["Character"], drawn["Character places"]) == ("Pip, Rex", "left, right")
        # An upscale of the page re-draws with both characters in their places, and says so again.
        upscale = store.enqueue("upscale", {"index": 0, "mode": "chain", "seed": 2}, user_id=1, parent_id=both.id)
        done = finished(store, upscale.id)
        assert done.status is JobStatus.SUCCEEDED, done.error
        upscaled = read_png_parameters(artifact_image(store.artifacts(upscale.id)[0])).extra
        assert (upscaled["Character"], upscaled["Character places"]) == ("Pip, Rex", "left, right")


def test_a_reference_character_steers_imagine_and_its_variations_and_upscales_keep_it(
    tmp_path: Path, tiny_models
) -> None:
    from storyloom.domain.parameters import read_png_parameters

    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 3})
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        store.add_character(reference_only("Pip", store.put_blob(noisy_png(48, 48, seed=1)), weight=0.9))
        request = {"prompt": "a cat in a garden", "seed": 4, "num_images": 1}
        plain = store.enqueue("imagine", request, user_id=1)
        pip = store.enqueue("imagine", {**request, "character": "Pip"}, user_id=1)
        plain_pixels, pip_pixels = page_pixels(store, plain.id), page_pixels(store, pip.id)
        assert np.abs(pip_pixels - plain_pixels).mean() > 1.0
        vary = store.enqueue("vary", {"index": 0, "seed": 8, "strength": "strong"}, user_id=1, parent_id=pip.id)
        upscale = store.enqueue("upscale", {"index": 0, "mode": "chain", "seed": 8}, user_id=1, parent_id=pip.id)
        for job in (vary, upscale):
            done = finished(store, job.id)
            assert done.status is JobStatus.SUCCEEDED, done.error
            picture = next(a for a in store.artifacts(job.id) if a.kind.value == "image")
            assert read_png_parameters(artifact_image(picture)).extra["Character"] == "Pip"
