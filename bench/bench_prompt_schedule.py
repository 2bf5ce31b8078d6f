"""``prompt_schedule_overhead_ratio``: what prompt editing costs on top of a plain prompt.

Method. One tiny SD-1.5-shaped model is built in a temporary directory and loaded once into ``Txt2Img``. The
candidate draws with a prompt-editing prompt ``[A:B:0.5]`` (two texts encoded, the conditioning swapped by the
step callback halfway); the baseline draws with the plain prompt ``A``. Both: 30 steps, batch of 4, 64×64,
guidance 7, same seed, safety checker off. Both are warmed up, then called in alternating order for several
rounds (one torch thread); the result is the median of the per-round time ratios. Target ≤ 1.05.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

TARGET = 1.05
STEPS = 30
BATCH = 4
SIZE = 64
ROUNDS = 6
SEED = 1234
FIRST = "a watercolor painting of a small orange cat sitting in a sunny garden, soft light"
SECOND = "a pencil drawing of a big black dog standing on a snowy hill, harsh light"
NEGATIVE = "blurry, low quality, deformed"


def run() -> list[dict]:
    from bench.common import interleaved_ratio, one_thread, record

    with one_thread():
        with tempfile.TemporaryDirectory(prefix="bench-schedule-") as tmp:
            txt2img = _build(Path(tmp))

            def candidate():
                return txt2img(f"[{FIRST}:{SECOND}:0.5]", NEGATIVE, seed=SEED, width=SIZE, height=SIZE).images

            def baseline():
                return txt2img(FIRST, NEGATIVE, seed=SEED, width=SIZE, height=SIZE).images

            edited, plain = candidate(), baseline()  # warm-up (and a check that editing changed the picture)
            ratio, edited_seconds, plain_seconds = interleaved_ratio(candidate, baseline, ROUNDS)
    changed = any(a.tobytes() != b.tobytes() for a, b in zip(edited, plain))
    return [
        record(
            "prompt_schedule_overhead_ratio",
            ratio,
            "ratio",
            f"<= {TARGET}",
            ratio <= TARGET and changed,
            scheduled_seconds=round(edited_seconds, 4),
            plain_seconds=round(plain_seconds, 4),
            steps=STEPS,
            batch=BATCH,
            size=f"{SIZE}x{SIZE}",
            rounds=ROUNDS,
            picture_changed=changed,
        )
    ]


def _build(root: Path):
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
    return Txt2Img.from_config(config)
