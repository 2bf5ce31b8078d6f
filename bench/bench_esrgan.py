"""``esrgan_tile_memory_ratio``: the tiled Real-ESRGAN step must not need more memory for a bigger image.

Method. Each input size (256² and 1024², tile 128, overlap 16, the tiny 4× RRDBNet) runs in a fresh
Python process, so one run's allocator state cannot leak into the other's. In that process:

1. ``MALLOC_MMAP_THRESHOLD_`` is pinned at 128 KiB, so every large block is its own mapping and is
   returned to the OS when freed; resident memory then reflects live memory instead of glibc's
   recycled heap.
2. Everything that is not the measured step is done first: imports, model load, the input image and
   a warm-up call on a small image (thread pools, kernels).
3. The kernel's peak resident size (``VmHWM``) is reset to the current one (``/proc/self/clear_refs``), so
   model loading cannot hide in the baseline. Then a buffer the size of what the step must hold anyway (the
   output array and the copy of the input) is touched and freed: the peak now stands that far above the
   resident size, and that peak is the baseline.
4. The image is upscaled. The progress callback of the last tile reads the peak again (over the whole
   tile loop, before the result becomes a PIL image).
5. Working set = that peak − the baseline. The peak never decreases, so this is never negative; it is what
   processing tiles needed beyond the unavoidable buffers, and should be the same for both sizes.

The ratio is working set(1024²) / working set(256²); ≤ 1.5 means memory does not grow with the image
(the output buffer alone is 16× bigger). A working set under 1 MiB is implausible for a model run (the
measurement failed), and then the benchmark does not hold.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TILE = 128
OVERLAP = 16
SMALL, LARGE = 256, 1024
TARGET = 1.5
MIN_PLAUSIBLE_BYTES = 2**20  # a model run that needs less than this was not measured


def run() -> list[dict]:
    from bench.common import record

    with tempfile.TemporaryDirectory(prefix="bench-esrgan-") as tmp:
        weights = Path(tmp) / "tiny_x4.safetensors"
        _build_weights(weights)
        small = _measure_in_subprocess(weights, SMALL, TILE)
        large = _measure_in_subprocess(weights, LARGE, TILE)
    plausible = min(small["working_bytes"], large["working_bytes"]) >= MIN_PLAUSIBLE_BYTES
    ratio = large["working_bytes"] / max(small["working_bytes"], MIN_PLAUSIBLE_BYTES)
    return [
        record(
            "esrgan_tile_memory_ratio",
            ratio,
            "ratio",
            f"<= {TARGET}",
            plausible and ratio <= TARGET,
            tile=TILE,
            working_mb={str(SMALL): _mb(small["working_bytes"]), str(LARGE): _mb(large["working_bytes"])},
            output_mb={str(SMALL): _mb(small["output_bytes"]), str(LARGE): _mb(large["output_bytes"])},
            seconds={str(SMALL): round(small["seconds"], 1), str(LARGE): round(large["seconds"], 1)},
        )
    ]


def _mb(value: float) -> float:
    return round(value / 2**20, 1)


def _build_weights(path: Path) -> None:
    from storyloom.models.runtime.tiny import build_tiny_esrgan

    build_tiny_esrgan(path)


def _measure_in_subprocess(weights: Path, size: int, tile: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-m", "bench.bench_esrgan", str(weights), str(size), str(tile)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"measuring {size}² failed:\n{completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _measure(weights: Path, size: int, tile: int) -> dict:
    """Runs inside the fresh process: see the module docstring."""
    import time

    import numpy as np
    from PIL import Image

    from storyloom.models.image.esrgan import RealEsrgan

    model = RealEsrgan.from_file(weights, tile=tile, overlap=OVERLAP)
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    del pixels
    model(Image.new("RGB", (16, 16)))
    output_bytes = (size * model.scale) ** 2 * 3
    input_bytes = size * size * 3
    _reset_peak()
    unavoidable = np.ones(output_bytes + input_bytes, dtype=np.uint8)  # touched: every page resident
    del unavoidable
    baseline = _peak()
    at_last_tile: list[int] = []

    def progress(step) -> None:
        if step.step == step.total:
            at_last_tile.append(_peak())

    start = time.perf_counter()
    model(image, progress=progress)
    seconds = time.perf_counter() - start
    return {"working_bytes": at_last_tile[0] - baseline, "output_bytes": output_bytes, "seconds": seconds}


def _reset_peak() -> None:
    """Linux: the peak resident size (VmHWM) becomes the current resident size."""
    Path("/proc/self/clear_refs").write_text("5")


def _peak() -> int:
    """The peak resident size since the last reset, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


if __name__ == "__main__":
    print(json.dumps(_measure(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
