"""The worker tests' store, opened on the test module's own ``config`` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from storyloom.config import Config
from storyloom.queue import JobStore


@pytest.fixture
def store(config: Config) -> Iterator[JobStore]:
    with JobStore.from_config(config) as store:
        yield store
