"""Which device and precision a model runs on, and the CUDA-only speed-ups.

Everything here is a no-op on CPU so the tests (and the tiny profile) take the same code path
as a GPU worker, minus the optimisations that only make sense on CUDA.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from storyloom.config import DeviceConfig

if TYPE_CHECKING:
    from storyloom.config import Config

logger = logging.getLogger(__name__)

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}

# Below this much free memory on the card, decode latents in tiles/slices rather than all at once.
_VAE_TILING_FREE_BYTES = 6 * 1024**3


def resolve_device(cfg: DeviceConfig) -> torch.device:
    """``auto`` picks CUDA when a GPU is visible, otherwise CPU; anything else is taken literally."""
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def resolve_dtype(cfg: DeviceConfig, device: torch.device) -> torch.dtype:
    """``auto`` means fp16 on CUDA (half the memory, tensor cores) and fp32 elsewhere (CPU fp16 is slow/unsupported)."""
    if cfg.dtype != "auto":
        return _DTYPES[cfg.dtype]
    return torch.float16 if device.type == "cuda" else torch.float32


def memory_budget_bytes(config: Config) -> int:
    """The memory the models may use: ``worker.memory_budget_gb`` when set, else all of the device's memory (the
    GPU's, or the machine's on CPU)."""
    configured = config.worker.memory_budget_gb
    if configured > 0:
        return int(configured * 1024**3)
    device = resolve_device(config.device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    import psutil

    return int(psutil.virtual_memory().total)


def optimize_pipeline(pipe: Any, cfg: DeviceConfig, device: torch.device) -> Any:
    """Apply the CUDA-only speed/memory settings to a diffusers pipeline; CPU pipelines are returned untouched.

    SDPA is the default attention processor in torch 2, so there is nothing to switch on for it.
    """
    if device.type != "cuda":
        return pipe
    unet = getattr(pipe, "unet", None)
    if unet is not None:
        unet.to(memory_format=torch.channels_last)
        if cfg.compile:
            # Pays off over many calls (the worker keeps the pipeline warm). The default mode, not
            # "reduce-overhead": CUDA graphs would be recorded again for every batch size and aspect ratio.
            pipe.unet = torch.compile(unet)
    vae = getattr(pipe, "vae", None)
    if vae is not None and _want_vae_tiling(cfg, device):
        vae.enable_tiling()
        vae.enable_slicing()
    if cfg.attention_slicing and hasattr(pipe, "enable_attention_slicing"):
        pipe.enable_attention_slicing()
    return pipe


def _want_vae_tiling(cfg: DeviceConfig, device: torch.device) -> bool:
    if cfg.vae_tiling != "auto":
        return cfg.vae_tiling == "on"
    try:
        free, _total = torch.cuda.mem_get_info(device)
    except Exception:
        logger.debug("could not query free CUDA memory", exc_info=True)
        return False
    return free < _VAE_TILING_FREE_BYTES


def empty_cache(device: torch.device) -> None:
    """Release cached blocks after an out-of-memory error so a smaller retry can fit."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
