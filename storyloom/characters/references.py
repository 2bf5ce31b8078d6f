"""Characters from one reference picture (a child's drawing, a toy, a pet), no training: checking a request and its
picture, and what is stored — the picture as a PNG blob every host reads, a small JPEG preview, and the registry
row. Torch-free: the bot refuses a bad picture before anything is stored, and the command line does the same.

The picture is checked as a picture given to ``/imagine`` is (``storyloom.domain.pictures``: format, bytes,
pixels read from the header before decoding, still, not tiny) and must also be ``characters.reference_min_side``
pixels on each side: IP-Adapter's image encoder sees 224×224, so a thumbnail carries too little of the character.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from storyloom.domain.pictures import check_picture
from storyloom.domain.user_images import open_user_image
from storyloom.errors import InvalidInput
from storyloom.queue.character import (
    LOCAL_USER,
    CharacterRecord,
    NewCharacter,
    check_description,
    check_name,
    check_reference_weight,
)

if TYPE_CHECKING:
    from PIL import Image

# A stored reference is scaled down to this side: far more than IP-Adapter's image encoder reads, and small.
STORED_SIDE = 1024
PREVIEW_SIDE = 512  # as a trained character's preview
PREVIEW_QUALITY = 85
BACKGROUND = (255, 255, 255)  # a transparent drawing is put on white paper, not on black


@dataclass(frozen=True)
class ReferenceRequest:
    """A checked request to register (or give) a character a reference picture; ``weight`` None: the default."""

    name: str
    description: str = ""
    weight: float | None = None


@dataclass(frozen=True)
class ReferencePicture:
    """A checked reference picture as it is stored: ``png`` (the blob), ``preview`` (JPEG) and its size."""

    png: bytes
    preview: bytes
    width: int
    height: int


def check_reference_request(name: Any, description: Any = "", weight: Any = None) -> ReferenceRequest:
    """Cleaned values, or ``InvalidInput`` naming the bad one: the name (as every character's), a description of
    at most 300 characters (optional), a weight from 0 to 1 (optional)."""
    return ReferenceRequest(
        name=check_name(name),
        description=check_description(description or ""),
        weight=None if weight is None else check_reference_weight(weight),
    )


def check_reference_picture(data: bytes, label: str, *, min_side: int) -> None:
    """``InvalidInput`` naming ``label`` when ``data`` is no usable reference picture: not an image, animated,
    too large (bytes or pixels) or smaller than ``min_side`` pixels on a side. Reads the header only."""
    info = check_picture(data, label)
    if min(info.width, info.height) < min_side:
        raise InvalidInput(
            f"{label} is only {info.width}×{info.height} pixels; a character's picture must be at least {min_side} "
            "pixels on each side"
        )


def prepare_reference(data: bytes, label: str, *, min_side: int) -> ReferencePicture:
    """The picture checked (see ``check_reference_picture``), turned upright as the camera meant, flattened on
    white, scaled down to ``STORED_SIDE`` at most, as a PNG and a JPEG preview."""
    from PIL import ImageOps

    check_reference_picture(data, label, min_side=min_side)
    with open_user_image(data, label=label) as opened:
        picture = _flattened(ImageOps.exif_transpose(opened))
    picture.thumbnail((STORED_SIDE, STORED_SIDE))
    png = io.BytesIO()
    picture.save(png, format="PNG", optimize=True)
    small = picture.copy()
    small.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    preview = io.BytesIO()
    small.save(preview, format="JPEG", quality=PREVIEW_QUALITY)
    return ReferencePicture(png.getvalue(), preview.getvalue(), picture.width, picture.height)


def _flattened(image: Image.Image) -> Image.Image:
    from PIL import Image

    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGB", rgba.size, BACKGROUND)
        paper.paste(rgba, mask=rgba.getchannel("A"))
        return paper
    return image.convert("RGB")


def reference_character(
    request: ReferenceRequest, digest: str, preview: bytes, *, created_by: int = LOCAL_USER, guild_id: int | None = None
) -> NewCharacter:
    """The registry row of a reference-only character whose picture is stored as blob ``digest``."""
    return NewCharacter(
        name=request.name,
        identifier="",
        class_name="",
        lora_path="",
        reference_digest=digest,
        reference_weight=request.weight,
        trained_by=created_by,
        guild_id=guild_id,
        description=request.description,
        preview=preview,
    )


def kind_details(record: CharacterRecord, default_weight: float, *, quote: str = "") -> str:
    """Its kind with the trained words and the picture's weight: ``trained bhna cat + picture (weight 0.6)``;
    ``quote`` goes around the words (a backtick in Discord)."""
    parts = [f"trained {quote}{record.token}{quote}"] if record.has_lora else []
    if record.has_reference:
        parts.append(f"picture (weight {record.weight(default_weight):g})")
    return " + ".join(parts)


def kind_label(record: CharacterRecord) -> str:
    """What kind of character it is, in a word or two: trained, picture, or trained + picture."""
    if record.has_lora and record.has_reference:
        return "trained + picture"
    return "trained" if record.has_lora else "picture"
