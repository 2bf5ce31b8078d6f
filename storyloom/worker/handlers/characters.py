"""A registered character in an image job: its LoRA loaded for this job only, its words in the prompt, and its
name written into the PNG parameters (so a variation of the picture loads the same LoRA again)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from storyloom.queue.character import CharacterRecord
from storyloom.worker.context import JobContext

if TYPE_CHECKING:
    from PIL import Image

    from storyloom.domain.parameters import GenerationParameters

logger = logging.getLogger(__name__)

CHARACTER_KEY = "Character"  # the PNG parameters entry naming the character a picture was drawn with


@contextlib.contextmanager
def drawing_with(context: JobContext, task: Any, record: CharacterRecord | None) -> Iterator[None]:
    """``task`` (``Txt2Img``, ``Variations``, ``Upscaler``) draws with ``record``'s LoRA inside the block; no-op
    for None."""
    if record is None:
        yield
        return
    from storyloom.characters.registry import adapter_name, lora_file

    with task.using_lora(lora_file(record, context.config.paths.data_dir), adapter_name=adapter_name(record)):
        yield


def character_prompt(prompt: str, record: CharacterRecord | None) -> str:
    if record is None:
        return prompt
    from storyloom.models.image.lora import with_character

    return with_character(prompt, identifier=record.identifier, class_name=record.class_name, name=record.name)


def source_character(context: JobContext, source: Image.Image) -> CharacterRecord | None:
    """The character ``source`` was drawn with, as its PNG parameters name it, if it is still registered; a
    character deleted since is logged and left out, so the job goes on without it."""
    from storyloom.domain.parameters import read_png_parameters

    try:
        stored = read_png_parameters(source)
    except ValueError:  # parameters edited by hand or written by another tool name no character of ours
        return None
    name = stored.extra.get(CHARACTER_KEY) if stored else None
    record = context.find_character(name) if name else None
    if name and record is None:
        logger.info("job %s: character %r of the source image is gone; going on without it", context.job.id, name)
    return record


def tagged(batch: Any, record: CharacterRecord | None) -> Any:
    """``batch`` with the character's name in every image's parameters."""
    if record is None:
        return batch
    return dataclasses.replace(batch, parameters=[named(params, record) for params in batch.parameters])


def named(parameters: GenerationParameters, record: CharacterRecord | None) -> GenerationParameters:
    """``parameters`` naming the character (unchanged for None)."""
    if record is None:
        return parameters
    return dataclasses.replace(parameters, extra={**parameters.extra, CHARACTER_KEY: record.name})
