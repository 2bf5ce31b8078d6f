"""Pictures in, with a fast stand-in worker: image prompts on /imagine, /blend, /describe and its buttons, Remix,
❌ and ✉️ — the bot's side against the fake Discord (``test_e2e.py`` draws them with a real worker)."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image

from storyloom.queue.job import ArtifactKind, JobInput, JobKind, JobStatus
from tests.support.bot import bot_config, fast_worker, job_of, running_bot
from tests.support.fakediscord import FakeDiscord
from tests.support.fakediscord.interactions import Upload
from tests.support.images import noisy_png, png_bomb

MODAL = 9


def gif(frames: int) -> bytes:
    pictures = [Image.new("RGB", (32, 32), (40 * i, 0, 0)) for i in range(frames)]
    buffer = io.BytesIO()
    pictures[0].save(buffer, format="GIF", save_all=frames > 1, append_images=pictures[1:], duration=80)
    return buffer.getvalue()


async def refused(fake: FakeDiscord, name: str, options: dict, **kwargs) -> str:
    """The private line a command answered with."""
    handle = await fake.invoke_command(name, options, validate=False, **kwargs)
    ack = await handle.wait_ack()
    reply = handle.original_response() if ack.type == 4 else (await handle.wait_followups(1))[0]
    assert reply is not None and reply.ephemeral and reply.content.startswith("⚠️"), reply
    return reply.content


async def delivered_grid(fake: FakeDiscord, job_id: int):
    return await fake.wait_for(
        lambda: next(
            (
                m
                for channel in [fake.text_channel, *fake.threads_of(fake.text_channel)]
                for m in fake.messages_in(channel)
                if job_of(m) == job_id and m.attachments and m.custom_ids()
            ),
            None,
        ),
        timeout=10,
    )


async def queued_job(handle) -> int:
    status = await handle.wait_original()
    job_id = job_of(status)
    assert job_id is not None, status.content
    return job_id


# ------------------------------------------------------------------------------------------- image prompts
async def test_imagine_with_a_picture_stores_it_with_the_job_and_delivers_a_grid(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    picture = noisy_png(96, 64, seed=3)
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        handle = await fake.invoke_command(
            "imagine",
            {"prompt": "a cat in a hat", "image": Upload("cat.png", picture), "image_weight": 0.7},
        )
        job_id = await queued_job(handle)
        job = await store.get(job_id)
        assert (job.params["image_mode"], job.params["image_weight"]) == ("guide", 0.7)
        assert await store.job_inputs(job_id) == [JobInput(0, "cat.png", "image/png", picture)]

        started = await fake.invoke_command(
            "imagine", {"prompt": "a dog", "image": Upload("dog.png", picture), "image_as": "start"}
        )
        start_job = await store.get(await queued_job(started))
        assert start_job.params["image_mode"] == "start" and "image_weight" not in start_job.params

        grid = await delivered_grid(fake, job_id)
        assert grid.custom_ids()[-2:] == [f"sl:dm:{job_id}", f"sl:del:{job_id}"]
        reroll = await fake.click_button(grid, f"sl:r:{job_id}")
        again = await queued_job_from_followup(reroll)
        assert (await store.get(again)).params["image_mode"] == "guide"
        assert await store.job_inputs(again) == await store.job_inputs(job_id)  # the same picture travels on


async def queued_job_from_followup(handle) -> int:
    [status] = await handle.wait_followups(1)
    job_id = job_of(status)
    assert job_id is not None, status.content
    return job_id


async def test_bad_pictures_are_refused_privately_before_anything_is_queued(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    good = Upload("good.png", noisy_png(64, 64))
    cases = [
        ("imagine", {"prompt": "a cat", "image": Upload("notes.txt", b"hello, not a picture")}, "not an image"),
        ("imagine", {"prompt": "a cat", "image": Upload("dance.gif", gif(3))}, "animated"),
        ("imagine", {"prompt": "a cat", "image": Upload("bomb.png", png_bomb(20000, 20000))}, "megapixels"),
        ("imagine", {"prompt": "a cat", "image": Upload("huge.png", b"\x89PNG" + bytes(17 * 1024 * 1024))}, "16 MB"),
        ("imagine", {"prompt": "a cat", "image_weight": 0.5}, "need a picture"),
        (
            "imagine",
            {"prompt": "a cat", "image": good, "image_as": "start", "image_weight": 1.0, "steps": 10},
            "only 0.05 of 10 steps would run",
        ),
        ("describe", {"image": Upload("broken.png", noisy_png(64, 64)[:80])}, "damaged"),
        ("blend", {"image1": good, "image2": Upload("dance.gif", gif(2))}, "dance.gif is animated"),
    ]
    async with running_bot(bot_config(tmp_path), store, fake):
        for name, options, expected in cases:
            line = await refused(fake, name, options)
            assert expected in line, (name, line)
        assert await store.list_jobs() == []


# ------------------------------------------------------------------------------------------------- /blend
async def test_blend_queues_every_picture_and_delivers_a_grid(fake: FakeDiscord, store, tmp_path: Path) -> None:
    pictures = [noisy_png(64, 64, seed=i) for i in range(3)]
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        options = {f"image{i + 1}": Upload(f"p{i}.png", data) for i, data in enumerate(pictures)}
        handle = await fake.invoke_command("blend", {**options, "ar": "2:3"})
        job_id = await queued_job(handle)
        job = await store.get(job_id)
        assert job.kind is JobKind.BLEND and job.params["aspect_ratio"] == "2:3"
        assert [item.data for item in await store.job_inputs(job_id)] == pictures
        grid = await delivered_grid(fake, job_id)
        assert f"sl:u:{job_id}:1" in grid.custom_ids() and "🌀" in grid.content


# ---------------------------------------------------------------------------------------------- /describe
async def test_describe_lists_four_prompts_and_a_number_draws_that_prompt(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    picture = noisy_png(80, 80, seed=5)
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        handle = await fake.invoke_command("describe", {"image": Upload("photo.png", picture)})
        job_id = await queued_job(handle)
        assert await store.job_inputs(job_id) == [JobInput(0, "photo.png", "image/png", picture)]
        result = await delivered_grid(fake, job_id)
        assert result.custom_ids() == [
            *(f"sl:d:{job_id}:{n}" for n in range(1, 5)),
            f"sl:dm:{job_id}",
            f"sl:del:{job_id}",
        ]
        assert all(f"{n}\ufe0f\u20e3 a cat, suggestion {n}" in result.content for n in range(1, 5))
        assert [b["label"] for b in result.buttons()][:4] == [f"{n}\ufe0f\u20e3" for n in range(1, 5)]
        assert result.attachments[0].data == picture  # the described picture is shown with its prompts

        pressed = await fake.click_button(result, f"sl:d:{job_id}:2", user=fake.manager)
        imagined = await store.get(await queued_job_from_followup(pressed))
        assert (imagined.kind, imagined.params["prompt"], imagined.user_id) == (
            JobKind.IMAGINE,
            "a cat, suggestion 2",
            fake.manager.id,
        )


# --------------------------------------------------------------------------------------------------- Remix
def form_values(handle) -> dict[str, str | None]:
    """The pre-filled values of the text fields of the form the bot opened, by custom ID."""
    fields = [row.get("component") or row["components"][0] for row in handle.modal["components"]]
    return {field["custom_id"]: field.get("value") for field in fields}


async def test_remix_opens_a_prefilled_form_and_queues_what_the_user_wrote(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        handle = await fake.invoke_command("imagine", {"prompt": "a red barn", "negative": "fog"})
        source = await queued_job(handle)
        grid = await delivered_grid(fake, source)

        plain = await fake.click_button(grid, f"sl:v:{source}:1")  # Remix off: queued at once
        assert (await plain.wait_ack()).type == 5

        settings = await fake.invoke_command("settings", {"remix": True})
        [shown] = await settings.wait_followups(1)
        assert "Remix: on" in shown.content
        assert (await store.user_settings(fake.member.id))["remix"] == "on"

        for custom_id in (f"sl:v:{source}:2", f"sl:r:{source}"):
            press = await fake.click_button(grid, custom_id)
            assert (await press.wait_ack()).type == MODAL
            assert form_values(press) == {"prompt": "a red barn", "negative": "fog"}
            submitted = await press.submit_modal({"prompt": "a blue barn", "negative": "rain"})
            remixed = await store.get(await queued_job_from_followup(submitted))
            assert (remixed.params["prompt"], remixed.params["negative_prompt"]) == ("a blue barn", "rain")
            assert remixed.kind is (JobKind.VARY if custom_id.startswith("sl:v:") else JobKind.IMAGINE)

        upscale = await fake.click_button(grid, f"sl:u:{source}:1")  # U1 is no Remix button: queued at once
        assert (await upscale.wait_ack()).type == 5
        upscaled_id = await queued_job_from_followup(upscale)
        upscaled = await delivered_grid(fake, upscaled_id)
        press = await fake.click_button(upscaled, f"sl:vx:{upscaled_id}:1")  # Vary (Strong) under the upscale
        assert (await press.wait_ack()).type == MODAL
        assert form_values(press) == {"prompt": "a red barn", "negative": "fog"}  # the imagine's, two jobs back
        submitted = await press.submit_modal({"prompt": "a red barn at night", "negative": "fog"})
        strong = await store.get(await queued_job_from_followup(submitted))
        assert (strong.kind, strong.parent_id, strong.params["strength"]) == (JobKind.VARY, upscaled_id, "strong")
        assert strong.params["prompt"] == "a red barn at night"


# ------------------------------------------------------------------------------------------------ ❌ and ✉️
async def private_reply(handle):
    """The one private line an interaction was answered with (at once, or after deferring)."""
    ack = await handle.wait_ack()
    reply = handle.original_response() if ack.type == 4 else (await handle.wait_followups(1))[0]
    assert reply is not None and reply.ephemeral, reply
    return reply


async def test_delete_is_for_the_requester_and_managers_and_removes_the_stored_results(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        mine = await queued_job(await fake.invoke_command("imagine", {"prompt": "my cat"}, user=fake.member))
        theirs = await queued_job(await fake.invoke_command("imagine", {"prompt": "their dog"}, user=fake.owner))
        my_grid, their_grid = await delivered_grid(fake, mine), await delivered_grid(fake, theirs)

        denied = await private_reply(await fake.click_button(their_grid, f"sl:del:{theirs}", user=fake.member))
        assert "only the person who asked" in denied.content
        assert not fake.message(their_grid.id).deleted and await store.artifacts(theirs)

        done = await private_reply(await fake.click_button(my_grid, f"sl:del:{mine}", user=fake.member))
        assert f"job {mine}" in done.content
        assert fake.message(my_grid.id).deleted and await store.artifacts(mine) == []
        assert (await store.get(mine)).status is JobStatus.SUCCEEDED  # the record stays

        await private_reply(await fake.click_button(their_grid, f"sl:del:{theirs}", user=fake.manager))
        assert fake.message(their_grid.id).deleted and await store.artifacts(theirs) == []


async def test_envelope_sends_a_copy_of_the_result_by_direct_message(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        job_id = await queued_job(await fake.invoke_command("imagine", {"prompt": "a lighthouse"}))
        grid = await delivered_grid(fake, job_id)
        pressed = await fake.click_button(grid, f"sl:dm:{job_id}", user=fake.manager)
        [done] = await pressed.wait_followups(1)
        assert done.ephemeral and "direct messages" in done.content
        [copy] = fake.messages_in(fake.dm_with(fake.manager))
        stored = await store.artifact(job_id, 0, ArtifactKind.GRID)
        assert copy.attachments[0].data == stored.data and "a lighthouse" in copy.content


async def test_remix_of_a_blend_may_leave_the_words_out(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        await (await fake.invoke_command("settings", {"remix": True})).wait_followups(1)
        pictures = {f"image{i}": Upload(f"p{i}.png", noisy_png(64, 64, seed=i)) for i in (1, 2)}
        source = await queued_job(await fake.invoke_command("blend", pictures))
        grid = await delivered_grid(fake, source)

        press = await fake.click_button(grid, f"sl:r:{source}")
        assert (await press.wait_ack()).type == MODAL
        again = await store.get(
            await queued_job_from_followup(await press.submit_modal({"prompt": "", "negative": ""}))
        )
        assert again.kind is JobKind.BLEND and again.params.get("prompt", "") == ""
        assert [i.data for i in await store.job_inputs(again.id)] == [i.data for i in await store.job_inputs(source)]

        press = await fake.click_button(grid, f"sl:v:{source}:1")
        assert (await press.wait_ack()).type == MODAL
        varied = await store.get(
            await queued_job_from_followup(await press.submit_modal({"prompt": "", "negative": ""}))
        )
        assert varied.kind is JobKind.VARY and "prompt" not in varied.params  # the picture's own prompt is used
