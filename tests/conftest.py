"""Shared fixtures: tiny models (built once per machine, deterministic) and a tiny-profile config."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storyloom.config import Config
from storyloom.models.runtime.tiny import TinyModelPaths, make_tiny_config, shared_tiny_models

__all__ = ["artifact_image", "finished", "finished_somehow", "make_tiny_config"]


@pytest.fixture(scope="session")
def tiny_models() -> TinyModelPaths:
    return shared_tiny_models()


def finished_somehow(store, job_id: int, timeout: float = 120.0):
    """The job once it has ended, whatever its status (waits on the real store)."""
    from storyloom.worker.testing import wait_until

    return wait_until(
        lambda: (j := store.get(job_id)).is_finished and j, timeout, interval=0.05, what=f"job {job_id} to end"
    )


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
