"""Run every benchmark and print one JSON object per line.

Usage: ``python bench/run.py [NAME_SUBSTRING ...]``. Each ``bench/bench_*.py`` module has
``run() -> list[dict]`` returning records made by ``bench.common.record``."""

from __future__ import annotations

import importlib
import json
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent


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
            print(json.dumps(result), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
