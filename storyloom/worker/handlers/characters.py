"""The registered character a source picture was drawn with, as its PNG parameters name it, and a character's
reference picture as this host reads it; drawing with a LoRA (prompt words, name in the parameters) is
``storyloom.models.image.lora.drawing_with``."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from storyloom.queue.character import CharacterRecord
from storyloom.worker.context import FileLookup, JobContext

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image

    from storyloom.config import Config
    from storyloom.models.image.lora import CharacterDrawing


logger = logging.getLogger(__name__)

REFERENCE_SUFFIX = ".png"  # reference pictures are stored as PNG (see ``storyloom.characters.references``)


def reference_picture(record: CharacterRecord, files: FileLookup) -> Image.Image | None:
    """The character's reference picture (RGB), fetched from the store into this host's file cache once and
    checked against its digest, or None when the character has none. ``files`` is a job's
    ``context.lookup_file`` (or, outside a worker, a ``BlobCache.file`` over a store)."""
    from storyloom.domain.pictures import open_picture

    digest = record.reference_digest
    if digest is None:
        return None
    path = files(digest, REFERENCE_SUFFIX, f"reference picture of character {record.name!r}")
    return open_picture(path.read_bytes(), f"the reference picture of character {record.name!r}")


def stored_reference_picture(config: Config, record: CharacterRecord) -> Image.Image | None:
    """``reference_picture`` outside a worker (the command line): through this host's file cache of the store
    named by ``config``; None when the character has no picture (the store is not even opened)."""
    if not record.has_reference:
        return None
    from storyloom.queue.blobs import BlobCache
    from storyloom.queue.store import JobStore

    cache = BlobCache(config.blob_cache_dir, config.queue.blob_cache_mb * 1024 * 1024)
    with JobStore.from_config(config) as store:

        def stored_file(digest: str, suffix: str, what: str) -> Path:
            return cache.file(digest, lambda: store.blob(digest), suffix=suffix, what=what)

        return reference_picture(record, stored_file)


def source_characters(context: JobContext, source: Image.Image) -> list[tuple[CharacterRecord, str]]:
    """The characters ``source`` was drawn with and their places, as its PNG parameters name them (a story page
    may have several), those still registered; a character deleted since is logged and left out, so the job goes
    on without it."""
    from storyloom.domain.parameters import read_png_parameters
    from storyloom.models.image.lora import CHARACTER_KEY, PLACES_KEY

    try:
        stored = read_png_parameters(source)
    except ValueError:  # parameters edited by hand or written by another tool name no character of ours
        return []
    named = stored.extra.get(CHARACTER_KEY) if stored else None
    if not stored or not named:
        return []
    names = [name.strip() for name in named.split(",") if name.strip()]
    places = [place.strip() for place in stored.extra.get(PLACES_KEY, "").split(",")]
    if len(places) != len(names) or not set(places) <= {"left", "center", "right", "whole"}:
        places = ["whole"] * len(names)
    found = []
    for name, place in zip(names, places):
        record = context.find_character(name)
        if record is None:
            logger.info("job %s: character %r of the source image is gone; going on without it", context.job.id, name)
        else:
            found.append((record, place))
    return found


def source_model(context: JobContext, source: Image.Image) -> str | None:
    """The extra checkpoint ``source`` was drawn with, as its PNG parameters name it, if the config still has
    it (None: the base model)."""
    from storyloom.domain.parameters import read_png_parameters

    try:
        stored = read_png_parameters(source)
    except ValueError:
        return None
    model = stored.model if stored else None
    return model if model and model in context.config.models.checkpoints else None


@contextlib.contextmanager
def drawing_cast(
    context: JobContext,
    task: Any,
    placed: Sequence[tuple[CharacterRecord, str]],
    *,
    shared_attention: Image.Image | None = None,
) -> Iterator[CharacterDrawing]:
    """``drawing_placed`` in a job: reference pictures through the job's file cache, and the character adapter
    loaded through the resources, so its memory is counted in the image group and one copy serves every
    checkpoint's tasks."""
    adapter = context.resources.character_adapter() if any(record.has_reference for record, _ in placed) else None
    with drawing_placed(
        task, placed, lambda record: reference_picture(record, context.lookup_file), context.config,
        shared_attention=shared_attention, adapter=adapter,
    ) as drawing:  # fmt: skip
        yield drawing


@contextlib.contextmanager
def drawing_placed(
    task: Any,
    placed: Sequence[tuple[CharacterRecord, str]],
    pictures: Callable[[CharacterRecord], Image.Image | None],
    config: Config,
    *,
    shared_attention: Image.Image | None = None,
    adapter: Any = None,
) -> Iterator[CharacterDrawing]:
    """Inside the block ``task`` draws with the characters (record, position) of ``placed``: their LoRAs and
    words (``drawing_with``), their reference pictures (from ``pictures``) each steering its place
    (``drawing_characters``; the only character steers the whole picture) and, with ``shared_attention``,
    self-attention shared with that picture. The ``CharacterDrawing`` it gives names them, and their places, in
    prompts and parameters."""
    from storyloom.models.image.lora import drawing_with
    from storyloom.models.image.references import PageCharacter, drawing_characters

    default_weight = config.characters.reference_weight
    cast = [
        PageCharacter(
            record.name,
            "whole" if len(placed) == 1 else position,  # type: ignore[arg-type]  # checked by the job's parameters
            pictures(record),
            record.weight(default_weight),
        )
        for record, position in placed
    ]
    records = [record for record, _position in placed]
    with (
        drawing_with(task, records, config.paths.data_dir) as drawing,
        drawing_characters(task, cast, shared_attention=shared_attention, adapter=adapter),
    ):
        yield dataclasses.replace(drawing, places=tuple(character.position for character in cast))
