"""What every benchmark reports: one record per measured quantity."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable, Iterator


def record(name: str, value: float, unit: str, target: str, holds: bool, **extra) -> dict:
    """One result line: ``target`` is a readable condition such as ``"<= 1.05"``."""
    return {
        "name": name,
        "value": round(float(value), 4),
        "unit": unit,
        "target": target,
        "holds": bool(holds),
        **extra,
    }


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread inside the block, as it was afterwards: the machine is shared, and one thread on both
    sides of a ratio keeps them comparable."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(function: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved_ratio(
    candidate: Callable[[], object], baseline: Callable[[], object], rounds: int
) -> tuple[float, float, float]:
    """Median of per-round time ratios candidate/baseline, alternating the two so noise hits both.

    Returns (median ratio, median candidate seconds, median baseline seconds)."""
    ratios, cand, base = [], [], []
    for index in range(rounds):
        pair = (candidate, baseline) if index % 2 == 0 else (baseline, candidate)
        times = {id(f): timed(f) for f in pair}
        cand.append(times[id(candidate)])
        base.append(times[id(baseline)])
        ratios.append(cand[-1] / base[-1])
    return median(ratios), median(cand), median(base)
