"""The real job handlers, run by a real worker: tiny Stable Diffusion models for the image commands, the story
engine's scripted language model for stories (the tiny LM takes minutes to write a story on 2 CPU cores)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from storyloom.domain.parameters import read_png_parameters
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.queue import ArtifactKind, JobStatus, JobStore, NewArtifact, NewCharacter
from storyloom.worker.registry import build_handlers
from storyloom.worker.resources import ModelResources, ModelSpec
from storyloom.worker.testing import wait_until, worker_in_thread
from tests.support.images import artifact_image
from tests.support.jobs import finished, finished_somehow


def test_imagine_vary_and_upscale_on_tiny_models(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 3}, queue={"heartbeat_seconds": 0.2})
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        request = {"prompt": "a ((red)) fox", "negative_prompt": "blurry", "seed": 5, "num_inference_steps": 2}
        grid_job = store.enqueue("imagine", request, user_id=1)
        finished(store, grid_job.id)
        vary_job = store.enqueue(
            "vary", {"index": 1, "strength": "strong", "seed": 9}, user_id=2, parent_id=grid_job.id
        )
        upscale_job = store.enqueue("upscale", {"index": 0, "mode": "esrgan"}, user_id=3, parent_id=grid_job.id)
        finished(store, vary_job.id)
        finished(store, upscale_job.id)
        expected = {"txt2img", "variations", "upscaler"}
        wait_until(
            lambda: expected <= set(store.list_workers()[0].models), 5, what="the heartbeat to report the models"
        )

        artifacts = store.artifacts(grid_job.id)
        assert [(a.kind, a.index) for a in artifacts] == [(ArtifactKind.GRID, 0)] + [
            (ArtifactKind.IMAGE, i) for i in range(4)
        ]
        assert artifact_image(artifacts[0]).size == (128, 128)  # 2x2 grid of 64x64
        for index, artifact in enumerate(artifacts[1:]):
            params = read_png_parameters(artifact_image(artifact))
            assert (params.prompt, params.negative_prompt, params.seed, params.steps) == (
                "a ((red)) fox",
                "blurry",
                5 + index,
                2,
            )
            assert artifact.metadata["seed"] == 5 + index and artifact.mime == "image/png"

        variations = [a for a in store.artifacts(vary_job.id) if a.kind is ArtifactKind.IMAGE]
        assert len(variations) == 4 and all(artifact_image(a).size == (64, 64) for a in variations)
        assert read_png_parameters(artifact_image(variations[0])).prompt == "a ((red)) fox"  # taken from the source PNG
        assert variations[0].metadata["seed"] == 9

        (upscaled,) = store.artifacts(upscale_job.id)
        assert artifact_image(upscaled).size == (256, 256) and upscaled.metadata["mode"] == "esrgan"
        assert read_png_parameters(artifact_image(upscaled)).extra["Upscale"] == "esrgan 4x"


def test_a_bad_value_only_the_pipeline_can_judge_fails_the_job_with_its_message(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(tmp_path, tiny_models)
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        job = store.enqueue("imagine", {"prompt": "a fox", "aspect_ratio": "0:1"}, user_id=1)
        failed = finished_somehow(store, job.id)
    assert failed.status is JobStatus.FAILED and failed.error.type == "InvalidInput"
    assert "0:1" in failed.error.message and "Traceback" not in failed.error.message


STORY = (
    "Title: Bhna and the Moon\n\nBhna the cat built a little boat.\n\n"
    "She sailed across the sea at night.\n\nThe moon came down to say hello.\n\nThen Bhna sailed home to sleep."
)
PLAN = json.dumps(
    {
        "title": "Bhna and the Moon",
        "characters": [{"name": "Bhna", "description": "a small orange cat"}],
        "pages": [{"page": n, "scene": f"scene {n} on the sea", "characters": ["Bhna"]} for n in range(1, 5)],
    }
)


def scripted_story_resources(config) -> ModelResources:
    from storyloom.models.story.testing import FakeTxt2Img, ScriptedLanguageModel

    lm = ScriptedLanguageModel([lambda request: STORY if request.use_adapter else PLAN])
    pictures = FakeTxt2Img()
    specs = {
        "story_writer": ModelSpec("story_writer", "language", lambda config, cache: lm),
        "txt2img": ModelSpec("txt2img", "image", lambda config, cache: pictures),
    }
    return ModelResources(
        config, specs=specs, budget_bytes=100, estimates={"language": 1, "image": 1}, memory_probe=lambda: 0
    )


def test_a_story_enqueues_one_page_job_per_page_and_each_page_gets_its_picture(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(tmp_path, tiny_models)
    resources = scripted_story_resources(config)
    with (
        JobStore.from_config(config) as store,
        worker_in_thread(config, handlers=build_handlers(), resources=resources),
    ):
        request = {"summary": "Bhna the cat sails to the moon", "pages": 3, "seed": 11, "safety_checker": True}
        story = store.enqueue("story", request, user_id=1, channel_id=5)
        finished(store, story.id)
        pages = store.children(story.id)
        assert [p.page_index for p in pages] == [0, 1, 2]
        assert all(p.params["safety_checker"] is True for p in pages)  # the story's safety setting reaches each page
        for page in pages:
            finished(store, page.id)

        document, card, *portraits = store.artifacts(story.id)  # the plan, then the cast card and its portraits
        plan = json.loads(document.data)
        assert card.kind is ArtifactKind.GRID and [p.metadata["character"] for p in portraits] == [
            member["name"] for member in plan["cast"]
        ]
        assert document.name == "story.json" and document.metadata["title"] == plan["title"] and len(plan["pages"]) == 3
        for page, planned in zip(pages, plan["pages"]):
            asked = (page.params["prompt"], page.params["seed"], page.params["text"])
            assert asked == (planned["prompt"], planned["seed"], planned["text"])
            picture, text = store.artifacts(page.id)
            assert (
                picture.kind is ArtifactKind.IMAGE
                and read_png_parameters(artifact_image(picture)).seed == planned["seed"]
            )
            assert text.data.decode() == planned["text"]

        request = {"summary": "Bhna comes home", "pages": 2, "continue_from": story.id}
        sequel = store.enqueue("story", request, user_id=1, channel_id=5)
        finished(store, sequel.id)
        new_pages = store.children(sequel.id)
        assert [p.page_index for p in new_pages] == [3, 4]
        assert len(json.loads(store.artifacts(sequel.id)[0].data)["pages"]) == 5


def test_a_source_image_that_vanished_fails_the_job_before_any_model_loads(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(tmp_path, tiny_models)
    no_models = ModelResources(config, specs={})  # loading anything would be a KeyError, not this message
    with JobStore.from_config(config) as store:
        parent = store.enqueue("imagine", {"prompt": "a fox"}, user_id=1)
        store.claim("setup", ["imagine"])
        png = NewArtifact(ArtifactKind.IMAGE, 0, "image_1.png", "image/png", b"png")
        store.complete(parent.id, "setup", [png])
        vary = store.enqueue("vary", {"index": 0}, user_id=1, parent_id=parent.id)
        sequel = store.enqueue("story", {"summary": "more", "continue_from": parent.id}, user_id=2)
        store.connection.execute("DELETE FROM artifacts WHERE job_id = ?", (parent.id,))
        with worker_in_thread(config, handlers=build_handlers(), resources=no_models):
            ended = [finished_somehow(store, job.id) for job in (vary, sequel)]
    assert [(j.status, j.error.message) for j in ended] == [
        (JobStatus.FAILED, f"the source of this job (job {parent.id}, image 1) no longer exists"),
        (JobStatus.FAILED, f"job {parent.id} has no story to continue"),
    ]


def test_upscaling_a_picture_of_a_character_redraws_it_with_its_lora_and_keeps_its_name(
    tmp_path: Path, tiny_models
) -> None:
    config = make_tiny_config(
        tmp_path, tiny_models, image={"steps": 3}, queue={"heartbeat_seconds": 0.2},
        upscale={"steps": 4, "esrgan_tile": 72, "esrgan_tile_overlap": 8},
    )  # fmt: skip
    lora_path = "characters/mittens/pytorch_lora_weights.safetensors"
    write_tiny_lora((config.paths.data_dir / lora_path).parent, tiny_models)
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        store.add_character(NewCharacter("Mittens", "bhna", "cat", lora_path, guild_id=99))
        request = {"prompt": "Mittens in a garden", "seed": 5, "num_images": 1}
        plain = finished(store, store.enqueue("imagine", request, user_id=7, guild_id=99).id)
        drawn = finished(
            store, store.enqueue("imagine", {**request, "character": "Mittens"}, user_id=7, guild_id=99).id
        )
        upscale = {"index": 0, "mode": "chain", "seed": 3}
        with_lora = finished(store, store.enqueue("upscale", upscale, user_id=7, guild_id=99, parent_id=drawn.id).id)
        store.delete_character("Mittens", guild_id=99)
        without = finished(store, store.enqueue("upscale", upscale, user_id=7, guild_id=99, parent_id=drawn.id).id)
        plain_again = finished(store, store.enqueue("imagine", request, user_id=7, guild_id=99).id)
        base, upscaled, upscaled_without, base_again = (
            artifact_image(store.artifact(job.id, 0)) for job in (plain, with_lora, without, plain_again)
        )

    parameters = read_png_parameters(upscaled)
    # The name stays in the upscaled picture, for a later Vary.
    assert parameters.prompt == "bhna cat in a garden" and parameters.extra["Character"] == "Mittens"
    assert "Character" not in read_png_parameters(upscaled_without).extra  # deleted since: upscaled without it
    difference = np.abs(np.asarray(upscaled, dtype=int) - np.asarray(upscaled_without)).mean()
    assert difference > 0.5  # same source and seed: only the LoRA in the 2x pass differs
    assert np.array_equal(np.asarray(base), np.asarray(base_again))  # the shared base draws exactly as before


def write_tiny_lora(directory: Path, tiny_models) -> Path:
    """A character LoRA on the tiny UNet in the diffusers format, with random (not zero) up-projections so it
    visibly changes what is drawn; made in a moment instead of trained."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    from storyloom.training.subject_lora import LORA_WEIGHT_NAME, UNET_TARGETS

    unet = UNet2DConditionModel.from_pretrained(tiny_models.sd15, subfolder="unet")
    torch.manual_seed(0)
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights=False, target_modules=list(UNET_TARGETS)))
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(directory, unet_lora_layers=layers, safe_serialization=True)
    return directory / LORA_WEIGHT_NAME
