"""The photos of a DreamBooth subject: checked, captioned, and turned into square training pixels.

A photo's caption is the text file beside it (``photo.txt`` for ``photo.jpg``), with the identifier and class
put in when the caption lacks them, so the model always learns "bhna cat" from every picture; a photo without
one gets the configured instance prompt ("a photo of bhna cat").
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyloom.characters.photos import CAPTION_SUFFIX, MAX_CAPTION_CHARS, check_image, open_photo
from storyloom.errors import InvalidInput


@dataclass(frozen=True)
class InstanceImage:
    path: Path
    caption: str
    digest: str  # sha256 of the file: part of a run's fingerprint, so a resumed run trains on the same photos


def load_instance_images(
    directory: Path,
    *,
    identifier: str,
    class_name: str,
    instance_prompt: str,
    min_images: int,
    max_images: int,
) -> list[InstanceImage]:
    """Every photo in ``directory`` with its caption, or one ``InvalidInput`` line naming the bad file."""
    if not directory.is_dir():
        raise InvalidInput(f"the image folder {directory} does not exist")
    default = instance_prompt.format(identifier=identifier, class_name=class_name)
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    images: list[InstanceImage] = []
    for path in files:
        if path.suffix.lower() == CAPTION_SUFFIX:
            continue
        _check_image(path)
        if len(images) >= max_images:
            raise InvalidInput(f"{directory} has more than {max_images} photos; pick the best {max_images}")
        caption = _caption(path.with_suffix(CAPTION_SUFFIX), identifier, class_name) or default
        images.append(InstanceImage(path, caption, hashlib.sha256(path.read_bytes()).hexdigest()))
    if len(images) < min_images:
        found = f"only {len(images)} photo{'s' if len(images) != 1 else ''}" if images else "no photos"
        raise InvalidInput(f"{directory} has {found}; training a character needs at least {min_images}")
    return images


def _check_image(path: Path) -> None:
    check_image(path.read_bytes(), path.name)


def _caption(path: Path, identifier: str, class_name: str) -> str:
    if not path.is_file():
        return ""
    try:
        text = " ".join(path.read_text(encoding="utf-8-sig").split())
    except UnicodeDecodeError:
        raise InvalidInput(f"the caption {path.name} is not UTF-8 text") from None
    if len(text) > MAX_CAPTION_CHARS:
        raise InvalidInput(f"the caption {path.name} is longer than {MAX_CAPTION_CHARS} characters")
    return caption_with_token(text, identifier, class_name) if text else ""


def caption_with_token(caption: str, identifier: str, class_name: str) -> str:
    """``caption`` mentioning ``identifier class_name``: kept when it does, otherwise the identifier goes before
    the first mention of the class ("a cat asleep" → "a bhna cat asleep"), or both lead the caption."""
    token = f"{identifier} {class_name}"
    if _word(token).search(caption):
        return caption
    if _word(identifier).search(caption):
        return _word(identifier).sub(token, caption, count=1)
    if _word(class_name).search(caption):
        return _word(class_name).sub(token, caption, count=1)
    return f"{token}, {caption}"


def _word(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", re.IGNORECASE)


def square_pixels(path: Path, resolution: int) -> Any:
    """The photo upright (EXIF), RGB, shorter side scaled to ``resolution`` and center-cropped: a uint8 CHW tensor."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    with open_photo(path, path.name) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    scale = resolution / min(image.size)
    size = (max(resolution, round(image.width * scale)), max(resolution, round(image.height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC if scale > 1 else Image.Resampling.LANCZOS)
    left, top = (image.width - resolution) // 2, (image.height - resolution) // 2
    image = image.crop((left, top, left + resolution, top + resolution))
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()


def to_model_range(pixels: Any) -> Any:
    """uint8 pixels → floats in [-1, 1], the VAE's input range."""
    return pixels.float().div(127.5).sub(1.0)
