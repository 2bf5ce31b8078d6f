"""Where model weights come from, and loading Stable Diffusion once for every image task.

Weights come from a local directory/file or the Hugging Face hub cache, like every diffusers
tool, and only ever from safetensors. Any failure to find them becomes one ``ModelUnavailable``
line that a user can act on, instead of a hub traceback.

Sharing: txt2img, variations and the upscale chain all need the same UNet, VAE and text encoder.
A worker builds one :class:`ModelCache` at start-up and passes it to each ``from_config``; the
pipelines are then derived from one loaded base (``from_pipe``) without copying weights.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from storyloom.config import Config
from storyloom.errors import ModelUnavailable
from storyloom.models.runtime.devices import optimize_pipeline, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

T = TypeVar("T")

_DOWNLOAD_HINT = "run `storyloom models download` with internet access first"


def resolve_source(name: str, *, build_tiny: bool) -> str:
    """Turn a configured model name into something ``from_pretrained``/safetensors can open.

    - an existing local directory or file is used as it is;
    - a path-looking name (absolute, ``./``, ``~``) that does not exist is built as a tiny model when
      ``build_tiny`` (the tiny profile), otherwise it is reported missing;
    - ``owner/repo`` is a hub repository id, returned unchanged (diffusers resolves it in the hub cache);
    - ``owner/repo/path/to/file`` is one file of a hub repository, fetched with ``hf_hub_download``.
    """
    name = name.strip()
    if not name:
        raise ModelUnavailable("no model is configured (empty model name)")
    local = Path(name).expanduser()
    if local.exists():
        return str(local)
    if _looks_like_path(name):
        if build_tiny:
            from storyloom.models.runtime.tiny import ensure_tiny_model

            logger.info("building tiny model at %s", local)
            ensure_tiny_model(local)
            return str(local)
        raise ModelUnavailable(f"model {name!r} does not exist on disk")
    parts = name.split("/")
    if len(parts) <= 2:
        return name
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    from huggingface_hub import hf_hub_download

    with model_errors(name):
        return hf_hub_download(repo_id=repo_id, filename=filename)


def model_display_name(name: str) -> str:
    """The name written into image parameters: a hub id as is, a local path by its last component only
    (images get shared; the server's directory layout should not travel with them)."""
    name = name.strip().rstrip("/\\")
    if _looks_like_path(name) or Path(name).expanduser().exists():
        return Path(name).name
    return name


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or Path(name).is_absolute()


@contextlib.contextmanager
def model_errors(name: str) -> Iterator[None]:
    """Map hub, offline and file errors raised while loading ``name`` to one ``ModelUnavailable`` line."""
    try:
        yield
    except ModelUnavailable:
        raise
    except Exception as exc:
        if not _is_loading_error(exc):
            raise
        logger.debug("loading %s failed", name, exc_info=True)
        raise ModelUnavailable(_unavailable_message(name, exc)) from None


def _is_loading_error(exc: Exception) -> bool:
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError

    return isinstance(exc, (OSError, HfHubHTTPError, HFValidationError, LocalEntryNotFoundError))


def _unavailable_message(name: str, exc: Exception) -> str:
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    if offline:
        return (
            f"model {name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: "
            f"{_DOWNLOAD_HINT}, or unset HF_HUB_OFFLINE"
        )
    reason = type(exc).__name__
    return (
        f"model {name!r} could not be loaded ({reason}); {_DOWNLOAD_HINT} "
        "(or set HF_HUB_OFFLINE=1 to use only the local cache)"
    )


class ModelCache:
    """Loaded models keyed by what they were loaded from, built once and shared by every pipeline.

    Owned by whoever owns the process's long-lived resources (the worker, the CLI); not a global.
    """

    def __init__(self) -> None:
        self._items: dict[tuple, Any] = {}
        # Re-entrant: a model's factory may get its parts from the same cache (an IP-Adapter its image encoder).
        self._lock = threading.RLock()

    def get(self, key: tuple, factory: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._items:
                self._items[key] = factory()
            return self._items[key]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def load_sd_components(config: Config, cache: ModelCache | None = None, *, checkpoint: str | None = None) -> Any:
    """The base ``StableDiffusionPipeline`` for ``config.models.image`` (or the named extra ``checkpoint``):
    DPM++ 2M Karras, on the configured device and dtype, progress bar off, CUDA optimisations applied.

    With a ``cache`` the pipeline is loaded once per (model, device, dtype) and shared; derive task
    pipelines from it with ``StableDiffusionImg2ImgPipeline.from_pipe(base)`` so they reuse its weights.
    """
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.device, device)
    key = ("sd", checkpoint_source(config, checkpoint), str(device), str(dtype))
    if cache is None:
        return _load_sd(config, checkpoint)
    return cache.get(key, lambda: _load_sd(config, checkpoint))


def checkpoint_source(config: Config, checkpoint: str | None) -> str:
    """What ``checkpoint`` (a name from ``models.checkpoints``; None: the base model) is loaded from."""
    if checkpoint is None:
        return config.models.image
    known = config.models.checkpoints
    if checkpoint not in known:
        names = ", ".join(sorted(known)) or "none are configured"
        raise ModelUnavailable(f"unknown model {checkpoint!r}; the known models: {names}")
    return known[checkpoint]


def load_sd_pipeline(config: Config, checkpoint: str | None = None) -> Any:
    """The ``StableDiffusionPipeline`` for ``config.models.image`` (or the named extra ``checkpoint``) as the
    model ships it (its own scheduler and safety checker), on the configured device and dtype, progress bar
    off, and no CUDA optimisations: the one place Stable Diffusion weights are loaded. Image tasks get it
    through ``load_sd_components``; subject training starts from it as it is (no compile, no tiling).

    A checkpoint may be a diffusers folder or repository, or one ``.safetensors`` file; a single file takes
    its component configurations, and a safety checker when it has none, from the base model.

    The safety checker is loaded even when ``[image] safety_checker`` is off: that setting is only the default
    for requests that leave it open (age-restricted channels, the command line), and the bot forces the
    checker on everywhere else, so one worker serves both."""
    from diffusers import StableDiffusionPipeline

    device = resolve_device(config.device)
    dtype = resolve_dtype(config.device, device)
    name = checkpoint_source(config, checkpoint)
    source = resolve_source(name, build_tiny=config.models.build_tiny and checkpoint is None)
    with model_errors(name):
        if Path(source).is_file():
            pipe = _load_single_file(config, source, dtype)
        else:
            pipe = StableDiffusionPipeline.from_pretrained(source, dtype=dtype, use_safetensors=True)
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _load_single_file(config: Config, source: str, dtype: Any) -> Any:
    from diffusers import StableDiffusionPipeline

    if not source.endswith(".safetensors"):
        raise ModelUnavailable(f"{Path(source).name} is not a .safetensors file; only safetensors are loaded")
    base = resolve_source(config.models.image, build_tiny=config.models.build_tiny)
    pipe = StableDiffusionPipeline.from_single_file(source, config=base, torch_dtype=dtype)
    if getattr(pipe, "safety_checker", None) is None:
        from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
        from transformers import CLIPImageProcessor

        checker = StableDiffusionSafetyChecker.from_pretrained(base, subfolder="safety_checker", dtype=dtype)
        extractor = CLIPImageProcessor.from_pretrained(base, subfolder="feature_extractor")
        pipe.register_modules(safety_checker=checker, feature_extractor=extractor)
    return pipe


def weights_hash(name: str, *, length: int) -> str | None:
    """The first ``length`` hex digits of the SHA-256 of a model's weights, as A1111 writes them into a
    picture's parameters (``Model hash`` 10, ``Lora hashes`` 12): the file itself, or a diffusers folder's
    UNet weights. None when the weights are not a local file (a hub model not in the cache)."""
    import hashlib

    path = Path(name).expanduser()
    if path.is_dir():
        path = path / "unet" / "diffusion_pytorch_model.safetensors"
    elif not path.exists() and len(name.split("/")) == 2:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "unet/diffusion_pytorch_model.safetensors")
        path = Path(cached) if isinstance(cached, str) else path
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:length]


def _load_sd(config: Config, checkpoint: str | None = None) -> Any:
    from diffusers import DPMSolverMultistepScheduler

    pipe = load_sd_pipeline(config, checkpoint)
    pipe.scheduler = DPMSolverMultistepScheduler.from_config(
        pipe.scheduler.config, use_karras_sigmas=True, algorithm_type="dpmsolver++"
    )
    optimize_pipeline(pipe, config.device, pipe.device)
    logger.info("loaded image model %s on %s (%s)", checkpoint or config.models.image, pipe.device, pipe.dtype)
    return pipe
