"""Shared fixtures: tiny models (built once per machine, deterministic) and a tiny-profile config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storyloom.config import Config, load_config
from storyloom.models.tiny import TINY_FORMAT_VERSION, TinyModelPaths, make_tiny_models


def _tiny_cache_dir() -> Path:
    # The builder is seeded and byte-identical, so one build can serve every test run on a machine.
    base = os.environ.get("STORYLOOM_TEST_CACHE") or Path.home() / ".cache" / "storyloom-tests"
    return Path(base) / f"tiny-models-v{TINY_FORMAT_VERSION}"


@pytest.fixture(scope="session")
def tiny_models() -> TinyModelPaths:
    return make_tiny_models(_tiny_cache_dir())


def finished_somehow(store, job_id: int, timeout: float = 120.0):
    """The job once it has ended, whatever its status (waits on the real store)."""
    from storyloom.worker.testing import wait_until

    return wait_until(lambda: (j := store.get(job_id)).is_finished and j, timeout, interval=0.05, what=f"job {job_id} to end")


def finished(store, job_id: int, timeout: float = 120.0):
    """The job once it has succeeded; fails the test with the job's error otherwise."""
    from storyloom.queue.job import JobStatus

    job = finished_somehow(store, job_id, timeout)
    assert job.status is JobStatus.SUCCEEDED, job.error
    return job


def artifact_image(artifact):
    """An image artifact's bytes as a loaded PIL image."""
    import io

    from PIL import Image

    picture = Image.open(io.BytesIO(artifact.data))
    picture.load()
    return picture


def make_tiny_config(data_dir: Path, models: TinyModelPaths, **sections) -> Config:
    """A tiny-profile config whose models are the shared tiny models and whose data lives in ``data_dir``."""
    overrides: dict = {
        "paths": {"data_dir": str(data_dir)},
        "models": {
            "image": str(models.sd15),
            "controlnet_tile": str(models.controlnet),
            "controlnet_hed": str(models.controlnet),
            "esrgan": str(models.esrgan),
            "story": str(models.llama),
        },
    }
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_config(None, profile="tiny", environ={}, overrides=overrides)


@pytest.fixture
def tiny_config(tmp_path: Path, tiny_models: TinyModelPaths) -> Config:
    return make_tiny_config(tmp_path / "data", tiny_models)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only with STORYLOOM_SLOW_TESTS=1 (they exceed CI's time budget)."""
    if os.environ.get("STORYLOOM_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="slow; run with STORYLOOM_SLOW_TESTS=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
