"""Which examples each optimizer step sees: a pure function of (seed, step), so a resumed run sees exactly the
batches the uninterrupted run would have.

An epoch is one pass over ``examples`` in a seeded order that changes every epoch; batches of ``batch_size``
are accumulated ``accumulation`` at a time into one optimizer step (a step may span the end of an epoch, as
with accelerate's gradient accumulation).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class StepPlan:
    examples: int
    batch_size: int
    accumulation: int
    total_steps: int
    seed: int

    @classmethod
    def build(
        cls, *, examples: int, batch_size: int, accumulation: int, epochs: int, max_steps: int | None, seed: int
    ) -> StepPlan:
        """``max_steps`` optimizer steps when given, otherwise as many as ``epochs`` passes take."""
        batches = math.ceil(examples / batch_size)
        total = max_steps if max_steps is not None else max(1, math.ceil(epochs * batches / accumulation))
        return cls(examples, batch_size, accumulation, total, seed)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(self.examples / self.batch_size)

    @property
    def epochs(self) -> int:
        """Epochs begun by the whole run (the last may be partial)."""
        return math.ceil(self.total_steps * self.accumulation / self.batches_per_epoch)

    def epoch_of(self, step: int) -> int:
        """The 0-based epoch the last batch of optimizer step ``step`` (0-based) belongs to."""
        return ((step + 1) * self.accumulation - 1) // self.batches_per_epoch

    def ends_epoch(self, step: int) -> bool:
        """Whether step ``step`` (0-based) finishes an epoch, or the run."""
        return step + 1 == self.total_steps or self.epoch_of(step + 1) > self.epoch_of(step)

    def batches(self, step: int) -> list[list[int]]:
        """Example indices of each accumulated batch of optimizer step ``step`` (0-based)."""
        result = []
        for micro in range(step * self.accumulation, (step + 1) * self.accumulation):
            epoch, index = divmod(micro, self.batches_per_epoch)
            order = epoch_order(self.examples, self.seed, epoch)
            result.append(order[index * self.batch_size : (index + 1) * self.batch_size])
        return result


def epoch_order(count: int, seed: int, epoch: int) -> list[int]:
    order = list(range(count))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order
