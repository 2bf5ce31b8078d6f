"""Upscale, the classic two-stage recipe, or Real-ESRGAN alone.

``chain``: img2img + ControlNet at 2× (keeps the form, adds detail), then Real-ESRGAN 4× (sharp, cheap):
8× overall, 512² → 1024² → 4096². ``esrgan``: Real-ESRGAN 4× only, for when the picture must not change.

``Upscaler.from_config`` loads the configured mode's models up front; any stage a later request needs is
loaded then and kept, so a process that only ever runs ``esrgan`` never loads Stable Diffusion. Progress runs across both stages: ``step``/``total`` count
denoising steps plus tiles, and ``StepProgress.stage`` names the stage (``"controlnet"``/``"esrgan"``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from PIL import Image, ImageOps, UnidentifiedImageError

from storyloom.domain.sizes import MAX_UPSCALE_SOURCE_SIDE, MIN_UPSCALE_SOURCE_SIDE
from storyloom.errors import InvalidInput
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress

if TYPE_CHECKING:
    from storyloom.config import Config
    from storyloom.domain.parameters import GenerationParameters
    from storyloom.models.image.controlnet_upscale import ControlNetKind, ControlNetUpscaler
    from storyloom.models.image.esrgan import RealEsrgan
    from storyloom.models.image.safety import SafetyFilter
    from storyloom.models.runtime.loading import ModelCache

logger = logging.getLogger(__name__)

UpscaleMode = Literal["chain", "esrgan"]
MODES: tuple[str, ...] = ("chain", "esrgan")


# Used when neither the request nor the image's own parameters give a prompt: the tile ControlNet
# keeps the content, so a neutral quality prompt is what tile upscalers conventionally use.
FALLBACK_PROMPT = "best quality, highly detailed"


@dataclass(frozen=True)
class UpscaleResult:
    """The upscaled image, the parameters its PNG carries, and whether the safety filter blurred it."""

    image: Image.Image
    parameters: GenerationParameters
    mode: UpscaleMode
    nsfw: bool = False

    def save(self, path: Path | str) -> Path:
        from storyloom.domain.parameters import save_png

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_png(self.image, path, self.parameters)
        return path


def open_upscale_source(source: Image.Image | Path | str, *, mode: str = "chain") -> Image.Image:
    """An image ready to upscale, from a file or a PIL image; every problem is a short ``InvalidInput``.

    The size is checked from the file's header before any pixel is decoded, so an absurdly large image
    is refused without costing its memory.
    """
    from storyloom.models.image.imaging import read_image_file

    if isinstance(source, Image.Image):
        check_size(source.size, mode)
        return source
    path = Path(source)
    size = _header_size(path, mode)
    if size is not None:
        check_size(size, mode)
    image = read_image_file(path)  # missing, unreadable or not an image: its own InvalidInput
    # Upright (phone JPEGs store their rotation in EXIF); ``info`` keeps the PNG parameters.
    upright = ImageOps.exif_transpose(image)
    check_size(upright.size, mode)
    return upright


def _header_size(path: Path, mode: str) -> tuple[int, int] | None:
    """(width, height) from the header only, or None when the file cannot be opened as an image at all."""
    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError:
        raise InvalidInput(
            f"{path.name!r} is far too large; {mode} upscale accepts at most {MAX_UPSCALE_SOURCE_SIDE[mode]} pixels on each side"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def check_size(size: tuple[int, int], mode: str) -> None:
    """Too small to upscale, or too big for memory/time: say which limit, and what it is."""
    width, height = size
    if min(width, height) < MIN_UPSCALE_SOURCE_SIDE:
        raise InvalidInput(
            f"image is {width}×{height} pixels; upscale needs at least {MIN_UPSCALE_SOURCE_SIDE} pixels on each side"
        )
    limit = MAX_UPSCALE_SOURCE_SIDE[mode]
    if max(width, height) > limit:
        raise InvalidInput(
            f"image is {width}×{height} pixels; {mode} upscale accepts at most {limit} pixels on each side"
        )


class Upscaler:
    """Image → ``UpscaleResult``; holds its stage models once loaded (load once, call many times)."""

    def __init__(
        self,
        config: Config,
        cache: ModelCache | None = None,
        *,
        controlnet: ControlNetKind | None = None,
        checkpoint: str | None = None,
    ) -> None:
        from storyloom.models.runtime.loading import ModelCache

        self.config = config
        self.checkpoint = checkpoint  # the re-drawing's model: one of models.checkpoints, or None for the base
        self.cache = cache if cache is not None else ModelCache()
        self.controlnet_kind: ControlNetKind = controlnet or config.upscale.controlnet
        self._esrgan: RealEsrgan | None = None
        self._controlnet: ControlNetUpscaler | None = None
        self._safety: SafetyFilter | None = None
        self._redraw_loras: tuple[Sequence[tuple[Path, str]], float] | None = None  # set by ``using_loras``
        self._redraw_steering: Any = None  # an ``ImageSteering``, set by ``steered_by``
        self._lora_hashes: dict[str, str | None] = {}  # the prompt LoRAs' weights hashes, once per worker

    @classmethod
    def from_config(
        cls,
        config: Config,
        cache: ModelCache | None = None,
        *,
        controlnet: ControlNetKind | None = None,
        mode: UpscaleMode | None = None,
        checkpoint: str | None = None,
    ) -> Upscaler:
        """An upscaler with the models of ``mode`` (default: the configured one) already loaded, so a worker
        pays (and measures) the loading when it builds its resources, not in the first job. ``checkpoint``: the
        re-drawing on one of the extra checkpoints (a picture drawn with it), instead of the base model."""
        upscaler = cls(config, cache, controlnet=controlnet, checkpoint=checkpoint)
        upscaler.load(config.upscale.mode if mode is None else mode)
        return upscaler

    def load(self, mode: UpscaleMode) -> None:
        """Load the models ``mode`` needs now; the constructor alone loads nothing."""
        self.check_inputs(mode)
        if mode == "chain":
            self.controlnet  # noqa: B018 - loading is the point
        self.esrgan  # noqa: B018

    @property
    def esrgan(self) -> RealEsrgan:
        if self._esrgan is None:
            from storyloom.models.image.esrgan import RealEsrgan

            self._esrgan = RealEsrgan.from_config(self.config, self.cache)
        return self._esrgan

    @property
    def controlnet(self) -> ControlNetUpscaler:
        if self._controlnet is None:
            from storyloom.models.image.controlnet_upscale import ControlNetUpscaler
            from storyloom.models.image.safety import SafetyFilter
            from storyloom.models.runtime.loading import load_sd_components

            base = load_sd_components(self.config, self.cache, checkpoint=self.checkpoint)
            self._safety = SafetyFilter.from_pipeline(base)
            self._controlnet = ControlNetUpscaler.from_pipeline(
                base, self.config, self.cache, controlnet=self.controlnet_kind
            )
        return self._controlnet

    def using_lora(
        self, lora_file: Path, *, adapter_name: str, scale: float = 1.0
    ) -> contextlib.AbstractContextManager:
        """``using_loras`` with one LoRA."""
        return self.using_loras([(lora_file, adapter_name)], scale=scale)

    @contextlib.contextmanager
    def using_loras(self, loras: Sequence[tuple[Path, str]], *, scale: float = 1.0) -> Iterator[None]:
        """Calls inside the block re-draw with the LoRAs (file, adapter name) of characters, so the 2× pass keeps
        the characters its prompt names. They are loaded around the ControlNet pass only: ESRGAN draws nothing
        new, so an ``esrgan`` call neither loads them nor Stable Diffusion."""
        previous, self._redraw_loras = self._redraw_loras, (list(loras), scale)
        try:
            yield
        finally:
            self._redraw_loras = previous

    @contextlib.contextmanager
    def steered_by(self, steering: Any) -> Iterator[None]:
        """Calls inside the block re-draw steered by ``steering`` (a character's reference picture), applied
        around the ControlNet pass only, as the LoRAs are."""
        previous, self._redraw_steering = self._redraw_steering, steering
        try:
            yield
        finally:
            self._redraw_steering = previous

    @contextlib.contextmanager
    def _redrawing_with_characters(self, controlnet: ControlNetUpscaler) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            if self._redraw_loras is not None:
                loras, scale = self._redraw_loras
                stack.enter_context(controlnet.using_loras(loras, scale=scale))
            if self._redraw_steering is not None:
                stack.enter_context(controlnet.steered_by(self._redraw_steering))
            yield

    def check_inputs(self, mode: Any) -> None:
        if mode not in MODES:
            raise InvalidInput(f"upscale mode {mode!r} is not allowed; use one of: {', '.join(MODES)}")

    def __call__(
        self,
        image: Image.Image | Path | str,
        *,
        prompt: str | None = None,
        negative_prompt: str | None = None,
        mode: UpscaleMode | None = None,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        safety_checker: bool | None = None,
    ) -> UpscaleResult:
        """Upscale ``image`` (a PIL image or a file). The prompt defaults to the one in the image's PNG
        parameters; ``seed`` makes the chain's re-drawing reproducible (random and reported when None);
        ``safety_checker`` (None: ``image.safety_checker``) decides whether the re-drawn picture is checked."""
        mode = self.config.upscale.mode if mode is None else mode
        self.check_inputs(mode)
        source = open_upscale_source(image, mode=mode)
        stored = _stored_parameters(source)
        logger.debug("upscaling a %dx%d image (%s)", source.width, source.height, mode)
        if mode == "esrgan":
            return self._esrgan_only(source, stored, prompt, negative_prompt, progress, should_cancel)
        checked = self.config.image.safety_checker if safety_checker is None else safety_checker
        return self._chain(source, stored, prompt, negative_prompt, seed, progress, should_cancel, checked)

    def _esrgan_only(
        self,
        source: Image.Image,
        stored: GenerationParameters | None,
        prompt: str | None,
        negative_prompt: str | None,
        progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
    ) -> UpscaleResult:
        """Nothing is re-drawn, so the source's own parameters (when it has them) still describe the picture."""
        from storyloom.domain.parameters import GenerationParameters

        image = self.esrgan(source.convert("RGB"), progress=progress, should_cancel=should_cancel)
        base = stored or GenerationParameters(
            prompt=prompt or "", negative_prompt=negative_prompt or "", steps=0, seed=0
        )
        return UpscaleResult(image, self._parameters(base, source, image, "esrgan"), "esrgan")

    def _chain(
        self,
        source: Image.Image,
        stored: GenerationParameters | None,
        prompt: str | None,
        negative_prompt: str | None,
        seed: int | None,
        progress: ProgressCallback | None,
        should_cancel: CancelCheck | None,
        safety_checker: bool,
    ) -> UpscaleResult:
        from storyloom.domain.parameters import DEFAULT_SAMPLER, GenerationParameters
        from storyloom.models.image.controlnet_upscale import upscaled_size
        from storyloom.models.image.imaging import blurred_placeholder
        from storyloom.models.image.sd_task import apply_safety
        from storyloom.models.runtime.loading import model_display_name

        if prompt is None:
            prompt = stored.prompt if stored and stored.prompt.strip() else FALLBACK_PROMPT
        if negative_prompt is None:
            negative_prompt = stored.negative_prompt if stored else ""
        controlnet, esrgan = self.controlnet, self.esrgan
        tracker = (
            _ChainProgress(progress, esrgan.num_tiles(*upscaled_size(source.width, source.height)))
            if progress
            else None
        )
        from storyloom.models.image.lora import named_loras_loaded

        loras = named_loras_loaded(controlnet.pipe, self.config, prompt, self._lora_hashes)
        with self._redrawing_with_characters(controlnet), loras as lora_extra:  # the prompt's <lora:…> as drawn
            first = controlnet(
                source,
                prompt=prompt,
                negative_prompt=negative_prompt,
                seed=seed,
                progress=tracker.controlnet if tracker else None,
                should_cancel=should_cancel,
                first_pass_steps=stored.steps if stored else None,
            )
        (redrawn,), (nsfw,) = apply_safety([first.image], self._safety, safety_checker)
        if nsfw:
            # Nothing worth sharpening: the placeholder is simply made at the final size.
            size = (redrawn.width * esrgan.scale, redrawn.height * esrgan.scale)
            image = blurred_placeholder(redrawn.resize(size, Image.Resampling.BILINEAR))
        else:
            image = esrgan(redrawn, progress=tracker.esrgan if tracker else None, should_cancel=should_cancel)
        base = GenerationParameters(
            prompt=prompt,
            negative_prompt=negative_prompt,
            steps=first.num_inference_steps,
            sampler=DEFAULT_SAMPLER,
            cfg_scale=first.guidance_scale,
            seed=first.seed,
            model=self.checkpoint or model_display_name(self.config.models.image),
            denoising_strength=first.strength,
            extra={**lora_extra, "ControlNet": f"{first.controlnet}, scale {first.controlnet_conditioning_scale:g}"},
        )
        return UpscaleResult(image, self._parameters(base, source, image, "chain"), "chain", nsfw=nsfw)

    def _parameters(
        self, base: GenerationParameters, source: Image.Image, image: Image.Image, mode: str
    ) -> GenerationParameters:
        """``base`` at the final size, with how it was upscaled: ``Upscale: chain 8x, Upscaler: …, Source size: 64x64``."""
        from storyloom.models.runtime.loading import model_display_name

        factor = round(image.width / source.width, 2)
        extra = {
            **base.extra,
            "Upscale": f"{mode} {factor:g}x",
            "Upscaler": model_display_name(self.config.models.esrgan),
            "Source size": f"{source.width}x{source.height}",
        }
        return replace(base, width=image.width, height=image.height, extra=extra)


def _stored_parameters(image: Image.Image) -> GenerationParameters | None:
    """The image's own A1111 parameters; unparseable ones (edited by hand, another tool) count as none."""
    from storyloom.domain.parameters import read_png_parameters

    try:
        return read_png_parameters(image)
    except ValueError:
        logger.debug("ignoring unreadable PNG parameters", exc_info=True)
        return None


class _ChainProgress:
    """Re-numbers the two stages' progress into one count: the denoising steps, then the tiles."""

    def __init__(self, progress: ProgressCallback, tiles: int) -> None:
        self.progress = progress
        self.tiles = tiles
        self.steps = 0

    def controlnet(self, update: StepProgress) -> None:
        self.steps = update.total
        self.progress(replace(update, total=update.total + self.tiles))

    def esrgan(self, update: StepProgress) -> None:
        self.progress(replace(update, step=self.steps + update.step, total=self.steps + update.total))
