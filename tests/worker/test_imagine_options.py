"""An imagine job with a named checkpoint, chaos, tiling and a prompt schedule, run by a real worker on the tiny
models: the picture's parameters say how it was drawn, and the checkpoint stays warm beside the base model."""

from __future__ import annotations

from pathlib import Path

from storyloom.domain.parameters import read_png_parameters
from storyloom.models.runtime.tiny import TINY_SEED, build_tiny_sd15, make_tiny_config
from storyloom.queue import ArtifactKind, JobStore
from storyloom.worker.registry import build_handlers
from storyloom.worker.testing import wait_until, worker_in_thread
from tests.support.images import artifact_image
from tests.support.jobs import finished


def test_imagine_with_a_named_model_chaos_and_tiling(tmp_path: Path, tiny_models) -> None:
    other = tmp_path / "other-sd15"
    build_tiny_sd15(other, seed=TINY_SEED + 1)
    config = make_tiny_config(tmp_path / "data", tiny_models, image={"steps": 4}, queue={"heartbeat_seconds": 0.2})
    config = config.model_copy(
        update={"models": config.models.model_copy(update={"checkpoints": {"other": str(other)}})}
    )
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        request = {"prompt": "a [red:blue:0.5] fox AND a hill:0.5", "seed": 5, "num_images": 2}
        plain = finished(store, store.enqueue("imagine", request, user_id=1).id)
        named = store.enqueue("imagine", {**request, "model": "other", "chaos": 40, "tile": True}, user_id=1)
        finished(store, named.id)
        vary = store.enqueue("vary", {"index": 0, "seed": 3, "strength": "strong"}, user_id=2, parent_id=named.id)
        finished(store, vary.id)
        upscale = store.enqueue("upscale", {"index": 0, "mode": "chain", "seed": 1}, user_id=2, parent_id=named.id)
        finished(store, upscale.id)
        wait_until(
            lambda: (
                {"txt2img", "txt2img:other", "variations:other", "upscaler:other"}
                <= set(store.list_workers()[0].models)
            ),
            5,
            what="the heartbeat to report both checkpoints warm",
        )
        [base_image, *_] = [a for a in store.artifacts(plain.id) if a.kind is ArtifactKind.IMAGE]
        [named_image, *_] = [a for a in store.artifacts(named.id) if a.kind is ArtifactKind.IMAGE]
        [varied, *_] = [a for a in store.artifacts(vary.id) if a.kind is ArtifactKind.IMAGE]
        [upscaled] = store.artifacts(upscale.id)
    # A variation and an upscale's re-drawing keep the picture's model.
    assert read_png_parameters(artifact_image(varied)).model == "other"
    assert read_png_parameters(artifact_image(upscaled)).model == "other"
    base_params = read_png_parameters(artifact_image(base_image))
    params = read_png_parameters(artifact_image(named_image))
    assert params.prompt == base_params.prompt == "a [red:blue:0.5] fox AND a hill:0.5"
    assert params.model == "other" and len(params.extra["Model hash"]) == 10
    assert (params.extra["Chaos"], params.extra["Tiling"]) == ("40", "True")
    assert "Chaos" not in base_params.extra and base_params.model != "other"
    assert artifact_image(named_image).tobytes() != artifact_image(base_image).tobytes()
