"""bench/run.py's self-check: a benchmark whose value is not a finite, plausible number does not hold."""

from __future__ import annotations

import math

from bench.common import record
from bench.run import self_check


def test_a_negative_nan_or_absurd_value_never_holds() -> None:
    fine = record("esrgan_tile_memory_ratio", 0.99, "ratio", "<= 1.5", True)
    assert self_check(fine) == fine
    for value in (-53477376.0, math.nan, math.inf, 0.0, 5e6):
        checked = self_check(record("esrgan_tile_memory_ratio", value, "ratio", "<= 1.5", value <= 1.5))
        assert checked["holds"] is False and "self_check" in checked, value
        assert checked["value"] is None or math.isfinite(checked["value"])  # printable as JSON


def test_a_record_may_narrow_its_range_and_unknown_units_must_not_be_negative() -> None:
    narrowed = record("bot_rss_mb", 900.0, "MB", "<= 150", False, plausible=[10, 500])
    assert "outside the plausible range 10 to 500" in self_check(narrowed)["self_check"]
    assert self_check(record("queue_depth", 3.0, "jobs", "none", True))["holds"] is True
    assert self_check(record("queue_depth", -1.0, "jobs", "none", True))["holds"] is False
