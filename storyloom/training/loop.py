"""The outline every LoRA trainer here follows, written once: resume from the last checkpoint, optimizer steps
of accumulated batches in the order of a ``StepPlan``, the record of each epoch, checkpoints, progress and
cancellation. A trainer supplies only what differs: the loss of a batch and what it measures when an epoch
ends.

The loop's JSON state (every step's loss, the epoch records, the running sum of the current epoch) is what a
checkpoint saves besides the weights, so a resumed run reports the same history as an uninterrupted one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress
from storyloom.training.checkpoints import Checkpoint, Checkpointer
from storyloom.training.schedule import StepPlan

MAX_GRAD_NORM = 1.0  # gradient clipping, as in diffusers' and peft's training examples

LossOf = Callable[[list[int]], Any]  # example indices of one batch → that batch's loss tensor
EpochEnd = Callable[[int, int, float], Any]  # (1-based epoch, steps done, mean train loss) → the epoch's record


class LoopSettings(Protocol):
    """What a trainer's arguments tell the loop (``StoryTrainingArgs`` and ``SubjectTrainingArgs`` both do)."""

    # Read-only properties, so frozen dataclasses match.
    @property
    def output_dir(self) -> Path: ...
    @property
    def learning_rate(self) -> float: ...
    @property
    def optimizer(self) -> str: ...
    @property
    def mixed_precision(self) -> str: ...
    @property
    def checkpoint_every(self) -> int: ...


class TrainingLoop:
    """One run's optimizer steps. ``resume()`` first, then anything a fresh run measures, then ``run()``."""

    @classmethod
    def build(
        cls,
        plan: StepPlan,
        parameters: Mapping[str, Any],
        settings: LoopSettings,
        *,
        run_fingerprint: str,
        device: Any,
        name: str,
        loss_digits: int,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        generator: Any = None,
    ) -> TrainingLoop:
        """The loop over ``parameters`` with the optimizer, mixed precision and checkpointer ``settings`` ask for
        on ``device``; ``generator`` (the trainer's own noise) is checkpointed with the rest."""
        from storyloom.training.optimizers import autocast_dtype, choose_optimizer, grad_scaler, make_optimizer

        kind = choose_optimizer(settings.optimizer, device)
        optimizer = make_optimizer(parameters.values(), settings.learning_rate, kind)
        precision = autocast_dtype(settings.mixed_precision, device)
        checkpointer = Checkpointer(
            settings.output_dir, run_fingerprint, parameters=parameters, optimizer=optimizer,
            scaler=grad_scaler(device, precision), generator=generator,
        )  # fmt: skip
        return cls(
            plan, checkpointer, checkpoint_every=settings.checkpoint_every, max_grad_norm=MAX_GRAD_NORM, name=name,
            loss_digits=loss_digits, precision=precision, progress=progress, should_cancel=should_cancel,
        )  # fmt: skip

    def __init__(
        self,
        plan: StepPlan,
        checkpointer: Checkpointer,
        *,
        checkpoint_every: int,
        max_grad_norm: float,
        name: str,
        loss_digits: int,
        precision: Any = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> None:
        self.plan = plan
        self.checkpointer = checkpointer  # it also holds the parameters, optimizer and scaler that train
        self.checkpoint_every = checkpoint_every
        self.max_grad_norm = max_grad_norm
        self.name = name  # how the cancel message calls the run
        self.loss_digits = loss_digits
        self.precision = precision  # the autocast dtype of the trainer's forward passes (None: full precision)
        self.progress = progress
        self.should_cancel = should_cancel
        self.state: dict[str, Any] = {"losses": [], "epochs": [], "epoch_sum": 0.0, "epoch_count": 0}

    def resume(self) -> Checkpoint | None:
        """Continue the saved run, if there is one (its state replaces ``state``); None on a fresh start."""
        saved = self.checkpointer.resume()
        if saved is not None:
            self.state = saved.state
        return saved

    def run(self, loss_of: LossOf, on_epoch_end: EpochEnd) -> int:
        """Optimizer steps from the resumed one to the end of the plan; returns the number of steps done."""
        plan, state = self.plan, self.state
        step = self.checkpointer.last_saved
        while step < plan.total_steps:
            if self.should_cancel is not None and self.should_cancel():
                self.checkpointer.save_if_new(step, state)
                raise JobCanceled(f"{self.name} stopped at step {step} of {plan.total_steps}; run it again to resume")
            value = self._optimizer_step(step, loss_of)
            epoch = plan.epoch_of(step)
            step += 1
            if plan.ends_epoch(step - 1):
                record = on_epoch_end(epoch + 1, step, state["epoch_sum"] / state["epoch_count"])
                state["epochs"].append(asdict(record))
                state["epoch_sum"], state["epoch_count"] = 0.0, 0
            self._report(step, f"training, epoch {epoch + 1}/{plan.epochs}, loss {value:.{self.loss_digits}f}")
            if step % self.checkpoint_every == 0 or plan.ends_epoch(step - 1):
                self.checkpointer.save(step, state)
        return step

    def _optimizer_step(self, step: int, loss_of: LossOf) -> float:
        """Accumulate the gradients of step ``step``'s batches, apply them, and record the step's loss."""
        from storyloom.training.optimizers import apply_gradients

        checkpointer = self.checkpointer
        value = 0.0
        for indices in self.plan.batches(step):
            loss = loss_of(indices) / self.plan.accumulation  # the mean over the accumulated batches, as one batch
            checkpointer.scaler.scale(loss).backward()
            value += float(loss.detach())
        apply_gradients(
            checkpointer.scaler, checkpointer.optimizer, checkpointer.parameters.values(), self.max_grad_norm
        )
        if not math.isfinite(value):
            raise InvalidInput(f"the training loss became {value} at step {step + 1}; lower the learning rate")
        self.state["losses"].append(value)
        self.state["epoch_sum"] += value
        self.state["epoch_count"] += 1
        return value

    def _report(self, step: int, stage: str) -> None:
        if self.progress is not None:
            self.progress(StepProgress(step, self.plan.total_steps, stage=stage))
