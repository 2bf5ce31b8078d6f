"""``drawing_with``: the one way a job or command draws with a registered character (no model needed here)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from storyloom.domain.parameters import GenerationParameters
from storyloom.models.image.lora import CHARACTER_KEY, CharacterDrawing, drawing_with
from storyloom.models.image.sd_task import ImageBatch
from storyloom.queue.character import CharacterRecord


class RecordingTask:
    """Stands in for Txt2Img / Variations / Upscaler: records which LoRA was loaded, and when."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Path | None, str | None]] = []

    @contextlib.contextmanager
    def using_lora(self, lora_file: Path, *, adapter_name: str, scale: float = 1.0) -> Iterator[None]:
        self.events.append(("load", lora_file, adapter_name))
        try:
            yield
        finally:
            self.events.append(("unload", None, None))


def mittens() -> CharacterRecord:
    return CharacterRecord(
        id=7, name="Mittens", identifier="bhna", class_name="cat", description="", lora_path="characters/m/lora.st", lora_digest=None,
        preview=None, trained_by=1, guild_id=None, job_id=None, metadata={}, created_at=0.0,
    )  # fmt: skip


def batch() -> ImageBatch:
    parameters = [GenerationParameters(prompt="p", seed=seed, width=8, height=8) for seed in (1, 2)]
    return ImageBatch(images=[], seeds=[1, 2], parameters=parameters, nsfw=[False, False])


def test_a_character_is_loaded_around_the_block_and_named_in_prompt_and_parameters(tmp_path: Path) -> None:
    task = RecordingTask()
    with drawing_with(task, mittens(), tmp_path) as character:
        assert task.events == [("load", tmp_path / "characters/m/lora.st", "character_7")]
        prompt = character.prompt("Mittens on a boat")
    assert task.events[-1] == ("unload", None, None)
    assert prompt == "bhna cat on a boat"
    tagged = character.tagged(batch())
    assert [params.extra[CHARACTER_KEY] for params in tagged.parameters] == ["Mittens", "Mittens"]
    assert [params.seed for params in tagged.parameters] == [1, 2]
    assert character.named(batch().parameters[0]).extra == {CHARACTER_KEY: "Mittens"}


def test_the_lora_is_unloaded_when_the_drawing_fails(tmp_path: Path) -> None:
    task = RecordingTask()
    with pytest.raises(RuntimeError), drawing_with(task, mittens(), tmp_path):
        raise RuntimeError("out of memory")
    assert [event[0] for event in task.events] == ["load", "unload"]


def test_no_character_changes_nothing(tmp_path: Path) -> None:
    task = RecordingTask()
    with drawing_with(task, None, tmp_path) as character:
        assert character == CharacterDrawing()
    original = batch()
    assert task.events == []
    assert character.prompt("a boat") == "a boat"
    assert character.tagged(original) is original
    assert character.named(original.parameters[0]) is original.parameters[0]
