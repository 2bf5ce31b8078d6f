"""Fixtures used across folders: tiny models (built once per machine, deterministic), a tiny-profile config,
one torch thread, quiet font logs and the fake Discord; plus the ``slow`` marker's opt-in.

Helpers that are not fixtures live in ``tests.support``."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from storyloom.config import Config
from storyloom.models.runtime.tiny import TinyModelPaths, make_tiny_config, shared_tiny_models
from tests.support.fakediscord import FakeDiscord
from tests.support.postgres import fresh_schema


@pytest.fixture(scope="session")
def tiny_models() -> TinyModelPaths:
    return shared_tiny_models()


@pytest.fixture
def tiny_config(tmp_path: Path, tiny_models: TinyModelPaths) -> Config:
    return make_tiny_config(tmp_path / "data", tiny_models)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from threads, and on a shared 2-core machine threads only contend.

    Use per module: ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def quiet_fonts() -> None:
    """fontTools logs every glyph it subsets at INFO; book tests keep it to warnings."""
    logging.getLogger("fontTools").setLevel(logging.WARNING)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose connections see a fresh, empty schema (skips where no server answers)."""
    with fresh_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh job store location on each backend: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield str(tmp_path / "jobs.db")
    else:
        with fresh_schema() as url:
            yield url


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A fresh fake Discord server on 127.0.0.1 for one test."""
    async with FakeDiscord() as server:
        yield server


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow`` run only with STORYLOOM_SLOW_TESTS=1 (they exceed CI's time budget)."""
    if os.environ.get("STORYLOOM_SLOW_TESTS") == "1":
        return
    skip = pytest.mark.skip(reason="slow; run with STORYLOOM_SLOW_TESTS=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
