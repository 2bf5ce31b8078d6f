"""Small image helpers: the 2×2 grid, cheap step previews and the blurred placeholder.

Nothing here loads weights: previews use a fixed linear map from SD 1.5's four latent channels to RGB,
which is good enough to show composition while the job runs and costs a matrix product.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, ImageFilter

from storyloom.domain.user_images import MAX_USER_IMAGE_PIXELS, open_user_image
from storyloom.errors import InvalidInput

# SD 1.5 latent channel → RGB contribution (the widely used linear approximation; rows = latent channels).
SD15_LATENT_RGB_FACTORS = (
    (0.298, 0.207, 0.208),
    (0.187, 0.286, 0.173),
    (-0.158, 0.189, 0.264),
    (-0.184, -0.271, -0.473),
)


def make_grid(images: Sequence[Image.Image], columns: int = 2, *, background: str = "black") -> Image.Image:
    """Tile images left-to-right, top-to-bottom; cells are the size of the largest image (all equal in a batch)."""
    if not images:
        raise ValueError("make_grid needs at least one image")
    if columns < 1:
        raise ValueError("columns must be at least 1")
    columns = min(columns, len(images))
    rows = math.ceil(len(images) / columns)
    cell_w = max(image.width for image in images)
    cell_h = max(image.height for image in images)
    grid = Image.new("RGB", (cell_w * columns, cell_h * rows), background)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid.paste(image.convert("RGB"), (column * cell_w, row * cell_h))
    return grid


def latent_preview(latents: torch.Tensor, *, scale: int = 1, columns: int = 2) -> Image.Image:
    """An RGB preview of ``(4, h, w)`` or ``(batch, 4, h, w)`` SD latents (a batch becomes a grid).

    ``scale`` enlarges the preview (the latent is 1/8 of the image side on SD 1.5).
    """
    if latents.ndim == 3:
        latents = latents.unsqueeze(0)
    if latents.ndim != 4 or latents.shape[1] != 4:
        raise ValueError(f"expected latents of shape (batch, 4, h, w), got {tuple(latents.shape)}")
    factors = torch.tensor(SD15_LATENT_RGB_FACTORS, dtype=torch.float32)
    with torch.no_grad():
        rgb = torch.einsum("bchw,cr->bhwr", latents.detach().float().cpu(), factors)
        pixels = ((rgb + 1.0) / 2.0).clamp(0.0, 1.0).mul(255).round().to(torch.uint8).numpy()
    previews = [Image.fromarray(array) for array in pixels]
    if scale > 1:
        previews = [p.resize((p.width * scale, p.height * scale), Image.Resampling.BILINEAR) for p in previews]
    return previews[0] if len(previews) == 1 else make_grid(previews, columns)


def blurred_placeholder(image: Image.Image) -> Image.Image:
    """A same-size stand-in for an image that must not be shown: pixelated, then blurred beyond recognition."""
    small = image.convert("RGB").resize((max(1, image.width // 32), max(1, image.height // 32)), Image.Resampling.BOX)
    coarse = small.resize(image.size, Image.Resampling.NEAREST)
    return coarse.filter(ImageFilter.GaussianBlur(radius=max(4, min(image.size) // 16)))


def read_image_file(path: str | Path, *, max_pixels: int = MAX_USER_IMAGE_PIXELS) -> Image.Image:
    """Open and fully decode an image file; a missing, unreadable or non-image file, or one with more than
    ``max_pixels`` pixels (refused from its header, before decoding), is an ``InvalidInput``."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"no such file: {path}")
    if not path.is_file():
        raise InvalidInput(f"{path} is not a file")
    return open_user_image(path, label=str(path), max_pixels=max_pixels)
