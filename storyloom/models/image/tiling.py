"""Seamless tiling: every convolution pads circularly, so the picture's right edge continues its left edge
and its bottom continues its top (Midjourney's ``--tile``, A1111's "Tiling")."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch


@contextlib.contextmanager
def seamless(*modules: Any, enabled: bool = True) -> Iterator[None]:
    """Circular padding in every ``Conv2d`` of ``modules`` (the UNet and the VAE) inside the block; each
    convolution's own padding mode is back afterwards, success or failure."""
    if not enabled:
        yield
        return
    convolutions = [layer for module in modules for layer in module.modules() if isinstance(layer, torch.nn.Conv2d)]
    modes = [layer.padding_mode for layer in convolutions]
    for layer in convolutions:
        layer.padding_mode = "circular"
    try:
        yield
    finally:
        for layer, mode in zip(convolutions, modes):
            layer.padding_mode = mode
