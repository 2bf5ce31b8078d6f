"""How long-running model calls report progress and learn that they were canceled.

Pipelines take ``progress`` and ``should_cancel`` callables; they know nothing about
where progress goes (terminal bar, job store, Discord)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from PIL import Image


@dataclass(frozen=True)
class StepProgress:
    """One step of a long call: ``step`` of ``total`` done, with an optional cheap preview."""

    step: int
    total: int
    preview: Image.Image | None = None
    stage: str = ""


class ProgressCallback(Protocol):
    def __call__(self, progress: StepProgress, /) -> None: ...


CancelCheck = Callable[[], bool]


def never_canceled() -> bool:
    return False


def ignore_progress(progress: StepProgress) -> None:
    return None
