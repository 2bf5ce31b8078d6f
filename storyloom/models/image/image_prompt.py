"""Pictures as prompts: an IP-Adapter for SD 1.5 steers content and style towards one picture (an image prompt)
or towards the mix of several (``/blend``: their CLIP image embeddings averaged); characters' reference pictures
steer through the same machinery (``storyloom.models.image.references``).

An adapter's weights and its CLIP image encoder are loaded once per worker (``ImageAdapter``): the plain one
(``models.ip_adapter``: one projected image embedding) and the "plus" one for characters
(``models.character_adapter``: a Resampler over the encoder's penultimate hidden states, as diffusers'
``encode_image(output_hidden_states=True)`` makes them). An ``ImageSteering`` says which adapters, pictures,
scales and region masks steer a call; ``steering_loaded`` puts its adapters into the shared UNet with diffusers'
own ``load_ip_adapter`` (from the weights kept in memory) and takes them out again afterwards, restoring the
UNet's own attention processors, so txt2img, variations and the upscaler draw exactly as before (bit for bit)
between steered jobs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Sequence
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
class ImageEmbeds:
    """Image embeddings for one adapter as ``ip_adapter_image_embeds`` takes them: ``(1, images, dim)`` (plain) or
    ``(1, images, tokens, dim)`` (plus), and the unconditional ones classifier-free guidance pairs them with."""

    positive: torch.Tensor
    negative: torch.Tensor

    def for_pipeline(self, guidance_scale: float) -> torch.Tensor:
        """With guidance diffusers splits the tensor into (negative, positive) halves; without, it is used whole."""
        return torch.cat([self.negative, self.positive]) if guidance_scale > 1 else self.positive


@dataclasses.dataclass(frozen=True)
class ImageAdapter:
    """An IP-Adapter's weights as ``load_ip_adapter`` takes them (``image_proj`` and ``ip_adapter``), and the CLIP
    image encoder with the preprocessing that makes its input."""

    weights: dict[str, dict[str, torch.Tensor]]
    encoder: Any  # CLIPVisionModelWithProjection
    processor: Any  # CLIPImageProcessor
    name: str

    @property
    def plus(self) -> bool:
        """A "plus" adapter (Resampler projection with learned ``latents``) reads the encoder's hidden states."""
        return "latents" in self.weights["image_proj"]

    def embed(self, pictures: Sequence[Image.Image]) -> ImageEmbeds:
        """The mean of the pictures' embeddings as one image (one picture: its own embedding)."""
        positive, negative = self._encode(pictures)
        return ImageEmbeds(positive.mean(dim=0, keepdim=True)[None], negative[:1][None])

    def embed_each(self, pictures: Sequence[Image.Image]) -> ImageEmbeds:
        """One embedding per picture, in order (several images for one adapter, e.g. masked to regions)."""
        positive, negative = self._encode(pictures)
        return ImageEmbeds(positive[None], negative[None])

    @torch.no_grad()
    def _encode(self, pictures: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """As diffusers' ``encode_image``: plain adapters take ``image_embeds`` (unconditional: zeros); plus
        adapters the penultimate hidden states (unconditional: those of an all-zero picture)."""
        pixels = self.processor(images=[p.convert("RGB") for p in pictures], return_tensors="pt").pixel_values
        parameter = next(self.encoder.parameters())
        pixels = pixels.to(device=parameter.device, dtype=parameter.dtype)
        if not self.plus:
            embeds = self.encoder(pixels).image_embeds
            return embeds, torch.zeros_like(embeds)
        positive = self.encoder(pixels, output_hidden_states=True).hidden_states[-2]
        negative = self.encoder(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
        return positive, negative


MaskMaker = Callable[[int, int], torch.Tensor]  # (width, height) -> masks (1, images, height, width), 0 to 1


@dataclasses.dataclass(frozen=True)
class AdapterPart:
    """One adapter's share of an ``ImageSteering``: its pictures' embeddings, a scale per picture and, when each
    picture steers only a region of the picture, what makes the masks for an output size."""

    adapter: ImageAdapter
    embeds: ImageEmbeds
    scales: tuple[float, ...]
    masks: MaskMaker | None = None

    @property
    def scale(self) -> float | list[float]:
        """``set_ip_adapter_scale``'s entry: a list (one per picture) goes with masks, a number without."""
        return list(self.scales) if self.masks is not None else self.scales[0]


@dataclasses.dataclass(frozen=True)
class ImageSteering:
    """Which IP-Adapters steer the calls inside ``steering_loaded``, and with what."""

    parts: tuple[AdapterPart, ...]

    def with_part(self, part: AdapterPart) -> ImageSteering:
        return ImageSteering((*self.parts, part))

    def pipeline_arguments(self, guidance_scale: float, width: int, height: int) -> dict[str, Any]:
        """``ip_adapter_image_embeds`` and, when any part is masked, ``cross_attention_kwargs`` with
        ``ip_adapter_masks`` (one entry per adapter; None where the adapter steers the whole picture)."""
        arguments: dict[str, Any] = {
            "ip_adapter_image_embeds": [part.embeds.for_pipeline(guidance_scale) for part in self.parts]
        }
        masks = [None if part.masks is None else part.masks(width, height) for part in self.parts]
        if any(mask is not None for mask in masks):
            arguments["cross_attention_kwargs"] = {"ip_adapter_masks": masks}
        return arguments


@contextlib.contextmanager
def steering_loaded(task: Any, steering: ImageSteering) -> Iterator[None]:
    """Inside the block ``task`` (anything with ``pipe`` and a ``steering`` attribute its pipeline calls read)
    draws steered by ``steering``; afterwards the UNet's own attention processors are back (bit for bit the
    same pictures as before) and an outer steering, if there was one, is in place again."""
    pipe, unet = task.pipe, task.pipe.unet
    previous: ImageSteering | None = task.steering
    if previous is not None:
        _unload_adapters(pipe)
    own_processors = dict(unet.attn_processors)
    try:
        _load_adapters(pipe, steering)
        task.steering = steering
        yield
    finally:
        task.steering = None
        _unload_adapters(pipe)
        unet.set_attn_processor(own_processors)
        if previous is not None:
            _load_adapters(pipe, previous)
            task.steering = previous


def _load_adapters(pipe: Any, steering: ImageSteering) -> None:
    parts = steering.parts
    # The encoder is registered so load_ip_adapter does not look for one; embeddings are made by ``embed``.
    pipe.register_modules(image_encoder=parts[0].adapter.encoder)
    blanks = [""] * len(parts)
    pipe.load_ip_adapter(
        [part.adapter.weights for part in parts], subfolder=blanks, weight_name=blanks, image_encoder_folder=None
    )
    pipe.set_ip_adapter_scale([part.scale for part in parts])


def _unload_adapters(pipe: Any) -> None:
    if getattr(pipe.unet, "encoder_hid_proj", None) is not None:
        pipe.unload_ip_adapter()
    pipe.register_modules(image_encoder=None)


def load_image_adapter(config: Config, cache: ModelCache | None = None, *, character: bool = False) -> ImageAdapter:
    """The configured IP-Adapter on the configured device, loaded once per cache: ``models.ip_adapter`` +
    ``models.ip_adapter_weights`` (image prompts, /blend), or with ``character`` ``models.character_adapter`` +
    ``models.character_adapter_weights`` (characters' reference pictures)."""
    models = config.models
    name, weights_name = (
        (models.character_adapter, models.character_adapter_weights)
        if character
        else (models.ip_adapter, models.ip_adapter_weights)
    )
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.device, device)
    key = ("ip-adapter", name, weights_name, str(device), str(dtype))
    if cache is None:
        return _load_image_adapter(config, name, weights_name, device, dtype, cache)
    return cache.get(key, lambda: _load_image_adapter(config, name, weights_name, device, dtype, cache))


def _load_image_adapter(
    config: Config, name: str, weights_name: str, device: torch.device, dtype: torch.dtype, cache: ModelCache | None
) -> ImageAdapter:
    from safetensors import safe_open
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

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
    if not weights["image_proj"] or not weights["ip_adapter"]:
        raise ModelUnavailable(f"{weights_name} of {name!r} is not an IP-Adapter (no image_proj/ip_adapter weights)")

    def load_encoder() -> Any:
        with model_errors(name):
            encoder = CLIPVisionModelWithProjection.from_pretrained(source, subfolder=encoder_folder, dtype=dtype)
        encoder.to(device).eval()  # type: ignore[arg-type]  # transformers types ``to`` as taking a model
        return encoder

    # The plain and the plus adapter of one repository share their image encoder (h94/IP-Adapter's is a ViT-H of
    # about 1.2 GB in half precision): loaded once per cache.
    encoder_key = ("ip-adapter-encoder", source, encoder_folder, str(device), str(dtype))
    encoder = load_encoder() if cache is None else cache.get(encoder_key, load_encoder)
    side = encoder.config.image_size
    processor = CLIPImageProcessor(size=side, crop_size=side)  # what load_ip_adapter builds for its encoder
    logger.info("loaded IP-Adapter %s (%s) on %s", name, weights_name, device)
    return ImageAdapter(weights, encoder, processor, PurePosixPath(weights_name).stem)


class ImagePrompt(Txt2Img):
    """Txt2Img steered by pictures: ``pictures`` (1 to 5) through the IP-Adapter at ``image_weight``."""

    def __init__(self, pipe: Any, config: Config, *, safety: Any, model_name: str) -> None:
        super().__init__(pipe, config, safety=safety, model_name=model_name)
        self.adapter: ImageAdapter | None = None

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
        own = AdapterPart(self.adapter, self.adapter.embed(pictures), (weight,))
        # Inside ``drawing_characters`` the characters' references steer beside the pictures.
        steering = ImageSteering((own,)) if self.steering is None else self.steering.with_part(own)
        with steering_loaded(self, steering):
            batch = super().__call__(prompt, negative_prompt, **options)
        extra = {ADAPTER_KEY: self.adapter.name, WEIGHT_KEY: f"{weight:g}"}
        if len(pictures) > 1:
            extra[PICTURES_KEY] = str(len(pictures))
        parameters = [dataclasses.replace(p, extra={**p.extra, **extra}) for p in batch.parameters]
        return dataclasses.replace(batch, parameters=parameters)
