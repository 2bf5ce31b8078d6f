"""Models a worker keeps warm between jobs: built once per process, each loaded on first use.

Models come in groups that share weights (txt2img, variations and the upscaler all use one Stable
Diffusion base) and are loaded and dropped together. When the next group does not fit in the memory budget
next to the ones already loaded (``worker.memory_budget_gb``, or the device's memory), the others are
unloaded first: a 12 GB card can alternate between the story model and Stable Diffusion without running out.

Sizes: before a group was ever loaded, an estimate from its weight files (or a typical size for models not
on disk yet); after, what loading it really took on the device.

Nothing here imports torch until a model is actually loaded, so a worker that only runs light handlers
starts in a fraction of a second.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyloom.config import Config

logger = logging.getLogger(__name__)

GB = 1024**3
IMAGE = "image"
LANGUAGE = "language"
NARRATION = "narration"
DESCRIBE = "describe"
INPAINT = "inpaint"

# Typical sizes of the default models when their files are not on disk yet to be measured.
_TYPICAL_BYTES = {
    IMAGE: int(4.0 * GB),  # SD 1.5 fp16 + safety checker + ControlNet + Real-ESRGAN, with working memory
    LANGUAGE: int(8.0 * GB),  # a ~3.8B-parameter LM in fp16
    NARRATION: int(0.5 * GB),  # two VITS voices (about 40M parameters each) with working memory
    DESCRIBE: int(2.5 * GB),  # BLIP large + CLIP ViT-L/14
    INPAINT: int(3.0 * GB),  # SD 1.5 inpainting fp16 + safety checker + CLIPSeg, with working memory
}
_QUANTIZED_FRACTION = {"none": 1.0, "8bit": 0.55, "4bit": 0.33}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")

Loader = Callable[[Config, Any], Any]  # (config, the group's ModelCache) -> loaded model


@dataclass(frozen=True)
class ModelSpec:
    name: str
    group: str
    load: Loader


def _load_txt2img(config: Config, cache: Any) -> Any:
    from storyloom.models.image.txt2img import Txt2Img

    return Txt2Img.from_config(config, cache)


def _load_variations(config: Config, cache: Any) -> Any:
    from storyloom.models.image.variations import Variations

    return Variations.from_config(config, cache)


def _load_upscaler(config: Config, cache: Any) -> Any:
    from storyloom.models.image.upscale import Upscaler

    return Upscaler.from_config(config, cache)


def _load_image_prompt(config: Config, cache: Any) -> Any:
    from storyloom.models.image.image_prompt import ImagePrompt

    return ImagePrompt.from_config(config, cache)


def _load_character_adapter(config: Config, cache: Any) -> Any:
    from storyloom.models.image.image_prompt import load_image_adapter

    return load_image_adapter(config, cache, character=True)


def _load_describer(config: Config, cache: Any) -> Any:
    from storyloom.models.image.describe import Describer

    return Describer.from_config(config, cache)


def _load_region_finder(config: Config, cache: Any) -> Any:
    from storyloom.models.image.inpaint import RegionFinder

    return RegionFinder.from_config(config, cache)


def _load_inpaint(config: Config, cache: Any) -> Any:
    from storyloom.models.image.inpaint import Inpaint

    return Inpaint.from_config(config, cache)


def _load_outpaint(config: Config, cache: Any) -> Any:
    from storyloom.models.image.inpaint import Outpaint

    return Outpaint.from_config(config, cache)


def _load_story_writer(config: Config, cache: Any) -> Any:
    from storyloom.models.story.writer import StoryWriter

    return StoryWriter.from_config(config)


def _load_narrator(config: Config, cache: Any) -> Any:
    from storyloom.models.narration.narrator import Narrator

    return Narrator.from_config(config)


def _checkpoint_loader(model: str) -> Loader:
    def load(config: Config, cache: Any) -> Any:
        from storyloom.models.image.txt2img import Txt2Img

        return Txt2Img.from_config(config, cache, checkpoint=model)

    return load


def _checkpoint_upscaler_loader(model: str) -> Loader:
    def load(config: Config, cache: Any) -> Any:
        from storyloom.models.image.upscale import Upscaler

        return Upscaler.from_config(config, cache, checkpoint=model)

    return load


def _checkpoint_variations_loader(model: str) -> Loader:
    def load(config: Config, cache: Any) -> Any:
        from storyloom.models.image.variations import Variations

        return Variations.from_config(config, cache, checkpoint=model)

    return load


def _checkpoint_image_prompt_loader(model: str) -> Loader:
    def load(config: Config, cache: Any) -> Any:
        from storyloom.models.image.image_prompt import ImagePrompt

        return ImagePrompt.from_config(config, cache, checkpoint=model)

    return load


def default_specs() -> dict[str, ModelSpec]:
    specs = (
        ModelSpec("txt2img", IMAGE, _load_txt2img),
        ModelSpec("variations", IMAGE, _load_variations),
        ModelSpec("upscaler", IMAGE, _load_upscaler),
        ModelSpec("image_prompt", IMAGE, _load_image_prompt),
        ModelSpec("character_adapter", IMAGE, _load_character_adapter),
        ModelSpec("describer", DESCRIBE, _load_describer),
        ModelSpec("region_finder", INPAINT, _load_region_finder),
        ModelSpec("inpaint", INPAINT, _load_inpaint),
        ModelSpec("outpaint", INPAINT, _load_outpaint),
        ModelSpec("story_writer", LANGUAGE, _load_story_writer),
        ModelSpec("narrator", NARRATION, _load_narrator),
    )
    return {spec.name: spec for spec in specs}


class ModelResources:
    def __init__(
        self,
        config: Config,
        *,
        specs: Mapping[str, ModelSpec] | None = None,
        budget_bytes: int | None = None,
        estimates: Mapping[str, int] | None = None,
        memory_probe: Callable[[], int] | None = None,
    ) -> None:
        self.config = config
        self._specs = dict(default_specs() if specs is None else specs)
        self._budget = budget_bytes
        self._estimates = dict(estimates or {})
        self._probe = memory_probe
        self._models: dict[str, Any] = {}
        self._caches: dict[str, Any] = {}
        self._measured: dict[str, int] = {}
        self._lock = threading.Lock()  # the heartbeat thread reads loaded() while jobs load models

    # --- what handlers use ---------------------------------------------------------------------------

    def get(self, name: str) -> Any:
        with self._lock:
            if name in self._models:
                return self._models[name]
        spec = self._specs.get(name)
        if spec is None:
            raise KeyError(f"no model named {name!r}; known: {', '.join(sorted(self._specs))}")
        self._make_room(spec.group)
        probe = self._probe or self._default_probe()
        before = probe()
        model = spec.load(self.config, self._cache(spec.group))
        grown = max(0, probe() - before)
        with self._lock:
            self._models[name] = model
            self._measured[spec.group] = self._measured.get(spec.group, 0) + grown
        logger.info("loaded %s (%s group now about %.2f GB)", name, spec.group, self.size(spec.group) / GB)
        return model

    def txt2img(self, model: str | None = None) -> Any:
        """Txt2Img on the base model, or on ``model``, one of the configured extra checkpoints: each checkpoint
        is its own memory group, kept warm beside the others while the budget allows."""
        if model is None:
            return self.get("txt2img")
        return self._on_checkpoint("txt2img", model, _checkpoint_loader(model))

    def _on_checkpoint(self, task: str, model: str, load: Loader) -> Any:
        """``task`` on one of the configured extra checkpoints, in that checkpoint's memory group."""
        known = self.config.models.checkpoints
        if model not in known:
            from storyloom.errors import InvalidInput

            raise InvalidInput(f"unknown model {model!r}; the known models: {', '.join(sorted(known)) or 'none'}")
        name = f"{task}:{model}"
        with self._lock:
            if name not in self._specs:
                self._specs[name] = ModelSpec(name, f"{IMAGE}:{model}", load)
        return self.get(name)

    def variations(self, model: str | None = None) -> Any:
        """Variations on the base model, or on ``model`` (an extra checkpoint, as for ``txt2img``)."""
        if model is None:
            return self.get("variations")
        return self._on_checkpoint("variations", model, _checkpoint_variations_loader(model))

    def upscaler(self, model: str | None = None) -> Any:
        """The upscaler, re-drawing on the base model or on ``model`` (an extra checkpoint, as for ``txt2img``)."""
        if model is None:
            return self.get("upscaler")
        return self._on_checkpoint("upscaler", model, _checkpoint_upscaler_loader(model))

    def image_prompt(self, model: str | None = None) -> Any:
        """ImagePrompt on the base model, or on ``model`` (an extra checkpoint, as for ``txt2img``)."""
        if model is None:
            return self.get("image_prompt")
        return self._on_checkpoint("image_prompt", model, _checkpoint_image_prompt_loader(model))

    def describer(self) -> Any:
        return self.get("describer")

    def region_finder(self) -> Any:
        return self.get("region_finder")

    def inpaint(self) -> Any:
        return self.get("inpaint")

    def outpaint(self) -> Any:
        return self.get("outpaint")

    def story_writer(self) -> Any:
        return self.get("story_writer")

    def narrator(self) -> Any:
        return self.get("narrator")

    def character_adapter(self) -> Any:
        """The IP-Adapter for characters' reference pictures, loaded into the image group's cache (where the image
        tasks find it) so that its size counts in the group's memory; None when these resources have no such
        model."""
        return self.get("character_adapter") if "character_adapter" in self._specs else None

    def consistent_attention_fits(self) -> bool:
        """Whether story pages can share self-attention with their reference picture here: the image models as
        measured (or estimated) beside a page's extra reference item, within the memory budget."""
        from storyloom.models.image.consistent_attention import consistent_attention_fits

        return consistent_attention_fits(self.config, budget_bytes=self.budget(), weights_bytes=self.size(IMAGE))

    def loaded(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._models))

    def loaded_groups(self) -> set[str]:
        with self._lock:
            return {self._specs[name].group for name in self._models}

    # --- memory --------------------------------------------------------------------------------------

    def budget(self) -> int:
        if self._budget is None:
            from storyloom.models.runtime.devices import memory_budget_bytes

            self._budget = memory_budget_bytes(self.config)
        return self._budget

    def size(self, group: str) -> int:
        measured = self._measured.get(group, 0)
        return measured if measured > 0 else self.estimate(group)

    def estimate(self, group: str) -> int:
        if group not in self._estimates:
            self._estimates[group] = _estimate_group(self.config, group)
        return self._estimates[group]

    def _make_room(self, group: str) -> None:
        loaded = self.loaded_groups()
        if group in loaded:
            return  # joins weights that are already there
        others = loaded - {group}
        in_use = sum(self.size(g) for g in others)
        if others and in_use + self.estimate(group) > self.budget():
            for other in sorted(others):
                logger.info("unloading the %s models to make room for the %s models", other, group)
                self.unload(other)

    def unload(self, group: str) -> None:
        with self._lock:
            for name in [n for n in self._models if self._specs[n].group == group]:
                del self._models[name]
            cache = self._caches.pop(group, None)
        if cache is not None:
            cache.clear()
        gc.collect()
        _empty_device_cache(self.config)

    def close(self) -> None:
        for group in sorted(self.loaded_groups()):
            self.unload(group)

    def _cache(self, group: str) -> Any:
        with self._lock:
            if group not in self._caches:
                from storyloom.models.runtime.loading import ModelCache

                self._caches[group] = ModelCache()
            return self._caches[group]

    def _default_probe(self) -> Callable[[], int]:
        return lambda: _device_used_bytes(self.config)


def _device_used_bytes(config: Config) -> int:
    import psutil

    from storyloom.models.runtime.devices import resolve_device

    device = resolve_device(config.device)
    if device.type == "cuda":
        import torch

        return int(torch.cuda.memory_allocated(device))
    return int(psutil.Process().memory_info().rss)


def _empty_device_cache(config: Config) -> None:
    import sys

    if "torch" not in sys.modules:
        return  # nothing was ever loaded onto a device
    from storyloom.models.runtime.devices import empty_cache, resolve_device

    empty_cache(resolve_device(config.device))


def _estimate_group(config: Config, group: str) -> int:
    if group.startswith(f"{IMAGE}:"):  # an extra checkpoint: its weights, or a typical SD 1.5
        source = config.models.checkpoints.get(group.partition(":")[2])
        size = _weights_bytes(source) if source else None
        return int(size * 1.3) if size else _TYPICAL_BYTES[IMAGE]
    if group == IMAGE:
        names = (config.models.image, config.models.controlnet_tile, config.models.esrgan)
        found = [_weights_bytes(name) for name in names]
        if found[0] is None:
            return _TYPICAL_BYTES[IMAGE]
        return int(sum(size or 0 for size in found) * 1.3)  # + activations
    if group == LANGUAGE:
        size = _weights_bytes(config.models.story)
        fraction = _QUANTIZED_FRACTION.get(config.story.quantization, 1.0)
        return int((size if size is not None else _TYPICAL_BYTES[LANGUAGE]) * fraction * 1.2)
    if group == DESCRIBE:
        sizes = [_weights_bytes(name) for name in (config.models.caption, config.models.describe_clip)]
        if any(size is None for size in sizes):
            return _TYPICAL_BYTES[DESCRIBE]
        return int(sum(size or 0 for size in sizes) * 1.2)
    if group == INPAINT:
        sizes = [_weights_bytes(name) for name in (config.models.inpainting, config.models.segmentation)]
        if any(size is None for size in sizes):
            return _TYPICAL_BYTES[INPAINT]
        return int(sum(size or 0 for size in sizes) * 1.3)
    if group == NARRATION:
        sizes = [_weights_bytes(name) for name in config.models.narration.values()]
        if any(size is None for size in sizes):
            return _TYPICAL_BYTES[NARRATION]
        return int(sum(size or 0 for size in sizes) * 1.5)  # + the decoder's activations
    return 0


def _weights_bytes(name: str) -> int | None:
    """Bytes of weight files of a local model (file or directory), or None when it is not on disk."""
    path = Path(name).expanduser()
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    return None
