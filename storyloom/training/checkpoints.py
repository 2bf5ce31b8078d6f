"""Training checkpoints: everything an interrupted run needs to go on as if it had never stopped.

A checkpoint is a directory holding the trainable (LoRA) weights as safetensors, the optimizer state (read back
with ``torch.load(weights_only=True)``), the random number generators (torch CPU and CUDA, Python's, and the
trainer's own noise generator) and a small JSON state: step, loss history and the run's *fingerprint* (a hash
of its data and settings). A checkpoint is only resumed by a run with the same fingerprint, so changing the
photos or the learning rate never silently continues an older run.

It is written to a temporary directory and swapped in with renames, so a crash while saving leaves the
previous checkpoint usable.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyloom.errors import InvalidInput

logger = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.json"
WEIGHTS_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
RNG_FILE = "rng.safetensors"
RESULT_FILE = "training.json"  # written last: it marks a run finished


def fingerprint(**parts: Any) -> str:
    """A stable hash of a run's inputs and settings (JSON-serialisable values)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


@dataclass
class Checkpoint:
    """What was saved: ``state`` is the trainer's JSON (step, losses, ...), the rest is restored by ``restore``."""

    step: int
    fingerprint: str
    state: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)
    rng: dict[str, Any] = field(default_factory=dict)
    python_random: Any = None


def trainable_parameters(modules: Mapping[str, Any]) -> dict[str, Any]:
    """``{"unet.…lora_A.default.weight": parameter}`` for every parameter that trains, prefixed by module name."""
    return {
        f"{prefix}.{name}": parameter
        for prefix, module in modules.items()
        if module is not None
        for name, parameter in module.named_parameters()
        if parameter.requires_grad
    }


def save_checkpoint(
    output_dir: Path,
    *,
    step: int,
    run_fingerprint: str,
    state: Mapping[str, Any],
    parameters: Mapping[str, Any],
    optimizer: Any,
    generator: Any = None,
) -> Path:
    """Write the checkpoint of ``output_dir`` atomically (replacing the previous one) and return its path."""
    import torch
    from safetensors.torch import save_file

    target = output_dir / CHECKPOINT_DIR
    temporary = output_dir / f"{CHECKPOINT_DIR}.tmp"
    previous = output_dir / f"{CHECKPOINT_DIR}.old"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir(parents=True)
    save_file(
        {name: p.detach().to("cpu").contiguous() for name, p in parameters.items()}, str(temporary / WEIGHTS_FILE)
    )
    torch.save(optimizer.state_dict(), temporary / OPTIMIZER_FILE)
    save_file(_rng_tensors(generator), str(temporary / RNG_FILE))
    document = {
        "step": step,
        "fingerprint": run_fingerprint,
        "state": dict(state),
        "python_random": _json_random_state(random.getstate()),
    }
    (temporary / STATE_FILE).write_text(json.dumps(document, indent=1), encoding="utf-8")
    shutil.rmtree(previous, ignore_errors=True)
    if target.exists():
        target.rename(previous)
    temporary.rename(target)
    shutil.rmtree(previous, ignore_errors=True)
    logger.debug("checkpoint at step %d written to %s", step, target)
    return target


def load_checkpoint(output_dir: Path, run_fingerprint: str) -> Checkpoint | None:
    """The checkpoint of ``output_dir`` if there is one, ``InvalidInput`` if it belongs to a different run."""
    import torch
    from safetensors.torch import load_file

    directory = output_dir / CHECKPOINT_DIR
    if not (directory / STATE_FILE).is_file():
        fallback = output_dir / f"{CHECKPOINT_DIR}.old"  # a crash between the two renames of a save
        if not (fallback / STATE_FILE).is_file():
            return None
        directory = fallback
    try:
        document = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        if document.get("fingerprint") != run_fingerprint:
            raise InvalidInput(
                f"{output_dir} holds a checkpoint of a different training run (other data or settings); "
                "choose another output directory, or delete that one to start over"
            )
        weights = load_file(str(directory / WEIGHTS_FILE))
        optimizer = torch.load(directory / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
        rng = load_file(str(directory / RNG_FILE))
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"the checkpoint in {directory} cannot be read ({type(exc).__name__}); delete it to start over"
        ) from None
    return Checkpoint(
        step=int(document["step"]),
        fingerprint=run_fingerprint,
        state=document.get("state", {}),
        weights=weights,
        optimizer=optimizer,
        rng=rng,
        python_random=document.get("python_random"),
    )


def restore(checkpoint: Checkpoint, parameters: Mapping[str, Any], optimizer: Any, generator: Any = None) -> None:
    """Put the saved weights, optimizer state and random generators back in place."""
    import torch

    missing = sorted(set(parameters) - set(checkpoint.weights))
    if missing:
        raise InvalidInput(
            f"the checkpoint does not match this model (no value for {missing[0]}); delete it to start over"
        )
    with torch.no_grad():
        for name, parameter in parameters.items():
            parameter.copy_(checkpoint.weights[name].to(parameter.device, parameter.dtype))
    optimizer.load_state_dict(checkpoint.optimizer)
    torch.set_rng_state(checkpoint.rng["torch_cpu"])
    if torch.cuda.is_available():
        states = [
            checkpoint.rng[f"torch_cuda_{i}"]
            for i in range(torch.cuda.device_count())
            if f"torch_cuda_{i}" in checkpoint.rng
        ]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    if generator is not None and "generator" in checkpoint.rng:
        generator.set_state(checkpoint.rng["generator"].to("cpu"))
    if checkpoint.python_random is not None:
        random.setstate(_python_random_state(checkpoint.python_random))


def remove_checkpoint(output_dir: Path) -> None:
    for name in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old", f"{CHECKPOINT_DIR}.tmp"):
        shutil.rmtree(output_dir / name, ignore_errors=True)


def mark_finished(output_dir: Path, document: Mapping[str, Any]) -> None:
    """Write ``training.json`` (atomically: it marks the run finished), and only then drop the checkpoint."""
    temporary = output_dir / f".{RESULT_FILE}.tmp"
    temporary.write_text(json.dumps(document, indent=2), encoding="utf-8")
    temporary.replace(output_dir / RESULT_FILE)
    remove_checkpoint(output_dir)


def finished_result(
    output_dir: Path, run_fingerprint: str, request: Mapping[str, Any], *, product: str, what: str
) -> dict[str, Any] | None:
    """The saved ``result`` when ``output_dir`` holds this very run, finished (same fingerprint and request, and
    its ``product`` file there); None when there is nothing to find; ``InvalidInput`` when it holds another
    trained ``what`` (a run in progress, with its checkpoint, is never "another")."""
    if has_checkpoint(output_dir):
        return None
    result_file = output_dir / RESULT_FILE
    made = (output_dir / product).is_file()
    if not result_file.is_file() and not made:
        return None
    try:
        document = json.loads(result_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        document = {}
    if document.get("fingerprint") == run_fingerprint and document.get("request") == dict(request) and made:
        logger.info("%s already holds this finished %s", output_dir, what)
        return document["result"]
    raise InvalidInput(f"{output_dir} already holds a trained {what}; choose another output directory or delete it")


def has_checkpoint(output_dir: Path) -> bool:
    return any((output_dir / name / STATE_FILE).is_file() for name in (CHECKPOINT_DIR, f"{CHECKPOINT_DIR}.old"))


def _rng_tensors(generator: Any) -> dict[str, Any]:
    import torch

    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda_{index}"] = state
    if generator is not None:
        tensors["generator"] = generator.get_state()
    return tensors


def _json_random_state(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _python_random_state(saved: list) -> tuple:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


class Checkpointer:
    """One run's resumable state: trainable weights, optimizer, gradient scaler, random generators and the
    loop's own JSON state. It remembers the last step saved, so a cancel saves only progress not yet saved."""

    def __init__(
        self,
        output_dir: Path,
        run_fingerprint: str,
        *,
        parameters: Mapping[str, Any],
        optimizer: Any,
        scaler: Any,
        generator: Any = None,
    ) -> None:
        self.output_dir = output_dir
        self.run_fingerprint = run_fingerprint
        self.parameters = parameters
        self.optimizer = optimizer
        self.scaler = scaler
        self.generator = generator
        self.last_saved = 0

    def resume(self) -> Checkpoint | None:
        """Restore the saved run, if there is one; its ``state`` no longer holds the scaler's own state."""
        saved = load_checkpoint(self.output_dir, self.run_fingerprint)
        if saved is None:
            return None
        restore(saved, self.parameters, self.optimizer, self.generator)
        scaler_state = saved.state.pop("scaler", None)
        if scaler_state:
            self.scaler.load_state_dict(scaler_state)
        self.last_saved = saved.step
        return saved

    def save(self, step: int, state: Mapping[str, Any]) -> None:
        document = {**state, "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {}}
        save_checkpoint(
            self.output_dir, step=step, run_fingerprint=self.run_fingerprint, state=document,
            parameters=self.parameters, optimizer=self.optimizer, generator=self.generator,
        )  # fmt: skip
        self.last_saved = step

    def save_if_new(self, step: int, state: Mapping[str, Any]) -> None:
        if step > self.last_saved:
            self.save(step, state)
