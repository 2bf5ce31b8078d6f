"""``/character`` and the ``character:`` option of /imagine and /story, against the fake Discord.

Training jobs are only queued here (the fast stand-in worker completes them with made-up results); the
registry is filled directly through the store where a command needs an existing character.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from storyloom.queue.character import NewCharacter
from storyloom.queue.job import ArtifactKind, JobKind, JobStatus, NewArtifact
from storyloom.queue.params import TrainSubjectParams
from tests.support.bot import bot_config, fast_worker, job_of, open_store, running_bot
from tests.support.fakediscord import FakeDiscord, Upload
from tests.support.images import noisy_png, png
from tests.support.jobs import wait_delivered, wait_job


def photos(count: int) -> list[Upload]:
    return [Upload(f"cat_{i}.png", noisy_png(96, 96, seed=i)) for i in range(count)]


def biscuit(guild_id: int | None, **changes) -> NewCharacter:
    values = {
        "name": "Biscuit", "identifier": "bhna", "class_name": "cat", "lora_path": "characters/b/b.safetensors",
        "guild_id": guild_id, "trained_by": 42, "description": "a ginger cat", "preview": png(8, 8, (9, 9, 9)),
    }  # fmt: skip
    return NewCharacter(**{**values, **changes})


TRAIN = {"name": "Biscuit", "token": "bhna", "class": "cat", "description": "a ginger cat"}


def saved_uploads(config) -> list[Path]:
    """Photo folders saved for training jobs."""
    uploads_dir = config.paths.data_dir / "uploads" / "characters"
    return list(uploads_dir.iterdir()) if uploads_dir.exists() else []


async def refused(fake: FakeDiscord, name: str, options: dict, **kwargs) -> str:
    """The ephemeral line a command answered with, before or after deferring."""
    handle = await fake.invoke_command(name, options, validate=False, **kwargs)
    ack = await handle.wait_ack()
    if ack.type == 4:
        reply = handle.original_response()
    else:
        [reply] = await handle.wait_followups(1)
    assert reply.ephemeral and reply.content.startswith("⚠️"), reply.content
    return reply.content


async def stored_photo_names(store, digest: str) -> list[str]:
    """The files of a training's photos as the job store holds them (one packed file every host can read)."""
    with zipfile.ZipFile(io.BytesIO(await store.blob(digest))) as archive:
        return sorted(archive.namelist())


async def test_a_manager_trains_from_photos_and_the_job_is_queued_with_the_photos_stored(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    config = bot_config(tmp_path)
    async with running_bot(config, store, fake):
        handle = await fake.invoke_command("character train", TRAIN, user=fake.manager, attachments=photos(5))
        accepted, status = await handle.wait_followups(2)
        assert accepted.ephemeral and "5 photos" in accepted.content and not status.ephemeral
        job_id = job_of(status)
        assert job_id is not None and "Biscuit" in status.content and "bhna cat" in status.content
        job = await store.get(job_id)
        assert job.kind is JobKind.TRAIN_SUBJECT and job.user_id == fake.manager.id
        assert job.guild_id == fake.guild.id
        params = job.params
        assert (params["name"], params["identifier"], params["class_name"], params["description"]) == (
            "Biscuit", "bhna", "cat", "a ginger cat",
        )  # fmt: skip
        assert await stored_photo_names(store, params["photos"]) == [f"photo_{n:02d}.png" for n in range(1, 6)]
        assert saved_uploads(config) == []  # nothing on the bot's own disk: any host's worker can train it


async def test_a_common_word_as_token_warns_but_trains(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        options = {**TRAIN, "token": "house"}
        handle = await fake.invoke_command("character train", options, user=fake.manager, attachments=photos(5))
        warning, status = await handle.wait_followups(2)
        job_id = job_of(status)
        assert warning.ephemeral and "common English word" in warning.content
        assert (await store.get(job_id)).params["identifier"] == "house"


async def test_bad_training_requests_are_refused_privately_and_queue_nothing(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    config = bot_config(tmp_path)
    async with running_bot(config, store, fake):
        await store.add_character(biscuit(fake.guild.id))
        text = [*photos(4), Upload("notes.txt", b"not a picture")]
        corrupt = [*photos(4), Upload("broken.png", b"\x89PNG not really")]
        cases = [
            ({**TRAIN, "name": "Tom"}, photos(5), fake.member, "only server managers"),
            (
                {**TRAIN, "name": "Tom"},
                photos(2),
                fake.manager,
                "at least 5 photos of it (got 2); attach 5 or more, "
                "or leave the photo options out to upload up to 30 in a form",
            ),
            ({**TRAIN, "name": "Tom"}, text, fake.manager, "notes.txt is not a picture"),
            (TRAIN, photos(5), fake.manager, "already exists"),
            ({**TRAIN, "name": "Tom", "token": "Bad Token"}, photos(5), fake.manager, "token"),
            ({**TRAIN, "name": "Tom", "token": "cat"}, photos(5), fake.manager, "must differ"),
            ({**TRAIN, "name": "Tom"}, corrupt, fake.manager, "broken.png"),
        ]
        for options, uploads, user, expected in cases:
            line = await refused(fake, "character train", options, user=user, attachments=uploads)
            assert expected in line, (options, line)
        assert await store.list_jobs(tuple(JobStatus)) == []
        assert saved_uploads(config) == []


async def test_photos_of_a_training_the_queue_refuses_are_left_to_be_purged(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    config = bot_config(tmp_path)
    async with running_bot(config, store, fake):
        for number in range(config.queue.max_waiting_per_user):  # the manager's queue is full
            waiting = TrainSubjectParams(name=f"Cat {number}", identifier="bhna", class_name="cat", images_dir="x")
            await store.enqueue(JobKind.TRAIN_SUBJECT, waiting, user_id=fake.manager.id, guild_id=fake.guild.id)
        handle = await fake.invoke_command("character train", TRAIN, user=fake.manager, attachments=photos(5))
        accepted, refusal = await handle.wait_followups(2)
        assert "5 photos" in accepted.content
        assert refusal.ephemeral and "jobs waiting" in refusal.content
        assert len(await store.list_jobs(tuple(JobStatus))) == config.queue.max_waiting_per_user
        assert await store.purge_blobs(older_than_days=0) == 1  # no job refers to them: they go with the next purge


# ------------------------------------------------------------------------------------------------ photo form
def upload_fields(modal: dict) -> list[dict]:
    return [c["component"] for c in modal["components"] if c["type"] == 18 and c["component"]["type"] == 19]


def form_answers(modal: dict, uploads: list[Upload]) -> dict[str, list[Upload]]:
    """``uploads`` spread over the form's upload fields, ten to a field, as a user would fill them."""
    fields = upload_fields(modal)
    chunks = [uploads[i : i + 10] for i in range(0, len(uploads), 10)]
    return {field["custom_id"]: chunk for field, chunk in zip(fields, chunks)}


async def open_form(fake: FakeDiscord, options: dict = TRAIN):
    handle = await fake.invoke_command("character train", options, user=fake.manager)
    assert (await handle.wait_ack()).type == 9, handle.messages
    return handle


async def test_without_photos_a_manager_gets_a_form_for_up_to_30(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        handle = await open_form(fake)
        assert handle.modal["title"] == "Photos of Biscuit"
        fields = upload_fields(handle.modal)
        limits = [(f["min_values"], f["max_values"], f["required"]) for f in fields]
        assert limits == [(5, 10, True), (1, 10, False), (1, 10, False)]
        hint = next(c["content"] for c in handle.modal["components"] if c["type"] == 10)
        assert "well-lit" in hint and "Biscuit" in hint

        longest = "Sir Reginald Fluffington Thirdly"  # names have at most 32 characters
        assert len(longest) == 32
        long_name = await open_form(fake, {**TRAIN, "name": longest})
        assert long_name.modal["title"] == f"Photos of {longest}"  # Discord allows 45
        assert await store.list_jobs(tuple(JobStatus)) == []


async def test_without_photos_a_bad_request_is_refused_before_the_form(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        await store.add_character(biscuit(fake.guild.id))
        training = await store.enqueue(
            "train_subject", {"name": "Pip", "identifier": "zqx", "class_name": "dog", "images_dir": "uploads/x"},
            user_id=fake.owner.id, guild_id=fake.guild.id,
        )  # fmt: skip
        cases = [
            ({**TRAIN, "name": "Tom"}, fake.member, "only server managers"),
            ({**TRAIN, "name": "Tom", "token": "Bad Token"}, fake.manager, "token"),
            (TRAIN, fake.manager, "already exists"),
            ({**TRAIN, "name": "PIP"}, fake.manager, f"already being trained (job {training.id})"),
        ]
        for options, user, expected in cases:
            handle = await fake.invoke_command("character train", options, user=user)
            assert (await handle.wait_ack()).type == 4 and handle.modal is None
            reply = handle.original_response()
            assert reply.ephemeral and expected in reply.content, (options, reply.content)


async def test_the_form_takes_27_photos_and_queues_the_training(fake: FakeDiscord, store, tmp_path: Path) -> None:
    config = bot_config(tmp_path)
    async with running_bot(config, store, fake):
        form = await open_form(fake)
        submitted = await form.submit_modal(form_answers(form.modal, photos(27)))
        accepted, status = await submitted.wait_followups(2)
        assert accepted.ephemeral and "27 photos of **Biscuit** saved" in accepted.content
        assert not status.ephemeral and "Biscuit" in status.content
        job = await store.get(job_of(status))
        assert job.kind is JobKind.TRAIN_SUBJECT and job.user_id == fake.manager.id
        params = job.params
        assert (params["name"], params["identifier"], params["class_name"], params["description"]) == (
            "Biscuit", "bhna", "cat", "a ginger cat",
        )  # fmt: skip
        assert await stored_photo_names(store, params["photos"]) == [f"photo_{n:02d}.png" for n in range(1, 28)]


async def test_the_form_refuses_bad_photos_and_a_name_taken_meanwhile(fake: FakeDiscord, store, tmp_path: Path) -> None:
    config = bot_config(tmp_path)
    async with running_bot(config, store, fake):
        text = [*photos(6), Upload("notes.txt", b"not a picture")]
        corrupt = [*photos(6), Upload("broken.png", b"\x89PNG not really")]
        for uploads, expected in [(text, "notes.txt is not a picture"), (corrupt, "broken.png")]:
            form = await open_form(fake)
            submitted = await form.submit_modal(form_answers(form.modal, uploads))
            [reply] = await submitted.wait_followups(1)
            assert reply.ephemeral and expected in reply.content, reply.content

        form = await open_form(fake)
        await store.add_character(biscuit(fake.guild.id))  # someone else was quicker
        submitted = await form.submit_modal(form_answers(form.modal, photos(5)))
        [reply] = await submitted.wait_followups(1)
        assert reply.ephemeral and "already exists" in reply.content

        with pytest.raises(ValueError, match="at least 5"):  # the Discord client does not send fewer
            await form.submit_modal(form_answers(form.modal, photos(4)))
        assert await store.list_jobs(tuple(JobStatus)) == []
        assert saved_uploads(config) == []


async def test_list_show_and_delete(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        empty = await fake.invoke_command("character list")
        assert "No characters yet" in (await empty.wait_followups(1))[0].content
        await store.add_character(biscuit(fake.guild.id))
        await store.add_character(biscuit(None, name="Rex", identifier="ohwx", class_name="dog", trained_by=0))
        await store.add_character(biscuit(fake.guild.id + 1, name="Other", identifier="zqx"))

        listing = await fake.invoke_command("character list")
        [reply] = await listing.wait_followups(1)
        assert reply.ephemeral and "Biscuit" in reply.content and "`bhna cat`" in reply.content
        assert "Rex" in reply.content and "Other" not in reply.content

        shown = await fake.invoke_command("character show", {"name": "biscuit"})
        [details] = await shown.wait_followups(1)
        assert "**Biscuit**" in details.content and "a ginger cat" in details.content and details.attachments
        unknown = await refused(fake, "character show", {"name": "Nobody"})
        assert "Nobody" in unknown and "Biscuit" in unknown

        assert "only server managers or whoever made" in await refused(
            fake, "character delete", {"name": "Biscuit"}, user=fake.member
        )
        assert "command line" in await refused(fake, "character delete", {"name": "Rex"}, user=fake.manager)
        deleted = await fake.invoke_command("character delete", {"name": "Biscuit"}, user=fake.manager)
        assert "Deleted **Biscuit**" in (await deleted.wait_followups(1))[0].content
        assert await store.find_character("Biscuit", guild_id=fake.guild.id) is None


async def test_the_trainer_may_delete_their_own_character(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        await store.add_character(biscuit(fake.guild.id, trained_by=fake.member.id))
        deleted = await fake.invoke_command("character delete", {"name": "Biscuit"}, user=fake.member)
        assert "Deleted" in (await deleted.wait_followups(1))[0].content
        assert await store.list_characters(guild_id=fake.guild.id) == []


async def test_imagine_and_story_take_a_character(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        await store.add_character(biscuit(fake.guild.id))
        drawn = await fake.invoke_command("imagine", {"prompt": "a cat on a sofa", "character": "biscuit"})
        job = await store.get(job_of(await drawn.wait_original()))
        assert job.kind is JobKind.IMAGINE and job.params["character"] == "Biscuit"
        told = await fake.invoke_command("story", {"summary": "a cat finds a ball", "character": "Biscuit"})
        story = await store.get(job_of(await told.wait_original()))
        assert story.kind is JobKind.STORY and story.params["characters"] == ["Biscuit"]

        for name, options in [
            ("imagine", {"prompt": "a cat", "character": "Nobody"}),
            ("story", {"summary": "a cat finds a ball", "character": "Nobody"}),
        ]:
            line = await refused(fake, name, options)
            assert "Nobody" in line and "Biscuit" in line
        assert len(await store.list_jobs(tuple(JobStatus))) == 2


async def test_a_finished_training_job_posts_its_samples(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        await store.register_worker("fast/1", host="fast", pid=1, device="cpu")
        handle = await fake.invoke_command("character train", TRAIN, user=fake.manager, attachments=photos(5))
        job_id = job_of((await handle.wait_followups(2))[1])
        job = await store.claim("fast/1", [JobKind.TRAIN_SUBJECT.value])
        assert job is not None and job.id == job_id
        summary = b'{"character": "Biscuit", "token": "bhna cat", "steps": 12}'
        await store.complete(job_id, "fast/1", [
            NewArtifact(ArtifactKind.TEXT, 0, "training.json", "application/json", summary, {}),
            NewArtifact(ArtifactKind.GRID, 0, "samples.png", "image/png", png(16, 16, (1, 2, 3)), {}),
            NewArtifact(ArtifactKind.IMAGE, 0, "sample_1.png", "image/png", png(8, 8, (1, 2, 3)), {}),
        ])  # fmt: skip
        await wait_job(store, job_id, lambda j: j.status is JobStatus.SUCCEEDED)
        [message_id] = await wait_delivered(store, job_id)
        posted = fake.message(message_id)
        assert "Biscuit" in posted.content and "character:Biscuit" in posted.content and posted.attachments
        assert "12 steps" in posted.content
        status_id = (await handle.wait_followups(2))[1].id
        await fake.wait_for(lambda: fake.message(status_id).content.startswith("✅"), timeout=5)
        assert "training **Biscuit**" in fake.message(status_id).content


# ------------------------------------------------------------------------------------------------ end to end
async def test_train_from_discord_with_a_real_worker_then_list_and_use_in_a_story(
    fake: FakeDiscord, tmp_path: Path, tiny_models
) -> None:
    from storyloom.models.runtime.tiny import make_tiny_config
    from storyloom.worker.registry import build_handlers
    from storyloom.worker.testing import worker_in_thread

    config = make_tiny_config(
        tmp_path / "data", tiny_models, queue={"heartbeat_seconds": 0.2},
        bot={"progress_edit_interval": 0.5, "delivery_poll_interval": 0.05},
        training={"subject_epochs": 2, "num_class_images": 2},
    )  # fmt: skip
    store = await open_store(config)
    try:
        async with running_bot(config, store, fake):
            with worker_in_thread(config, handlers=build_handlers()):
                handle = await fake.invoke_command("character train", TRAIN, user=fake.manager, attachments=photos(5))
                job_id = job_of((await handle.wait_followups(2))[1])
                job = await wait_job(store, job_id, lambda j: j.is_finished, timeout=240)
                assert job.status is JobStatus.SUCCEEDED, job.error
                [message_id] = await wait_delivered(store, job_id)
            samples = fake.message(message_id)
            assert "Biscuit" in samples.content and samples.attachments
            listing = await fake.invoke_command("character list")
            assert "Biscuit" in (await listing.wait_followups(1))[0].content
            async with fast_worker(store):
                told = await fake.invoke_command("story", {"summary": "a cat finds a ball", "character": "Biscuit"})
                story = await store.get(job_of(await told.wait_original()))
                assert story.params["characters"] == ["Biscuit"]
    finally:
        await store.close()


async def test_training_photos_are_refused_by_declared_size_before_download_and_by_pixels_after(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    from storyloom.characters.photos import MAX_PHOTO_BYTES
    from tests.support.images import png_bomb

    config = bot_config(tmp_path)
    async with running_bot(config, store, fake):
        oversized = [*photos(4), Upload("huge.png", bytes(MAX_PHOTO_BYTES + 1024 * 1024))]
        line = await refused(fake, "character train", TRAIN, user=fake.manager, attachments=oversized)
        assert "huge.png is 33 MB; each photo may be at most 32 MB" in line
        assert [a.downloads for a in fake.state.attachments.values()] == [0] * 5  # nothing was downloaded

        bomb = [*photos(4), Upload("bomb.png", png_bomb(13000, 13000))]
        line = await refused(fake, "character train", TRAIN, user=fake.manager, attachments=bomb)
        assert "bomb.png is 13000×13000 pixels; pictures may have at most 50 megapixels" in line
        assert await store.list_jobs(tuple(JobStatus)) == []
        assert saved_uploads(config) == []
