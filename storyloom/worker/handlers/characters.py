"""A registered character in an image job: its LoRA loaded for this job only, its words in the prompt, and its
name written into the PNG parameters (so a variation of the picture loads the same LoRA again)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator

from storyloom.queue.character import CharacterRecord
from storyloom.worker.context import JobContext

CHARACTER_KEY = "Character"  # the PNG parameters entry naming the character a picture was drawn with


@contextlib.contextmanager
def drawing_with(context: JobContext, task: Any, record: CharacterRecord | None) -> Iterator[None]:
    """``task`` (``Txt2Img``, ``Variations``) draws with ``record``'s LoRA inside the block; no-op for None."""
    if record is None:
        yield
        return
    from storyloom.training.characters import adapter_name, lora_file

    with task.using_lora(lora_file(record, context.config.paths.data_dir), adapter_name=adapter_name(record)):
        yield


def character_prompt(prompt: str, record: CharacterRecord | None) -> str:
    if record is None:
        return prompt
    from storyloom.models.character_lora import with_character

    return with_character(prompt, identifier=record.identifier, class_name=record.class_name, name=record.name)


def tagged(batch: Any, record: CharacterRecord | None) -> Any:
    """``batch`` with the character's name in every image's parameters."""
    if record is None:
        return batch
    parameters = [
        dataclasses.replace(params, extra={**params.extra, CHARACTER_KEY: record.name}) for params in batch.parameters
    ]
    return dataclasses.replace(batch, parameters=parameters)
