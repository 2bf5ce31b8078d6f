"""Run every benchmark and print one JSON object per line.

Usage: ``python bench/run.py [NAME_SUBSTRING ...]``. Each ``bench/bench_*.py`` module has
``run() -> list[dict]`` returning records made by ``bench.common.record``.

Every record is checked before it is printed: its value must be a finite number within what its unit can
plausibly be (a record may narrow that with ``plausible=[low, high]``). Otherwise the measurement itself
failed, and the record does not hold whatever its target says; ``self_check`` says why."""

from __future__ import annotations

import importlib
import json
import math
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent

# What a measured value can plausibly be, by unit; a unit not listed must at least not be negative.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "ratio": (1e-3, 1e3),
    "x": (1e-3, 1e6),
    "x realtime": (1e-3, 1e6),
    "ms": (1e-3, 3.6e6),
    "s": (1e-3, 86400.0),
    "MB": (1.0, 1e6),
}


def self_check(result: dict) -> dict:
    """``result`` with ``holds`` false (and ``self_check`` saying why) when its value is not a finite number in
    its plausible range."""
    value = result.get("value")
    low, high = result.get("plausible") or PLAUSIBLE.get(result.get("unit", ""), (0.0, math.inf))
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        problem = f"the value {value!r} is not a finite number"
        result = {**result, "value": None}
    elif not low <= value <= high:
        problem = f"the value {value:g} is outside the plausible range {low:g} to {high:g} {result.get('unit', '')}"
    else:
        return result
    return {**result, "holds": False, "self_check": problem.strip()}


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT.parent))
    modules = sorted(path.stem for path in ROOT.glob("bench_*.py"))
    wanted = [m for m in modules if not argv or any(word in m for word in argv)]
    failed = False
    for name in wanted:
        try:
            results = importlib.import_module(f"bench.{name}").run()
        except Exception:
            traceback.print_exc()
            print(
                json.dumps({"name": name, "value": None, "unit": "", "target": "", "holds": False, "error": "crashed"})
            )
            failed = True
            continue
        for result in results:
            checked = self_check(result)
            failed = failed or not checked["holds"] and "self_check" in checked
            print(json.dumps(checked), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
