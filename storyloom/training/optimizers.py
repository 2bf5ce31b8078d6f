"""Optimizer and mixed precision for training: 8-bit AdamW and fp16 autocast on CUDA, plain AdamW in full
precision on CPU (``auto``), each overridable in ``[training]``.

Only the LoRA weights train, and they are kept in float32 whatever the base model's dtype: fp16 autocast runs
the big matrix products in half precision while the small, precision-sensitive updates stay exact.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from storyloom.errors import ModelUnavailable

logger = logging.getLogger(__name__)

WEIGHT_DECAY = 1e-2


def choose_optimizer(setting: str, device: Any) -> str:
    """``adamw8bit`` or ``adamw`` for ``training.optimizer`` on ``device``."""
    if setting == "auto":
        return "adamw8bit" if device.type == "cuda" else "adamw"
    return setting


def make_optimizer(parameters: Iterable[Any], learning_rate: float, kind: str) -> Any:
    import torch

    parameters = list(parameters)
    if kind == "adamw8bit":
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ModelUnavailable(
                'training.optimizer = "adamw8bit" needs the bitsandbytes package; install it or use "adamw"'
            ) from None
        return bnb.optim.AdamW8bit(parameters, lr=learning_rate, weight_decay=WEIGHT_DECAY)
    return torch.optim.AdamW(parameters, lr=learning_rate, weight_decay=WEIGHT_DECAY)


def autocast_dtype(setting: str, device: Any) -> Any:
    """The autocast dtype for ``training.mixed_precision`` on ``device`` (None: full precision)."""
    import torch

    if setting == "auto":
        return torch.float16 if device.type == "cuda" else None
    if setting == "no":
        return None
    if setting == "fp16" and device.type != "cuda":
        logger.warning("training.mixed_precision = fp16 needs CUDA; training in full precision on %s", device)
        return None
    return torch.float16 if setting == "fp16" else torch.bfloat16


def autocast(device: Any, dtype: Any) -> contextlib.AbstractContextManager:
    import torch

    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: Any, dtype: Any) -> Any:
    """Loss scaling for fp16 (bf16 and full precision need none; the scaler is then a pass-through)."""
    import torch

    return torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and dtype == torch.float16)


def release_memory() -> None:
    """After a run: the training copy of the models is garbage; give its device memory back for the warm models."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def keep_in_float32(parameters: Iterable[Any]) -> None:
    """Trainable weights of a half-precision model are kept (and updated) in float32."""
    import torch

    for parameter in parameters:
        if parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def apply_gradients(scaler: Any, optimizer: Any, parameters: Iterable[Any], max_grad_norm: float) -> None:
    """One optimizer step from the accumulated (scaled) gradients: unscale, clip, step, then clear them."""
    import torch

    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(list(parameters), max_grad_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
