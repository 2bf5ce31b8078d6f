"""Photos sent for training (Discord attachments), checked and made ready for a ``train_subject`` job.

Every upload is checked here first (a readable picture, big enough, not too many or too few). The bot then packs
them with their captions into one file stored in the job store (``pack_training_photos``), which the job names
by digest (``TrainSubjectParams.photos``), so a worker on any host can read them; a folder inside the data
directory (``save_training_photos``, ``TrainSubjectParams.images_dir``) serves a single machine. Torch-free.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from storyloom.characters.photos import CAPTION_SUFFIX, MAX_CAPTION_CHARS, check_image, check_photo_sizes
from storyloom.errors import InvalidInput
from storyloom.queue.blobs import pack_files

UPLOADS_DIR = "uploads"
PHOTOS_DIR = f"{UPLOADS_DIR}/characters"  # one folder per training request inside
_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "MPO": ".jpg"}


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes
    caption: str = ""  # e.g. the attachment's description: becomes ``photo_01.txt``


def pack_training_photos(uploads: Sequence[Upload], *, min_images: int, max_images: int) -> bytes:
    """``uploads`` with their captions as one deterministic zip (``storyloom.queue.blobs.pack_files``) for the
    store; ``InvalidInput`` when one is not a usable photo or there are too few or too many."""
    return pack_files(training_files(uploads, min_images=min_images, max_images=max_images))


def save_training_photos(data_dir: Path, uploads: Sequence[Upload], *, min_images: int, max_images: int) -> str:
    """Write ``uploads`` to a new folder and return it relative to ``data_dir``; ``InvalidInput`` (nothing
    written) when one is not a usable photo or there are too few or too many."""
    files = training_files(uploads, min_images=min_images, max_images=max_images)
    relative = Path(PHOTOS_DIR) / uuid.uuid4().hex
    directory = data_dir / relative
    directory.mkdir(parents=True)
    for name, data in files:
        _write(directory / name, data)
    return relative.as_posix()


def training_files(uploads: Sequence[Upload], *, min_images: int, max_images: int) -> list[tuple[str, bytes]]:
    """The checked photos as ``photo_NN.ext`` files, each followed by its ``photo_NN.txt`` caption if it has one."""
    if len(uploads) < min_images:
        raise InvalidInput(f"training a character needs at least {min_images} photos (got {len(uploads)})")
    if len(uploads) > max_images:
        raise InvalidInput(f"at most {max_images} photos can be used for one character (got {len(uploads)})")
    check_photo_sizes([(upload.filename or "a file", len(upload.data)) for upload in uploads])
    checked = []
    for upload in uploads:
        label = upload.filename or "a file"
        caption = " ".join(upload.caption.split())
        if len(caption) > MAX_CAPTION_CHARS:
            raise InvalidInput(f"the description of {label} is longer than {MAX_CAPTION_CHARS} characters")
        checked.append((_SUFFIXES.get(check_image(upload.data, label), ".png"), upload.data, caption))
    files = []
    for number, (suffix, data, caption) in enumerate(checked, start=1):
        files.append((f"photo_{number:02d}{suffix}", data))
        if caption:
            files.append((f"photo_{number:02d}{CAPTION_SUFFIX}", caption.encode("utf-8")))
    return files


def _write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
