"""Story engine benchmarks on the tiny LM (CPU).

- ``story_tokens_ratio``: tokens/s through ``StoryWriter.generate`` over tokens/s of a bare
  ``model.generate`` with the same model, inputs and sampling settings; a fixed number of new tokens
  (``min_new_tokens = max_new_tokens``); rounds interleaved (order rotating); median of per-round
  ratios. The writer must stay a thin layer. ``with_progress_ratio`` is the same with progress and
  cancel callbacks, as the CLI and the worker call it.
- ``story_plan_ms_per_page``: planning time per page (JSON request, repair, retry, fallback).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.common import median, record, timed

NEW_TOKENS = 64
ROUNDS = 13
PLAN_PAGES = [
    "Bhna the cat lived in a cozy house by the sea. Every morning she watched the boats.",
    "One day a friendly dog knocked on the door and asked her to come on an adventure.",
    "They climbed a green hill and found a kind dragon asleep in a garden of flowers.",
]


def _rotating_rounds(functions: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds of each function per round; the order rotates every round so drift hits all alike."""
    names = list(functions)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(timed(functions[name]))
    return seconds


def run() -> list[dict]:
    from bench.common import one_thread

    with one_thread():
        return _measure()


def _measure() -> list[dict]:
    import torch

    from storyloom.config import load_config
    from storyloom.models.runtime.tiny import build_tiny_llama
    from storyloom.models.story.planner import StoryPlanner
    from storyloom.models.story.prompts import story_request
    from storyloom.models.story.writer import StoryWriter

    with tempfile.TemporaryDirectory() as directory:
        llama = Path(directory) / "llama"
        build_tiny_llama(llama)  # seeded: the same model on every run
        overrides = {"paths": {"data_dir": directory}, "models": {"story": str(llama)}}
        config = load_config(None, profile="tiny", environ={}, overrides=overrides)
        writer = StoryWriter.from_config(config)

        summary = "A little cat named Bhna meets a kind dragon."
        base = story_request(summary, prompt_format="chat", pages=4, max_new_tokens=NEW_TOKENS)
        request = replace(base, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
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

        through_writer(), bare_generate(), with_progress_bar()  # warm-up
        # The CLI and the worker pass progress and cancel callbacks (the only per-token Python code),
        # so that path is measured in the same rounds.
        sides = {"writer": through_writer, "bare": bare_generate, "progress": with_progress_bar}
        seconds = _rotating_rounds(sides, ROUNDS)
        tokens_ratio = median([bare / cand for bare, cand in zip(seconds["bare"], seconds["writer"])])
        progress_ratio = median([bare / cand for bare, cand in zip(seconds["bare"], seconds["progress"])])
        writer_seconds, bare_seconds = median(seconds["writer"]), median(seconds["bare"])

        planner = StoryPlanner(writer, temperature=config.story.plan_temperature)
        # The tiny LM writes garbage, so this is the worst case: two full-length attempts, then the fallback.
        plan_seconds = timed(lambda: planner(PLAN_PAGES, summary="Bhna the cat meets a dragon.", seed=0))
        ms_per_page = 1000 * plan_seconds / len(PLAN_PAGES)

    return [
        record(
            "story_tokens_ratio",
            tokens_ratio,
            "x",
            ">= 0.95",
            tokens_ratio >= 0.95,
            writer_tokens_per_second=round(NEW_TOKENS / writer_seconds, 1),
            bare_tokens_per_second=round(NEW_TOKENS / bare_seconds, 1),
            new_tokens=NEW_TOKENS,
            rounds=ROUNDS,
            with_progress_ratio=round(progress_ratio, 4),
        ),
        record("story_plan_ms_per_page", ms_per_page, "ms", "none", True, pages=len(PLAN_PAGES)),
    ]
