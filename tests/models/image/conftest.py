"""One model cache per test module, shared by that module's pipelines (as a worker shares one)."""

from __future__ import annotations

import pytest

from storyloom.models.runtime.loading import ModelCache


@pytest.fixture(scope="module")
def cache() -> ModelCache:
    return ModelCache()
