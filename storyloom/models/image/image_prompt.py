"""Pictures as prompts: an IP-Adapter for SD 1.5 steers content and style towards one picture (an image prompt)
or towards the mix of several (``/blend``: their CLIP image embeddings averaged).

The adapter's weights and its CLIP image encoder are loaded once per worker (``ImageAdapter``). For each call
the adapter is put into the shared UNet with diffusers' own ``load_ip_adapter`` (from the weights kept in
memory) and taken out again afterwards, restoring the UNet's own attention processors, so txt2img, variations
and the upscaler draw exactly as before (bit for bit) between image-prompt jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from PIL import Image

from storyloom.config import Config
from storyloom.errors import InvalidInput, ModelUnavailable
from storyloom.models.image.sd_task import ImageBatch
from storyloom.models.image.txt2img import Txt2Img
from storyloom.models.runtime.devices import resolve_device, resolve_dtype
from storyloom.models.runtime.loading import ModelCache, model_errors, resolve_source

logger = logging.getLogger(__name__)

MAX_PICTURES = 5
# /blend without words: the IP-Adapter authors' own neutral prompt, so the pictures decide what is drawn.
DEFAULT_BLEND_PROMPT = "best quality, high quality"
IMAGE_ENCODER_FOLDER = "image_encoder"  # beside the weights file, as load_ip_adapter expects it
# What the PNG parameters call the picture's part (the keys A1111's IP-Adapter extensions write).
ADAPTER_KEY = "IP-Adapter"
WEIGHT_KEY = "IP-Adapter weight"
PICTURES_KEY = "IP-Adapter images"


@dataclasses.dataclass(frozen=True)
class ImageAdapter:
    """An IP-Adapter's weights as ``load_ip_adapter`` takes them (``image_proj`` and ``ip_adapter``), and the CLIP
    image encoder with the preprocessing that makes its input."""

    weights: dict[str, dict[str, torch.Tensor]]
    encoder: Any  # CLIPVisionModelWithProjection
    processor: Any  # CLIPImageProcessor
    name: str

    @torch.no_grad()
    def embed(self, pictures: Sequence[Image.Image]) -> torch.Tensor:
        """The mean of the pictures' image embeddings, ``(1, 1, dim)`` (one picture: its own embedding)."""
        pixels = self.processor(images=[p.convert("RGB") for p in pictures], return_tensors="pt").pixel_values
        parameter = next(self.encoder.parameters())
        embeds = self.encoder(pixels.to(device=parameter.device, dtype=parameter.dtype)).image_embeds
        return embeds.mean(dim=0, keepdim=True)[None]


def load_image_adapter(config: Config, cache: ModelCache | None = None) -> ImageAdapter:
    """The configured IP-Adapter (``models.ip_adapter`` + ``models.ip_adapter_weights``) on the configured device,
    loaded once per cache."""
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.device, device)
    key = ("ip-adapter", config.models.ip_adapter, config.models.ip_adapter_weights, str(device), str(dtype))
    if cache is None:
        return _load_image_adapter(config, device, dtype)
    return cache.get(key, lambda: _load_image_adapter(config, device, dtype))


def _load_image_adapter(config: Config, device: torch.device, dtype: torch.dtype) -> ImageAdapter:
    from safetensors import safe_open
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    name, weights_name = config.models.ip_adapter, config.models.ip_adapter_weights
    if not weights_name.endswith(".safetensors"):
        raise ModelUnavailable(f"the IP-Adapter weights must be a .safetensors file (got {weights_name!r})")
    source = resolve_source(name, build_tiny=config.models.build_tiny)
    encoder_folder = str(PurePosixPath(weights_name).parent / IMAGE_ENCODER_FOLDER)
    with model_errors(name):
        if Path(source).is_dir():
            weights_file = str(Path(source) / weights_name)
        else:
            from huggingface_hub import hf_hub_download

            weights_file = hf_hub_download(repo_id=source, filename=weights_name)
        weights: dict[str, dict[str, torch.Tensor]] = {"image_proj": {}, "ip_adapter": {}}
        with safe_open(weights_file, framework="pt", device="cpu") as opened:
            for key in opened.keys():
                part, _, rest = key.partition(".")
                if part in weights:
                    weights[part][rest] = opened.get_tensor(key)
        encoder = CLIPVisionModelWithProjection.from_pretrained(source, subfolder=encoder_folder, dtype=dtype)
    if not weights["image_proj"] or not weights["ip_adapter"]:
        raise ModelUnavailable(f"{weights_name} of {name!r} is not an IP-Adapter (no image_proj/ip_adapter weights)")
    encoder.to(device).eval()  # type: ignore[arg-type]  # transformers types ``to`` as taking a model
    side = encoder.config.image_size
    processor = CLIPImageProcessor(size=side, crop_size=side)  # what load_ip_adapter builds for its encoder
    logger.info("loaded IP-Adapter %s (%s) on %s", name, weights_name, device)
    return ImageAdapter(weights, encoder, processor, PurePosixPath(weights_name).stem)


class ImagePrompt(Txt2Img):
    """Txt2Img steered by pictures: ``pictures`` (1 to 5) through the IP-Adapter at ``image_weight``."""

    def __init__(self, pipe: Any, config: Config, *, safety: Any, model_name: str) -> None:
        super().__init__(pipe, config, safety=safety, model_name=model_name)
        self.adapter: ImageAdapter | None = None
        self._image_embeds: torch.Tensor | None = None  # set only for the length of one call

    @classmethod
    def from_config(cls, config: Config, cache: ModelCache | None = None, *, checkpoint: str | None = None):
        task = super().from_config(config, cache, checkpoint=checkpoint)
        task.adapter = load_image_adapter(config, cache)
        return task

    def check_pictures(self, pictures: Sequence[Image.Image], image_weight: Any) -> float:
        """The adapter scale to use, or ``InvalidInput`` naming the bad count or weight."""
        if not 1 <= len(pictures) <= MAX_PICTURES:
            raise InvalidInput(f"give between 1 and {MAX_PICTURES} pictures (got {len(pictures)})")
        weight = self.config.image.image_weight if image_weight is None else image_weight
        if (
            isinstance(weight, bool)
            or not isinstance(weight, (int, float))
            or not math.isfinite(weight)
            or not 0 <= weight <= 1
        ):
            raise InvalidInput(f"image weight must be between 0 and 1 (got {weight})")
        return float(weight)

    def __call__(  # type: ignore[override]
        self,
        prompt: str,
        negative_prompt: str = "",
        *,
        pictures: Sequence[Image.Image],
        image_weight: float | None = None,
        **options: Any,
    ) -> ImageBatch:
        """Txt2Img's batch (same options) drawn with the pictures' mean embedding steering every image."""
        weight = self.check_pictures(pictures, image_weight)
        if self.adapter is None:
            raise ModelUnavailable("the image-prompt pipeline was built without its IP-Adapter")
        embeds = self.adapter.embed(pictures)
        with self.adapter_loaded(weight):
            self._image_embeds = embeds
            try:
                batch = super().__call__(prompt, negative_prompt, **options)
            finally:
                self._image_embeds = None
        extra = {ADAPTER_KEY: self.adapter.name, WEIGHT_KEY: f"{weight:g}"}
        if len(pictures) > 1:
            extra[PICTURES_KEY] = str(len(pictures))
        parameters = [dataclasses.replace(p, extra={**p.extra, **extra}) for p in batch.parameters]
        return dataclasses.replace(batch, parameters=parameters)

    @contextlib.contextmanager
    def adapter_loaded(self, scale: float) -> Iterator[None]:
        """The IP-Adapter in the shared UNet at ``scale`` for the calls inside; the UNet's own attention
        processors are back afterwards, success or failure."""
        assert self.adapter is not None
        pipe, unet = self.pipe, self.pipe.unet
        own_processors = dict(unet.attn_processors)
        # The encoder is registered so load_ip_adapter does not look for one; embeddings are made by ``embed``.
        pipe.register_modules(image_encoder=self.adapter.encoder)
        try:
            pipe.load_ip_adapter(self.adapter.weights, subfolder="", weight_name="", image_encoder_folder=None)
            pipe.set_ip_adapter_scale(scale)
            yield
        finally:
            if getattr(unet, "encoder_hid_proj", None) is not None:
                pipe.unload_ip_adapter()
            pipe.register_modules(image_encoder=None)
            unet.set_attn_processor(own_processors)

    def _call_pipeline(
        self, seeds: list[int], prompt_embeds: Any, negative_embeds: Any, callback: Any, **task_arguments: Any
    ) -> list[Image.Image]:
        if self._image_embeds is not None:
            embeds = self._image_embeds
            if task_arguments.get("guidance_scale", 0) > 1:  # diffusers splits (negative, positive) for CFG
                embeds = torch.cat([torch.zeros_like(embeds), embeds])
            task_arguments["ip_adapter_image_embeds"] = [embeds]
        return super()._call_pipeline(seeds, prompt_embeds, negative_embeds, callback, **task_arguments)
