"""Real-ESRGAN super-resolution, tiled so memory does not grow with the image.

The weights run through ``spandrel`` (the loader AUTOMATIC1111 and ComfyUI use; the old
``realesrgan``/``basicsr`` packages no longer import with current torchvision). We read the
state dict ourselves so that only safetensors or ``torch.load(weights_only=True)`` ever touch
the file, and hand it to spandrel just for architecture detection.

Tiling: the image is cut into ``tile``-sized pieces that overlap by ``overlap`` pixels. Each piece
is upscaled on its own and blended into the output with feathered (linear-ramp) weights that sum
to one across every overlap, so no seam shows. The output is the final 8-bit array, allocated
once; the torch working set is one tile at a time, so peak memory depends on the tile size and
not on the image.
"""

from __future__ import annotations

import logging
import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from storyloom.errors import InvalidInput, JobCanceled, ModelUnavailable, OutOfMemory
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress

if TYPE_CHECKING:
    from storyloom.config import Config
    from storyloom.models.runtime.loading import ModelCache

logger = logging.getLogger(__name__)

STAGE = "esrgan"
_SAFE_PICKLE_SUFFIXES = {".pth", ".pt", ".ckpt", ".bin"}


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a weights file without ever running pickled code: safetensors, or ``weights_only`` torch.load."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    suffix = path.suffix.lower()
    if suffix != ".safetensors" and suffix not in _SAFE_PICKLE_SUFFIXES:
        raise ModelUnavailable(f"Real-ESRGAN weights {path.name!r} must be .safetensors or .pth")
    try:
        if suffix == ".safetensors":
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, pickle.UnpicklingError, SafetensorError) as exc:
        # weights_only refuses anything but tensors and plain containers with UnpicklingError.
        raise ModelUnavailable(f"Real-ESRGAN weights {path.name!r} could not be read ({type(exc).__name__})") from None
    if not isinstance(state, dict):
        raise ModelUnavailable(f"Real-ESRGAN weights {path.name!r} do not hold a state dict")
    return state


def tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Start/end of each tile along one axis: as few full-sized tiles as cover ``length`` with at least
    ``overlap`` pixels shared between neighbours, spread evenly so no tile is wasted on a sliver."""
    if length <= tile:
        return [(0, length)]
    count = 1 + math.ceil((length - tile) / (tile - overlap))
    step = (length - tile) / (count - 1)
    return [(round(k * step), round(k * step) + tile) for k in range(count)]


def blend_weights(spans: list[tuple[int, int]], index: int, scale: int, ramp: int) -> np.ndarray:
    """1-D feathering weights (output pixels) of tile ``index``: a linear ramp of ``ramp`` output pixels
    centred in each overlap with a neighbour. Neighbouring ramps are exact complements, so the weights
    of all tiles sum to one at every pixel and no normalisation buffer is needed."""
    start, end = spans[index]
    x = np.arange(start * scale, end * scale, dtype=np.float32) + 0.5
    weights = np.ones_like(x)
    if index > 0:
        weights *= _ramp(x, (start + spans[index - 1][1]) * scale / 2, ramp)
    if index + 1 < len(spans):
        weights *= 1.0 - _ramp(x, (spans[index + 1][0] + end) * scale / 2, ramp)
    return weights


def _ramp(x: np.ndarray, centre: float, width: int) -> np.ndarray:
    if width <= 0:
        return (x > centre).astype(np.float32)
    return np.clip((x - centre) / width + 0.5, 0.0, 1.0)


@dataclass(frozen=True)
class _Tile:
    y: tuple[int, int]
    x: tuple[int, int]
    row_weight: np.ndarray  # (h * scale,) float32
    col_weight: np.ndarray  # (w * scale,) float32

    def weight(self) -> np.ndarray:
        """The 2-D blending weight, shaped to multiply an (h, w, 3) tile."""
        return np.outer(self.row_weight, self.col_weight)[..., None]


class RealEsrgan:
    """A loaded Real-ESRGAN (or any spandrel super-resolution) model: load once, call many times.

    ``__call__(image)`` returns the image upscaled by :attr:`scale` (4 for x4plus)."""

    def __init__(
        self, descriptor: Any, *, device: torch.device, dtype: torch.dtype, tile: int = 256, overlap: int = 16
    ) -> None:
        self.descriptor = descriptor
        self.device = device
        self.dtype = dtype
        self.tile = tile
        self.overlap = overlap

    @property
    def scale(self) -> int:
        return int(self.descriptor.scale)

    @classmethod
    def from_config(cls, config: Config, cache: ModelCache | None = None) -> RealEsrgan:
        """Load ``config.models.esrgan`` (a local file, a hub ``owner/repo/file``, or a tiny model built on
        demand) on the configured device; fp16 on CUDA when the architecture supports it."""
        from storyloom.models.runtime.devices import resolve_device, resolve_dtype

        device = resolve_device(config.device)
        dtype = resolve_dtype(config.device, device)
        key = ("esrgan", config.models.esrgan, str(device), str(dtype))

        def load() -> Any:
            from storyloom.models.runtime.loading import resolve_source

            path = Path(resolve_source(config.models.esrgan, build_tiny=config.models.build_tiny))
            return cls.load_descriptor(path, device=device, dtype=dtype)

        descriptor = load() if cache is None else cache.get(key, load)
        return cls(
            descriptor,
            device=device,
            dtype=descriptor.dtype,
            tile=config.upscale.esrgan_tile,
            overlap=config.upscale.esrgan_tile_overlap,
        )

    @classmethod
    def from_file(
        cls,
        path: Path | str,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        tile: int = 256,
        overlap: int = 16,
    ) -> RealEsrgan:
        """Load a weights file directly (benchmarks, scripts)."""
        device = torch.device(device)
        descriptor = cls.load_descriptor(Path(path), device=device, dtype=dtype)
        return cls(descriptor, device=device, dtype=descriptor.dtype, tile=tile, overlap=overlap)

    @staticmethod
    def load_descriptor(path: Path, *, device: torch.device, dtype: torch.dtype) -> Any:
        """Detect the architecture with spandrel and move the model to ``device``/``dtype``."""
        from spandrel import ImageModelDescriptor, ModelLoader, UnsupportedModelError, canonicalize_state_dict

        if not path.is_file():
            raise ModelUnavailable(f"Real-ESRGAN weights {str(path)!r} do not exist")
        state = canonicalize_state_dict(load_state_dict(path))
        try:
            descriptor = ModelLoader().load_from_state_dict(state)
        except UnsupportedModelError:
            raise ModelUnavailable(f"{path.name!r} is not a super-resolution model spandrel knows") from None
        if not isinstance(descriptor, ImageModelDescriptor) or descriptor.scale < 2:
            raise ModelUnavailable(f"{path.name!r} is not an upscaling model")
        if dtype == torch.float16 and not descriptor.supports_half:
            dtype = torch.float32
        if dtype == torch.bfloat16 and not descriptor.supports_bfloat16:
            dtype = torch.float32
        descriptor.to(device, dtype).eval()
        logger.info(
            "loaded %s x%d super-resolution model from %s on %s (%s)",
            descriptor.architecture.name,
            descriptor.scale,
            path,
            device,
            dtype,
        )
        return descriptor

    def check_inputs(self, image: Any) -> None:
        if not isinstance(image, Image.Image):
            raise InvalidInput(f"image must be a PIL image, not {type(image).__name__}")

    def __call__(
        self,
        image: Image.Image,
        *,
        tile: int | None = None,
        overlap: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Image.Image:
        """Upscale ``image`` by :attr:`scale`, one tile at a time.

        ``overlap`` is capped at a quarter of the tile so that the two feathering ramps of a tile never meet.
        ``progress`` gets one step per tile (stage ``"esrgan"``); ``should_cancel`` is checked before each
        tile and raises :class:`JobCanceled`."""
        self.check_inputs(image)
        tile, overlap = self._tiling(tile, overlap)
        scale = self.scale
        source = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        height, width = source.shape[:2]
        # Zeroed lazily by the OS (calloc), so untouched pages cost nothing until a tile lands there.
        output = np.zeros((height * scale, width * scale, 3), dtype=np.uint8)
        tiles = self._tiles(height, width, tile, overlap)
        for number, piece in enumerate(tiles, start=1):
            if should_cancel is not None and should_cancel():
                raise JobCanceled("canceled")
            try:
                self._paint(source, output, piece, scale)
            except torch.cuda.OutOfMemoryError:
                from storyloom.models.runtime.devices import empty_cache

                empty_cache(self.device)
                raise OutOfMemory(
                    f"out of GPU memory upscaling {tile}-pixel tiles; lower upscale.esrgan_tile"
                ) from None
            if progress is not None:
                progress(StepProgress(step=number, total=len(tiles), stage=STAGE))
        return Image.fromarray(output)

    def num_tiles(self, width: int, height: int, *, tile: int | None = None, overlap: int | None = None) -> int:
        """How many tiles (progress steps) an image of this size takes."""
        tile, overlap = self._tiling(tile, overlap)
        return len(tile_spans(height, tile, overlap)) * len(tile_spans(width, tile, overlap))

    def _tiling(self, tile: int | None, overlap: int | None) -> tuple[int, int]:
        """The tile size and overlap to use, the overlap capped at a quarter of the tile."""
        tile = self.tile if tile is None else tile
        overlap = self.overlap if overlap is None else overlap
        if tile < 8:
            raise InvalidInput(f"tile = {tile} is too small; use at least 8 pixels")
        if overlap < 0:
            raise InvalidInput(f"overlap = {overlap} must not be negative")
        return tile, min(overlap, tile // 4)

    def _tiles(self, height: int, width: int, tile: int, overlap: int) -> list[_Tile]:
        """The tiles in raster order. Only the 1-D weights are kept; each tile's 2-D weight is made when
        it is painted, so this plan stays tiny however many tiles there are."""
        rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
        ramp = overlap * self.scale
        row_weights = [blend_weights(rows, i, self.scale, ramp) for i in range(len(rows))]
        col_weights = [blend_weights(cols, j, self.scale, ramp) for j in range(len(cols))]
        return [
            _Tile(y=rows[i], x=cols[j], row_weight=row_weights[i], col_weight=col_weights[j])
            for i in range(len(rows))
            for j in range(len(cols))
        ]

    @torch.inference_mode()
    def _paint(self, source: np.ndarray, output: np.ndarray, piece: _Tile, scale: int) -> None:
        """Upscale one tile and add its weighted pixels into ``output``.

        ``output`` starts at zero. Pixels outside every overlap have weight one and are written exactly;
        in an overlap the running sum is kept in the 8-bit output itself, which costs at most half a level
        of rounding per contributing tile (invisible) and keeps the working set to this one tile."""
        (y0, y1), (x0, x1) = piece.y, piece.x
        patch = torch.from_numpy(source[y0:y1, x0:x1].copy()).to(self.device)
        patch = patch.permute(2, 0, 1).unsqueeze(0).to(self.dtype).div_(255.0)
        result = self.descriptor(patch)[0].permute(1, 2, 0).float().mul_(255.0).cpu().numpy()
        del patch
        region = output[y0 * scale : y1 * scale, x0 * scale : x1 * scale]
        accumulated = region.astype(np.float32)
        accumulated += result * piece.weight()
        np.copyto(region, np.clip(np.rint(accumulated), 0, 255).astype(np.uint8))
