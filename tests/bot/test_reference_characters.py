"""``/character create`` (a character from one picture), ``/character reference`` (a picture for an existing
character, trained ones too), listing, autocomplete, deleting and ``/imagine character:`` with such a character,
against the fake Discord."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

from PIL import Image

from storyloom.bot.characters import character_names
from storyloom.queue.character import NewCharacter
from storyloom.queue.job import JobKind, JobStatus
from tests.bot.test_characters import biscuit, refused
from tests.support.bot import bot_config, job_of, running_bot
from tests.support.fakediscord import FakeDiscord, Upload
from tests.support.images import noisy_png, png

DRAWING = noisy_png(96, 96, seed=7)
CREATE = {"name": "Pip", "description": "a small red dragon"}


def drawing(name: str = "pip.png", data: bytes = DRAWING) -> dict:
    return {"picture": Upload(name, data)}


async def test_a_manager_creates_a_character_from_one_picture(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        handle = await fake.invoke_command(
            "character create", {**CREATE, **drawing(), "weight": 0.8}, user=fake.manager
        )
        [reply] = await handle.wait_followups(1)
        assert reply.ephemeral and reply.content.startswith("✅ **Pip** is ready — picture (weight 0.8)")
        assert "/imagine prompt: Pip in a garden character: Pip" in reply.content
        assert "/story character: Pip" in reply.content
        [preview] = reply.attachments
        assert Image.open(io.BytesIO(preview.data)).size == (96, 96)

        record = await store.character("pip", guild_id=fake.guild.id)
        assert (record.has_reference, record.has_lora, record.reference_weight) == (True, False, 0.8)
        assert (record.description, record.trained_by, record.guild_id) == (
            "a small red dragon",
            fake.manager.id,
            fake.guild.id,
        )
        stored = Image.open(io.BytesIO(await store.blob(record.reference_digest)))
        assert stored.format == "PNG" and stored.tobytes() == Image.open(io.BytesIO(DRAWING)).convert("RGB").tobytes()
        assert Image.open(io.BytesIO(record.preview)).format == "JPEG"
        assert await store.list_jobs(tuple(JobStatus)) == []  # registered at once: no job, no training

        default = await fake.invoke_command("character create", {"name": "Toy", **drawing()}, user=fake.manager)
        [reply] = await default.wait_followups(1)
        assert "picture (weight 0.6)" in reply.content  # the configured default
        assert (await store.character("Toy", guild_id=fake.guild.id)).reference_weight is None


async def test_bad_create_requests_are_refused_privately_and_store_nothing(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    from tests.characters.test_references import animated_gif

    async with running_bot(bot_config(tmp_path), store, fake):
        await store.add_character(biscuit(fake.guild.id))
        training = await store.enqueue(
            "train_subject", {"name": "Tom", "identifier": "zqx", "class_name": "dog", "images_dir": "uploads/x"},
            user_id=fake.owner.id, guild_id=fake.guild.id,
        )  # fmt: skip
        huge = bytes(16 * 1024 * 1024 + 1)
        cases = [
            ({**CREATE, **drawing()}, fake.member, "only server managers can create characters"),
            ({**CREATE, **drawing("notes.txt", b"not a picture")}, fake.manager, "notes.txt is not a picture"),
            ({**CREATE, **drawing("pip.png", b"not a picture")}, fake.manager, "pip.png is not an image"),
            (
                {**CREATE, **drawing("small.png", png(32, 32, (1, 2, 3)))},
                fake.manager,
                "small.png is only 32×32 pixels",
            ),
            (
                {**CREATE, **drawing("huge.png", huge)},
                fake.manager,
                "huge.png is 16.0 MB; pictures may be at most 16 MB",
            ),
            ({**CREATE, **drawing("moving.gif", animated_gif())}, fake.manager, "moving.gif is animated"),
            (
                {**drawing(), "name": "biscuit"},
                fake.manager,
                "'Biscuit' already exists: choose another name, or give it this picture with /character reference",
            ),
            ({**CREATE, **drawing(), "weight": 1.5}, fake.manager, "use a number from 0 to 1"),
            ({**drawing(), "name": "tom"}, fake.manager, f"'Tom' is already being trained (job {training.id})"),
            ({**drawing(), "name": "Pip", "description": "x" * 301}, fake.manager, "longer than 300 characters"),
            ({**drawing(), "name": "Pip?"}, fake.manager, "is not allowed"),
        ]
        for options, user, expected in cases:
            line = await refused(fake, "character create", options, user=user)
            assert expected in line, (options, line)
        assert len(await store.list_jobs(tuple(JobStatus))) == 1  # the training only
        [only] = await store.list_characters(guild_id=fake.guild.id)
        assert only.name == "Biscuit"
        huge_upload = next(a for a in fake.state.attachments.values() if a.filename == "huge.png")
        assert huge_upload.downloads == 0  # refused by the size Discord declares


async def test_a_trained_character_gets_a_picture_from_its_maker_or_a_manager(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        await store.add_character(biscuit(fake.guild.id, trained_by=fake.owner.id))
        line = await refused(fake, "character reference", {"name": "Biscuit", **drawing()}, user=fake.member)
        assert "only server managers or whoever made Biscuit can change it" in line
        line = await refused(fake, "character reference", {"name": "Nobody", **drawing()}, user=fake.manager)
        assert "'Nobody' is unknown" in line
        line = await refused(
            fake,
            "character reference",
            {"name": "Biscuit", **drawing("s.png", png(20, 20, (0, 0, 0)))},
            user=fake.owner,
        )
        assert "s.png is only 20×20 pixels" in line

        handle = await fake.invoke_command(
            "character reference", {"name": "biscuit", **drawing(), "weight": 0.5}, user=fake.owner
        )
        [reply] = await handle.wait_followups(1)
        assert reply.ephemeral and "**Biscuit** has a new picture (with its training: both are used)" in reply.content
        assert "trained `bhna cat` + picture (weight 0.5)" in reply.content
        record = await store.character("Biscuit", guild_id=fake.guild.id)
        assert record.has_lora and record.has_reference and record.reference_weight == 0.5
        assert record.preview == biscuit(None).preview  # a trained character keeps its samples' preview

        listing = await fake.invoke_command("character list")
        [reply] = await listing.wait_followups(1)
        assert "**Biscuit** — trained `bhna cat` + picture (weight 0.5)" in reply.content


async def test_a_picture_character_gets_a_new_picture_and_the_old_one_is_freed(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        created = await fake.invoke_command("character create", {**CREATE, **drawing()}, user=fake.manager)
        await created.wait_followups(1)
        first = await store.character("Pip", guild_id=fake.guild.id)
        new_drawing = noisy_png(120, 100, seed=8)
        handle = await fake.invoke_command(
            "character reference", {"name": "Pip", **drawing("pip2.png", new_drawing)}, user=fake.manager
        )
        [reply] = await handle.wait_followups(1)
        assert "**Pip** has a new picture — picture (weight 0.6)" in reply.content and "both" not in reply.content
        second = await store.character("Pip", guild_id=fake.guild.id)
        assert second.reference_digest != first.reference_digest and second.description == "a small red dragon"
        assert Image.open(io.BytesIO(second.preview)).size == (120, 100)  # its preview is the new picture
        assert await store.purge_blobs(older_than_days=0) == 1
        assert await store.blob(first.reference_digest) is None and await store.blob(second.reference_digest)


async def test_list_marks_each_kind_and_autocomplete_names_them(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake) as bot:
        await store.add_character(biscuit(fake.guild.id))
        digest = await store.put_blob(DRAWING)
        await store.add_character(
            NewCharacter(
                name="Pip", identifier="", class_name="", lora_path="", reference_digest=digest, guild_id=fake.guild.id
            )
        )
        listing = await fake.invoke_command("character list")
        [reply] = await listing.wait_followups(1)
        assert "**Biscuit** — trained `bhna cat`\n" in reply.content
        assert "**Pip** — picture (weight 0.6)" in reply.content

        shown = await fake.invoke_command("character show", {"name": "pip"})
        [details] = await shown.wait_followups(1)
        assert "**Pip** — picture (weight 0.6)" in details.content and "made from a picture" in details.content

        typing = SimpleNamespace(client=bot, guild_id=fake.guild.id)
        choices = await character_names(typing, "")
        assert [(c.name, c.value) for c in choices] == [("Biscuit (trained)", "Biscuit"), ("Pip (picture)", "Pip")]


async def test_deleting_a_picture_character_frees_its_picture(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        created = await fake.invoke_command("character create", {**CREATE, **drawing()}, user=fake.manager)
        await created.wait_followups(1)
        line = await refused(fake, "character delete", {"name": "Pip"}, user=fake.member)
        assert "only server managers or whoever made Pip can delete it" in line
        deleted = await fake.invoke_command("character delete", {"name": "Pip"}, user=fake.manager)
        assert "Deleted **Pip**" in (await deleted.wait_followups(1))[0].content
        assert await store.find_character("Pip", guild_id=fake.guild.id) is None
        assert await store.purge_blobs(older_than_days=0) == 1  # nothing refers to the picture any more


async def test_imagine_takes_a_picture_character(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        created = await fake.invoke_command("character create", {**CREATE, **drawing()}, user=fake.manager)
        await created.wait_followups(1)
        drawn = await fake.invoke_command("imagine", {"prompt": "a dragon flying", "character": "pip"})
        job = await store.get(job_of(await drawn.wait_original()))
        assert job.kind is JobKind.IMAGINE and job.params["character"] == "Pip"


# ------------------------------------------------------------------------------------------------ end to end
async def test_a_character_from_a_picture_draws_with_imagine_and_u1_keeps_it(
    fake: FakeDiscord, tmp_path: Path, tiny_models
) -> None:
    from storyloom.domain.parameters import read_png_parameters
    from storyloom.models.runtime.tiny import make_tiny_config
    from storyloom.queue.job import ArtifactKind
    from storyloom.worker.registry import build_handlers
    from storyloom.worker.testing import worker_in_thread
    from tests.support.bot import open_store
    from tests.support.jobs import wait_delivered, wait_job

    config = make_tiny_config(
        tmp_path / "data", tiny_models, image={"steps": 3}, upscale={"steps": 2}, queue={"heartbeat_seconds": 0.2},
        bot={"progress_edit_interval": 0.5, "delivery_poll_interval": 0.05},
    )  # fmt: skip
    store = await open_store(config)

    async def drawn(job_id: int) -> Image.Image:
        job = await wait_job(store, job_id, lambda j: j.is_finished, timeout=240)
        assert job.status is JobStatus.SUCCEEDED, job.error
        artifact = await store.artifact(job_id, 0, ArtifactKind.IMAGE)
        return Image.open(io.BytesIO(artifact.data))

    try:
        async with running_bot(config, store, fake):
            created = await fake.invoke_command("character create", {**CREATE, **drawing()}, user=fake.manager)
            assert (await created.wait_followups(1))[0].content.startswith("✅ **Pip** is ready")
            with worker_in_thread(config, handlers=build_handlers()):
                handle = await fake.invoke_command("imagine", {"prompt": "Pip flying", "character": "pip", "seed": 3})
                imagine_id = job_of(await handle.wait_original())
                picture = await drawn(imagine_id)
                assert read_png_parameters(picture).extra["Character"] == "Pip"
                plain = await fake.invoke_command("imagine", {"prompt": "Pip flying", "seed": 3})
                without = await drawn(job_of(await plain.wait_original()))
                assert without.tobytes() != picture.tobytes()  # same prompt and seed: Pip's picture steered it
                [grid_id] = await wait_delivered(store, imagine_id)

                click = await fake.click_button(fake.message(grid_id), f"sl:u:{imagine_id}:1")
                [status] = await click.wait_followups(1)
                upscale_id = job_of(status)
                upscaled = await drawn(upscale_id)
                assert (await store.get(upscale_id)).kind is JobKind.UPSCALE
                assert upscaled.width > picture.width
                assert read_png_parameters(upscaled).extra["Character"] == "Pip"  # U1 kept the character
    finally:
        await store.close()
