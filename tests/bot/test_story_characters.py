"""/story with several characters against the fake Discord (no worker): up to three registered names, unknown
names listed with the known ones, a fourth refused naming the limit, and the parameters each story job keeps."""

from __future__ import annotations

from pathlib import Path

import pytest

from storyloom.bot.validation import story_params
from storyloom.domain.story.safety import SafetyScreen
from storyloom.errors import InvalidInput
from storyloom.queue import NewCharacter
from storyloom.queue.job import JobKind
from storyloom.queue.params import validate_params
from tests.support.bot import bot_config, job_of, running_bot
from tests.support.fakediscord import FakeDiscord
from tests.support.images import noisy_png


async def register(store, name: str) -> None:
    digest = await store.put_blob(noisy_png(48, 48, seed=len(name)))
    await store.add_character(
        NewCharacter(name=name, identifier="", class_name="", lora_path="", reference_digest=digest)
    )


async def test_story_takes_up_to_three_characters_by_name(fake: FakeDiscord, store, tmp_path: Path) -> None:
    await register(store, "Bhna")
    await register(store, "Pip")
    async with running_bot(bot_config(tmp_path), store, fake):
        handle = await fake.invoke_command(
            "story", {"summary": "a picnic", "character": "bhna", "character2": "PIP", "consistent": False}
        )
        job = await store.get(job_of(await handle.wait_original()))
        assert job.kind is JobKind.STORY and job.params["characters"] == ["Bhna", "Pip"]
        assert job.params["consistent"] is False and "character" not in job.params

        unknown = await fake.invoke_command("story", {"summary": "a picnic", "character": "Bhna", "character3": "Zed"})
        await unknown.wait_ack()
        reply = unknown.original_response()
        assert reply.ephemeral and "character 'Zed' is unknown; known characters: Bhna, Pip" in reply.content
        assert len(await store.children(job.id)) == 0 and len(await store.list_jobs()) == 1  # nothing more queued


def test_a_fourth_character_is_refused_naming_the_limit(tmp_path: Path) -> None:
    config = bot_config(tmp_path)
    with pytest.raises(InvalidInput, match="a story can have at most 3 characters; you gave 4: A, B, C, D"):
        story_params(config, SafetyScreen(), summary="a picnic", characters=["A", "B", "C"], character="D")
    assert story_params(config, SafetyScreen(), summary="a picnic", characters=["A", "a", None]).characters == ["A"]
    with pytest.raises(InvalidInput, match="at most 3 characters"):
        validate_params(JobKind.STORY, {"summary": "a picnic", "characters": ["A", "B", "C", "D"]})
    old = validate_params(JobKind.STORY, {"summary": "a picnic", "character": "Bhna"})  # queued before the list
    assert old.cast_names == ["Bhna"]
