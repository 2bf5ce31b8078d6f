"""``reference_character_overhead_ratio`` and ``consistent_attention_overhead_ratio``: what drawing with a
character's reference picture and with a story's shared self-attention cost.

Method. The shared tiny models (an SD-1.5-shaped pipeline, the IP-Adapter plus and its image encoder) are
loaded once into ``Txt2Img``. One torch thread; warm-up calls first; then candidate and baseline alternate for
several rounds and the result is the median of the per-round time ratios.

- ``reference_character_overhead_ratio``: the candidate is storyloom's whole path for one job drawing with one
  reference character: ``drawing_characters`` (embedding the picture, loading the adapter into the shared UNet,
  unloading it after) around a ``Txt2Img`` call; the baseline is the bare diffusers ``StableDiffusionPipeline``
  with the same adapter already loaded, given the same image embeddings and the same prompt, seeds and
  settings (30 steps, batch of 4, 64×64, guidance 7, safety checker off). Target ≤ 1.05. ``in_block_ratio``
  is the same call inside an already entered block (the adapter's loading left out).
- ``consistent_attention_overhead_ratio``: a story page (``draw_page``, one picture, 30 steps, 64×64) drawn
  sharing self-attention with a reference picture (the block entered per page, as the worker does) against the
  same page drawn plainly. The extra reference item makes each UNet call three items instead of two and doubles
  the keys of every self-attention, so about 1.5× is expected. Target ≤ 1.5, reported whether or not it holds.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

REFERENCE_TARGET = 1.05
CONSISTENT_TARGET = 1.5
STEPS = 30
BATCH = 4
SIZE = 64
ROUNDS = 6
SEED = 1234
WEIGHT = 0.6
PROMPT = "a watercolor painting of a small orange cat sitting in a sunny garden, soft light"
NEGATIVE = "blurry, low quality, deformed"


def run() -> list[dict]:
    from bench.common import one_thread

    with one_thread():
        with tempfile.TemporaryDirectory(prefix="bench-references-") as tmp:
            txt2img = _build(Path(tmp))
            return [_reference_overhead(txt2img), _consistent_overhead(txt2img)]


def _reference_overhead(txt2img) -> dict:
    import diffusers
    import torch
    from PIL import Image

    from bench.common import interleaved_ratio, record
    from storyloom.models.image.references import PageCharacter, character_adapter, drawing_characters

    picture = Image.linear_gradient("L").convert("RGB").resize((96, 96))
    cast = [PageCharacter("Bhna", "whole", picture, WEIGHT)]
    adapter = character_adapter(txt2img)
    embeds = adapter.embed_each([picture]).for_pipeline(7.0)
    # The bare pipeline has its own copy of the weights, with the same adapter loaded into it once.
    bare = diffusers.StableDiffusionPipeline.from_pretrained(txt2img.config.models.image, safety_checker=None)
    bare.scheduler = type(txt2img.pipe.scheduler).from_config(txt2img.pipe.scheduler.config)
    bare.set_progress_bar_config(disable=True)
    bare.register_modules(image_encoder=adapter.encoder)
    bare.load_ip_adapter(adapter.weights, subfolder="", weight_name="", image_encoder_folder=None)
    bare.set_ip_adapter_scale(WEIGHT)

    def storyloom_job():
        with drawing_characters(txt2img, cast):
            return storyloom_call()

    def storyloom_call():
        return txt2img(PROMPT, NEGATIVE, seed=SEED, width=SIZE, height=SIZE, num_images=BATCH, guidance_scale=7.0)

    def bare_call():
        generators = [torch.Generator().manual_seed(SEED + i) for i in range(BATCH)]
        return bare(
            PROMPT, negative_prompt=NEGATIVE, num_inference_steps=STEPS, guidance_scale=7.0, width=SIZE,
            height=SIZE, num_images_per_prompt=BATCH, generator=generators, ip_adapter_image_embeds=[embeds],
        ).images  # fmt: skip

    plain = storyloom_call().images
    guided = storyloom_job().images
    bare_call()
    ratio, job_seconds, bare_seconds = interleaved_ratio(storyloom_job, bare_call, ROUNDS)
    with drawing_characters(txt2img, cast):
        in_block, _, _ = interleaved_ratio(storyloom_call, bare_call, ROUNDS)
    changed = any(a.tobytes() != b.tobytes() for a, b in zip(guided, plain))
    return record(
        "reference_character_overhead_ratio",
        ratio,
        "ratio",
        f"<= {REFERENCE_TARGET}",
        ratio <= REFERENCE_TARGET and changed,
        storyloom_seconds=round(job_seconds, 4),
        bare_seconds=round(bare_seconds, 4),
        in_block_ratio=round(in_block, 4),
        adapter=adapter.name,
        steps=STEPS,
        batch=BATCH,
        size=f"{SIZE}x{SIZE}",
        rounds=ROUNDS,
        picture_changed=changed,
    )


def _consistent_overhead(txt2img) -> dict:
    from PIL import Image

    from bench.common import interleaved_ratio, record
    from storyloom.domain.story.plan import PagePlan
    from storyloom.models.image.references import drawing_characters
    from storyloom.models.story.pipeline import draw_page

    page = PagePlan(
        number=2, chapter=1, text="The cat walks home.", scene="", prompt=PROMPT, negative_prompt=NEGATIVE, seed=SEED
    )
    reference = Image.linear_gradient("L").convert("RGB").resize((SIZE, SIZE))

    def shared_page():
        with drawing_characters(txt2img, [], shared_attention=reference):
            return draw_page(txt2img, page).image

    def plain_page():
        return draw_page(txt2img, page).image

    shared, plain = shared_page(), plain_page()
    ratio, shared_seconds, plain_seconds = interleaved_ratio(shared_page, plain_page, ROUNDS)
    changed = shared.tobytes() != plain.tobytes()
    return record(
        "consistent_attention_overhead_ratio",
        ratio,
        "ratio",
        f"<= {CONSISTENT_TARGET}",
        ratio <= CONSISTENT_TARGET and changed,
        shared_seconds=round(shared_seconds, 4),
        plain_seconds=round(plain_seconds, 4),
        steps=STEPS,
        size=f"{SIZE}x{SIZE}",
        rounds=ROUNDS,
        picture_changed=changed,
    )


def _build(root: Path):
    from storyloom.models.image.txt2img import Txt2Img
    from storyloom.models.runtime.loading import ModelCache
    from storyloom.models.runtime.tiny import make_tiny_config, shared_tiny_models

    config = make_tiny_config(
        root / "data", shared_tiny_models(), image={"safety_checker": False, "steps": STEPS, "batch_size": BATCH}
    )
    return Txt2Img.from_config(config, ModelCache())
