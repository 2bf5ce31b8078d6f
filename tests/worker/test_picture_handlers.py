"""The picture job handlers run by a real worker on the tiny models: an image prompt as a guide and as a start,
/blend and a remixed variation, each reading its pictures from the job store (/describe: ``tests/bot/test_e2e.py``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from storyloom.domain.parameters import read_png_parameters
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.queue import ArtifactKind, JobStatus, JobStore
from storyloom.queue.job import JobInput
from storyloom.worker.registry import build_handlers
from storyloom.worker.testing import worker_in_thread
from tests.support.images import artifact_image, noisy_png, png
from tests.support.jobs import finished, finished_somehow


def picture(seed: int) -> JobInput:
    return JobInput(0, f"p{seed}.png", "image/png", noisy_png(80, 64, seed=seed))


def images(store: JobStore, job_id: int) -> list[np.ndarray]:
    found = [a for a in store.artifacts(job_id) if a.kind is ArtifactKind.IMAGE]
    return [np.asarray(artifact_image(a).convert("RGB"), dtype=np.int16) for a in found]


def test_picture_jobs_on_tiny_models(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 3}, queue={"heartbeat_seconds": 0.2})
    request = {"prompt": "a red fox", "seed": 5, "num_inference_steps": 3}
    with JobStore.from_config(config) as store:
        with worker_in_thread(config, handlers=build_handlers()):
            plain = store.enqueue("imagine", request, user_id=1)
            guided = store.enqueue("imagine", {**request, "image_mode": "guide"}, user_id=1, inputs=[picture(1)])
            start = store.enqueue(
                "imagine", {**request, "image_mode": "start", "image_weight": 0.6}, user_id=1, inputs=[picture(2)]
            )
            blend = store.enqueue(
                "blend",
                {"seed": 5},
                user_id=1,
                inputs=[picture(1), JobInput(1, "p3.png", "image/png", picture(3).data)],
            )
            for job in (plain, guided, start, blend):
                finished(store, job.id)
            remixed = store.enqueue(
                "vary", {"index": 0, "seed": 9, "prompt": "a blue owl", "negative_prompt": "fog"}, user_id=1,
                parent_id=plain.id,
            )  # fmt: skip
            finished(store, remixed.id)

        assert np.abs(images(store, guided.id)[0] - images(store, plain.id)[0]).mean() > 1.0

        started = [artifact_image(a) for a in store.artifacts(start.id) if a.kind is ArtifactKind.IMAGE]
        assert len(started) == 4 and all(image.size == (80, 64) for image in started)  # the start picture's size
        assert read_png_parameters(started[0]).denoising_strength == 0.4  # a weight of 0.6 keeps 60% of the picture

        blended = [artifact_image(a) for a in store.artifacts(blend.id) if a.kind is ArtifactKind.IMAGE]
        parameters = read_png_parameters(blended[0])
        assert parameters.prompt == "best quality, high quality" and parameters.extra["IP-Adapter images"] == "2"

        varied = read_png_parameters(artifact_image(store.artifact(remixed.id, 0)))
        assert (varied.prompt, varied.negative_prompt) == ("a blue owl", "fog")


def test_a_job_whose_picture_is_bad_or_gone_fails_with_a_clear_message(tmp_path: Path, tiny_models) -> None:
    config = make_tiny_config(tmp_path, tiny_models, image={"steps": 2}, queue={"heartbeat_seconds": 0.2})
    bad = JobInput(0, "tiny.png", "image/png", png(4, 4, (1, 2, 3)))
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        small = store.enqueue("describe", {}, user_id=1, inputs=[bad])
        missing = store.enqueue("imagine", {"prompt": "a fox", "image_mode": "guide"}, user_id=1)
        failed = [finished_somehow(store, job.id) for job in (small, missing)]
    assert [job.status for job in failed] == [JobStatus.FAILED] * 2
    assert "tiny.png is only 4×4 pixels" in failed[0].error.message
    assert "needs a picture" in failed[1].error.message
