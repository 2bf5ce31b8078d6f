"""The model cache: each model built once, and a model's loader may take its parts from the same cache."""

from __future__ import annotations

import threading

from storyloom.models.runtime.loading import ModelCache


def test_each_model_is_built_once() -> None:
    cache, built = ModelCache(), []

    def build() -> object:
        built.append(1)
        return object()

    first = cache.get(("model",), build)
    assert cache.get(("model",), build) is first and len(built) == 1


def test_a_loader_may_take_its_parts_from_the_same_cache() -> None:
    cache = ModelCache()
    found: list[tuple[str, str]] = []

    def adapter() -> tuple[str, str]:
        return "adapter", cache.get(("encoder",), lambda: "encoder")

    # In a thread with a deadline: a cache that waited on itself would hang here instead of failing.
    thread = threading.Thread(target=lambda: found.append(cache.get(("adapter",), adapter)), daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert found == [("adapter", "encoder")]
    assert cache.get(("encoder",), lambda: "another") == "encoder"
