"""Terminal progress for long model calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storyloom.models.runtime.step_progress import StepProgress


class ProgressBar:
    """A tqdm bar fed by ``StepProgress``; restarts cleanly if the pipeline retries image by image."""

    def __init__(self, description: str) -> None:
        self.description = description
        self.bar: Any = None  # a tqdm bar (tqdm ships no types)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.bar is not None:
            self.bar.close()

    def __call__(self, progress: StepProgress) -> None:
        from tqdm import tqdm

        if self.bar is None or progress.step < self.bar.n or progress.total != self.bar.total:
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=progress.total, desc=self.description, unit="step", leave=True)
        self.bar.update(progress.step - self.bar.n)
