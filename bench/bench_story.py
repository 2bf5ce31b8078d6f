"""Story engine benchmarks on the tiny LM (CPU).

- ``story_tokens_ratio``: tokens/s through ``StoryWriter.generate`` over tokens/s of a bare
  ``model.generate`` with the same model, inputs and sampling settings; a fixed number of new tokens
  (``min_new_tokens = max_new_tokens``); rounds interleaved; median. The writer must stay a thin layer.
- ``story_plan_ms_per_page``: planning time per page (JSON request, repair, retry, fallback).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import interleaved_ratio, median, record

NEW_TOKENS = 48
ROUNDS = 15
PLAN_PAGES = [
    "Bhna the cat lived in a cozy house by the sea. Every morning she watched the boats.",
    "One day a friendly dog knocked on the door and asked her to come on an adventure.",
    "They climbed a green hill and found a kind dragon asleep in a garden of flowers.",
]


def run() -> list[dict]:
    import torch

    from storyloom.config import load_config
    from storyloom.models.story_planner import StoryPlanner
    from storyloom.models.story_prompts import story_request
    from storyloom.models.story_writer import StoryWriter
    from storyloom.models.tiny import make_tiny_models

    torch.set_num_threads(1)  # the machine is shared; one thread keeps the two sides comparable
    with tempfile.TemporaryDirectory() as directory:
        models = make_tiny_models(Path.home() / ".cache" / "storyloom-tests" / "tiny-models")
        config = load_config(None, profile="tiny", environ={}, overrides={"paths": {"data_dir": directory}, "models": {"story": str(models.llama)}})
        writer = StoryWriter.from_config(config)

        base = story_request("A little cat named Bhna meets a kind dragon.", prompt_format="chat", pages=4, max_new_tokens=NEW_TOKENS)
        request = type(base)(base.prompt, system=base.system, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
        inputs = writer.encode(request)
        kwargs = writer.generation_kwargs(request, int(inputs["input_ids"].shape[1]))

        def through_writer() -> None:
            result = writer.generate(request, seed=1)
            assert result.new_tokens == NEW_TOKENS

        def bare_generate() -> None:
            torch.manual_seed(1)
            with torch.inference_mode():
                output = writer.model.generate(**inputs, **kwargs)
            assert output.shape[1] - inputs["input_ids"].shape[1] == NEW_TOKENS

        def with_progress_bar() -> None:
            writer.generate(request, seed=1, progress=lambda step: None, should_cancel=lambda: False)

        through_writer(), bare_generate()  # warm-up
        time_ratio, writer_seconds, bare_seconds = interleaved_ratio(through_writer, bare_generate, ROUNDS)
        tokens_ratio = 1.0 / time_ratio
        # The CLI and the worker pass progress and cancel callbacks (the only per-token Python code).
        progress_ratio = 1.0 / interleaved_ratio(with_progress_bar, bare_generate, ROUNDS)[0]

        planner = StoryPlanner(writer, temperature=config.story.plan_temperature)
        plan_seconds = []
        for seed in range(2):
            start = time.perf_counter()
            planner(PLAN_PAGES, summary="Bhna the cat meets a dragon.", seed=seed)
            plan_seconds.append(time.perf_counter() - start)
        ms_per_page = 1000 * median(plan_seconds) / len(PLAN_PAGES)

    return [
        record(
            "story_tokens_ratio", tokens_ratio, "x", ">= 0.95", tokens_ratio >= 0.95,
            writer_tokens_per_second=round(NEW_TOKENS / writer_seconds, 1),
            bare_tokens_per_second=round(NEW_TOKENS / bare_seconds, 1),
            new_tokens=NEW_TOKENS, rounds=ROUNDS, with_progress_ratio=round(progress_ratio, 4),
        ),
        record("story_plan_ms_per_page", ms_per_page, "ms", "none", True, pages=len(PLAN_PAGES)),
    ]
