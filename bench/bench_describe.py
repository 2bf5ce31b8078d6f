"""``describe_overhead_ratio``: what storyloom's /describe job adds on top of the bare BLIP and CLIP calls.

Method. Tiny seeded BLIP and CLIP models are built in a temporary directory and loaded once; both sides use
the same loaded models. The candidate is the worker's ``describe`` handler on a queued job: it reads the
picture from the job store, checks and decodes it, captions it, ranks the shipped word lists with CLIP,
composes and ranks four prompts and returns ``describe.json``. The baseline does the same work with plain
Pillow and transformers calls on the same PNG bytes: ``Image.open`` and RGB, BLIP ``generate`` and decode, CLIP
image features,
similarities against the word lists' text features (computed once, as the candidate keeps them), the four
prompts encoded and ranked. Both are warmed up, then called in alternating order for several rounds (one
torch thread); the result is the median of the per-round time ratios. Target ≤ 1.10.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

TARGET = 1.10
ROUNDS = 21
SUGGESTIONS = 4


def run() -> list[dict]:
    from bench.common import interleaved_ratio, one_thread, record

    with one_thread():
        with tempfile.TemporaryDirectory(prefix="bench-describe-") as tmp:
            candidate, baseline, store = _build(Path(tmp))
            try:
                ours, bare = candidate(), baseline()  # warm-up, and a check that both make the same prompts
                ratio, ours_seconds, bare_seconds = interleaved_ratio(candidate, baseline, ROUNDS)
            finally:
                store.close()
    return [
        record(
            "describe_overhead_ratio",
            ratio,
            "ratio",
            f"<= {TARGET}",
            ratio <= TARGET,
            storyloom_seconds=round(ours_seconds, 4),
            bare_seconds=round(bare_seconds, 4),
            rounds=ROUNDS,
            same_prompts=ours == bare,
        )
    ]


def _build(root: Path):
    import json

    import torch
    from PIL import Image

    from storyloom.config import QueueConfig
    from storyloom.models.image.describe import CATEGORIES, FLAVORS_PER_PROMPT, Describer
    from storyloom.models.runtime.tiny import TinyModelPaths, build_tiny_blip, build_tiny_clip, make_tiny_config
    from storyloom.queue.job import JobInput, JobKind
    from storyloom.queue.params import DescribeParams
    from storyloom.queue.store import JobStore
    from storyloom.worker.context import JobContext
    from storyloom.worker.handlers.images import describe
    from storyloom.worker.resources import ModelResources, ModelSpec

    paths = TinyModelPaths(root / "models")
    build_tiny_blip(paths.blip)
    build_tiny_clip(paths.clip)
    config = make_tiny_config(root / "data", paths)
    describer = Describer.from_config(config)

    rng = torch.Generator().manual_seed(3)
    pixels = (torch.rand(384, 512, 3, generator=rng) * 255).to(torch.uint8).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    data = buffer.getvalue()

    store = JobStore.open(root / "jobs.db", QueueConfig())
    job = store.enqueue(JobKind.DESCRIBE, {}, user_id=1, inputs=[JobInput(0, "photo.png", "image/png", data)])
    resources = ModelResources(
        config,
        specs={"describer": ModelSpec("describer", "describe", lambda c, cache: describer)},
        budget_bytes=1 << 40,
        memory_probe=lambda: 0,
    )
    context = JobContext(
        job=job,
        params=DescribeParams(),
        config=config,
        resources=resources,
        progress=lambda update: None,
        should_cancel=lambda: False,
        lookup_artifact=lambda job_id, index, kind: None,
        lookup_inputs=lambda: store.job_inputs(job.id),
    )

    def candidate() -> list[str]:
        artifact = describe(context).artifacts[0]
        return json.loads(artifact.data)["prompts"]

    blip, blip_processor = describer.captioner, describer.caption_processor
    clip, clip_processor = describer.clip, describer.clip_processor
    terms = describer.terms

    @torch.no_grad()
    def text_features(texts: list[str]) -> torch.Tensor:
        tokens = clip_processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        features = clip.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        features = features if isinstance(features, torch.Tensor) else features.pooler_output
        return features / features.norm(dim=-1, keepdim=True)

    term_features = {category: text_features(terms[category]) for category in CATEGORIES}

    @torch.no_grad()
    def baseline() -> list[str]:
        picture = Image.open(io.BytesIO(data)).convert("RGB")
        inputs = blip_processor(images=picture, return_tensors="pt")
        output = blip.generate(pixel_values=inputs["pixel_values"], max_new_tokens=describer.max_caption_tokens)
        caption = " ".join(blip_processor.decode(output[0], skip_special_tokens=True).split()) or "a picture"
        image = clip.get_image_features(
            pixel_values=clip_processor(images=picture, return_tensors="pt")["pixel_values"]
        )
        image = image if isinstance(image, torch.Tensor) else image.pooler_output
        image = image / image.norm(dim=-1, keepdim=True)
        ranked = {
            category: [
                terms[category][i] for i in torch.argsort((image @ term_features[category].T)[0], descending=True)
            ]
            for category in CATEGORIES
        }
        prompts = []
        for index in range(SUGGESTIONS):
            flavors = ranked["flavors"][index * FLAVORS_PER_PROMPT : (index + 1) * FLAVORS_PER_PROMPT]
            words = [ranked["mediums"][index], ranked["artists"][index], ranked["movements"][index], *flavors]
            prompts.append(", ".join([caption, *words]))
        scores = (image @ text_features(prompts).T)[0]
        return [prompts[i] for i in torch.argsort(scores, descending=True)]

    return candidate, baseline, store
