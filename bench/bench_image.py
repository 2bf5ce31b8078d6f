"""``image_overhead_ratio``: what storyloom's txt2img adds on top of a bare diffusers call.

Method. One tiny SD-1.5-shaped model is built in a temporary directory. The candidate is
``Txt2Img`` (A1111 prompt parsing, compel conditioning, seeds, parameters, output batch); the baseline is a
plain ``StableDiffusionPipeline`` loaded from the same directory with the same DPM++ 2M Karras scheduler,
called with the prompt strings. Both: same prompt and negative prompt, 8 steps, batch of 4 with one CPU
generator per image, 32×32, guidance 7, safety checker off, PIL output. Both are warmed up, then called in
alternating order for several rounds (one torch thread, so neither run fights the other for the cores);
the result is the median of the per-round time ratios. Target ≤ 1.05.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

TARGET = 1.05
STEPS = 8
BATCH = 4
SIZE = 32
ROUNDS = 10
SEED = 1234
PROMPT = "a watercolor painting of a small orange cat sitting in a sunny garden, soft light"
NEGATIVE = "blurry, low quality, deformed"


def run() -> list[dict]:
    import numpy as np

    from bench.common import interleaved_ratio, one_thread, record

    with one_thread():
        with tempfile.TemporaryDirectory(prefix="bench-image-") as tmp:
            candidate, baseline = _build(Path(tmp))
            ours, bare = candidate(), baseline()  # warm-up (and a check that both do the same work)
            candidate()
            baseline()
            ratio, ours_seconds, bare_seconds = interleaved_ratio(candidate, baseline, ROUNDS)
    max_difference = max(
        int(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max()) for a, b in zip(ours, bare)
    )
    return [
        record(
            "image_overhead_ratio",
            ratio,
            "ratio",
            f"<= {TARGET}",
            ratio <= TARGET,
            storyloom_seconds=round(ours_seconds, 4),
            diffusers_seconds=round(bare_seconds, 4),
            steps=STEPS,
            batch=BATCH,
            size=f"{SIZE}x{SIZE}",
            rounds=ROUNDS,
            max_pixel_difference=max_difference,
        )
    ]


def _build(root: Path):
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    from storyloom.config import load_config
    from storyloom.models.image.txt2img import Txt2Img
    from storyloom.models.runtime.tiny import build_tiny_sd15

    model_dir = root / "sd15"
    build_tiny_sd15(model_dir)
    config = load_config(
        None,
        profile="tiny",
        environ={},
        overrides={
            "paths": {"data_dir": str(root / "data")},
            "models": {"image": str(model_dir)},
            "image": {"safety_checker": False, "steps": STEPS, "batch_size": BATCH},
        },
    )
    txt2img = Txt2Img.from_config(config)

    pipe = StableDiffusionPipeline.from_pretrained(
        str(model_dir), safety_checker=None, requires_safety_checker=False, use_safetensors=True
    )
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, use_karras_sigmas=True, algorithm_type="dpmsolver++"
    )
    pipe.set_progress_bar_config(disable=True)

    def candidate():
        return txt2img(PROMPT, NEGATIVE, seed=SEED, width=SIZE, height=SIZE).images

    def baseline():
        generators = [torch.Generator(device="cpu").manual_seed(SEED + i) for i in range(BATCH)]
        return pipe(
            PROMPT,
            negative_prompt=NEGATIVE,
            num_images_per_prompt=BATCH,
            generator=generators,
            num_inference_steps=STEPS,
            guidance_scale=7.0,
            width=SIZE,
            height=SIZE,
            output_type="pil",
        ).images

    return candidate, baseline
