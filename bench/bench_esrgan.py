"""``esrgan_tile_memory_ratio``: the tiled Real-ESRGAN step must not need more memory for a bigger image.

Method. Each input size (256² and 1024², tile 128, overlap 16, the tiny 4× RRDBNet) runs in a fresh
Python process, so one run's allocator state cannot leak into the other's. In that process:

1. ``MALLOC_MMAP_THRESHOLD_`` is pinned at 128 KiB, so every large block is its own mapping and is
   returned to the OS when freed; resident memory then reflects live memory instead of glibc's
   recycled heap.
2. Everything that is not the measured step is done first: imports, model load, the input image and
   a warm-up call on a small image (thread pools, kernels). The peak resident size at that point
   (``ru_maxrss``) is the baseline.
3. The image is upscaled. The progress callback of the last tile reads ``ru_maxrss`` again, i.e. the
   peak over the whole tile loop, before the result is turned into a PIL image.
4. Working set = that peak − baseline − the bytes of the output array (allocated once, unavoidable,
   fully written by then) − the bytes of the input array. What remains is the torch and numpy memory
   of processing tiles, which should be the same for both sizes.

The ratio is working set(1024²) / working set(256²); ≤ 1.5 means memory does not grow with the image
(the output buffer alone is 16× bigger).
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


def run() -> list[dict]:
    from bench.common import record

    with tempfile.TemporaryDirectory(prefix="bench-esrgan-") as tmp:
        weights = Path(tmp) / "tiny_x4.safetensors"
        _build_weights(weights)
        small = _measure_in_subprocess(weights, SMALL, TILE)
        large = _measure_in_subprocess(weights, LARGE, TILE)
    ratio = large["working_bytes"] / max(small["working_bytes"], 1)
    return [
        record(
            "esrgan_tile_memory_ratio",
            ratio,
            "ratio",
            f"<= {TARGET}",
            ratio <= TARGET,
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
    import resource
    import time

    import numpy as np
    from PIL import Image

    from storyloom.models.image.esrgan import RealEsrgan

    def peak_rss() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux

    model = RealEsrgan.from_file(weights, tile=tile, overlap=OVERLAP)
    pixels = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    del pixels
    model(Image.new("RGB", (16, 16)))
    baseline = peak_rss()
    at_last_tile: list[int] = []

    def progress(step) -> None:
        if step.step == step.total:
            at_last_tile.append(peak_rss())

    start = time.perf_counter()
    model(image, progress=progress)
    seconds = time.perf_counter() - start
    output_bytes = (size * model.scale) ** 2 * 3
    input_bytes = size * size * 3
    working = at_last_tile[0] - baseline - output_bytes - input_bytes
    return {"working_bytes": working, "output_bytes": output_bytes, "seconds": seconds}


if __name__ == "__main__":
    print(json.dumps(_measure(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
