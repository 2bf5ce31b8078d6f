"""Which function runs which job kind.

The defaults are the real handlers. Overrides come by import path (``--handlers package.module:name``,
naming a mapping of kind → handler or a function returning one) and replace entries of the defaults;
that is how tests and benchmarks run real worker processes with instant or crashing handlers, without
adding any job kind that Discord could reach.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping

from storyloom.errors import ConfigError
from storyloom.queue.job import JobKind
from storyloom.queue.params import parse_kind
from storyloom.worker.context import Handler


def default_handlers() -> dict[JobKind, Handler]:
    from storyloom.worker.handlers import images, narration, regions, stories, training

    return {
        JobKind.IMAGINE: images.imagine,
        JobKind.VARY: images.vary,
        JobKind.UPSCALE: images.upscale,
        JobKind.BLEND: images.blend,
        JobKind.DESCRIBE: images.describe,
        **stories.handlers(),
        **training.handlers(),
        **narration.handlers(),
        **regions.handlers(),
    }


def load_handlers(spec: str) -> dict[JobKind, Handler]:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"handlers {spec!r} must look like package.module:name")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"handlers {spec!r} cannot be imported: {exc}") from None
    if callable(found) and not isinstance(found, Mapping):
        found = found()
    if not isinstance(found, Mapping):
        raise ConfigError(f"handlers {spec!r} is not a mapping of job kind to handler")
    return {parse_kind(kind): handler for kind, handler in found.items()}


def build_handlers(overrides: Iterable[str] = ()) -> dict[JobKind, Handler]:
    handlers = default_handlers()
    for spec in overrides:
        handlers.update(load_handlers(spec))
    return handlers
