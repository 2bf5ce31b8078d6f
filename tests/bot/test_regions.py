"""Vary (Region), the square picker, the region preview, Zoom Out, Pan and a fixed story page, from Discord, with
the fast stand-in worker (``test_e2e.py`` runs the flow with the real worker and the tiny models)."""

from __future__ import annotations

from pathlib import Path

from storyloom.bot import results
from storyloom.bot.stories import Stories
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import ArtifactKind, Job, JobKind, JobStatus, NewArtifact
from tests.support.bot import bot_config, fast_worker, job_of, running_bot
from tests.support.fakediscord import FakeDiscord
from tests.support.images import png

MODAL, UPDATE = 9, 7


async def all_jobs(store: AsyncJobStore) -> list[Job]:
    return await store.list_jobs(tuple(JobStatus))


async def result_of(fake: FakeDiscord, job_id: int):
    """The message that delivered job ``job_id``'s result (a picture with its footer), in the channel or a
    thread of it."""

    def find():
        places = [fake.text_channel, *fake.threads_of(fake.text_channel)]
        return next((m for c in places for m in fake.messages_in(c) if job_of(m) == job_id and m.attachments), None)

    return await fake.wait_for(find, timeout=10)


async def queued(handle) -> int:
    """The job a press or form queued (its status message), read back from the job's footer."""
    [status] = await handle.wait_followups(1)
    job_id = job_of(status)
    assert job_id is not None, status.content
    return job_id


async def private_line(handle) -> str:
    ack = await handle.wait_ack()
    reply = handle.original_response() if ack.type == 4 else (await handle.wait_followups(1))[0]
    assert reply is not None and reply.ephemeral, reply
    return reply.content


async def opened_form(fake: FakeDiscord, message, custom_id: str):
    """Press a button that opens a form; the press, answered with the form."""
    press = await fake.click_button(message, custom_id)
    assert (await press.wait_ack()).type == MODAL
    return press


def form_fields(handle) -> dict[str, str | None]:
    fields = [row.get("component") or row["components"][0] for row in handle.modal["components"]]
    return {field["custom_id"]: field.get("value") for field in fields}


async def upscaled_picture(fake: FakeDiscord, store: AsyncJobStore, prompt: str = "a red barn"):
    """/imagine, then U1: the upscaled picture's message."""
    handle = await fake.invoke_command("imagine", {"prompt": prompt, "negative": "fog"})
    grid = await result_of(fake, job_of(await handle.wait_original()))
    press = await fake.click_button(grid, f"sl:u:{job_of(grid)}:1")
    return await result_of(fake, await queued(press))


def rows(message) -> list[list[str]]:
    return [[c["custom_id"] for c in row["components"]] for row in message.components]


# ----------------------------------------------------------------------------------------- Vary (Region)
async def test_vary_region_form_queues_a_region_job_and_redraw_queues_the_inpaint(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        upscaled = await upscaled_picture(fake, store)
        up = job_of(upscaled)
        assert rows(upscaled) == [
            [f"sl:vs:{up}:1", f"sl:vx:{up}:1", f"sl:vr:{up}:1", f"sl:sq:{up}:1", f"sl:x4:{up}:1"],
            [f"sl:zo:{up}:1:20", f"sl:zo:{up}:1:15", f"sl:zc:{up}:1"],
            [f"sl:pn:{up}:1:{way}" for way in "lrud"],
            [f"sl:dm:{up}", f"sl:del:{up}"],
        ]

        press = await opened_form(fake, upscaled, f"sl:vr:{up}:1")
        assert form_fields(press) == {"region": None, "prompt": "a red barn"}  # the picture's prompt to start from
        submitted = await press.submit_modal({"region": "  the   barn ", "prompt": "a golden castle"})
        region = await store.get(await queued(submitted))
        assert (region.kind, region.parent_id, region.user_id) == (JobKind.REGION, up, fake.member.id)
        assert region.params == {
            "index": 0, "region": "the barn", "prompt": "a golden castle", "negative_prompt": "fog",
        }  # fmt: skip

        preview = await result_of(fake, region.id)
        assert preview.custom_ids() == [f"sl:rr:{region.id}", f"sl:rx:{region.id}"]
        assert "“the barn”" in preview.content and "25% of the picture" in preview.content
        assert preview.attachments[0].data == (await store.artifact(region.id, 0, ArtifactKind.IMAGE)).data

        redraw = await fake.click_button(preview, f"sl:rr:{region.id}", user=fake.owner)
        inpaint = await store.get(await queued(redraw))
        assert (inpaint.kind, inpaint.parent_id, inpaint.user_id) == (JobKind.INPAINT, region.id, fake.owner.id)
        assert inpaint.params.get("page") is None and "prompt" not in inpaint.params  # the region job's prompt

        redrawn = await result_of(fake, inpaint.id)
        assert "**a golden castle**" in redrawn.content and f"job {up}" in redrawn.content
        i = inpaint.id
        assert rows(redrawn)[:3] == [
            [f"sl:vs:{i}:1", f"sl:vx:{i}:1", f"sl:vr:{i}:1", f"sl:sq:{i}:1", f"sl:x4:{i}:1"],
            [f"sl:zo:{i}:1:20", f"sl:zo:{i}:1:15", f"sl:zc:{i}:1"],
            [f"sl:pn:{i}:1:{way}" for way in "lrud"],
        ]


async def test_a_region_needs_words_or_squares_and_nothing_is_queued_without(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        upscaled = await upscaled_picture(fake, store)
        before = len(await all_jobs(store))
        press = await opened_form(fake, upscaled, f"sl:vr:{job_of(upscaled)}:1")
        line = await private_line(await press.submit_modal({"region": "   ", "prompt": "a castle"}))
        assert "write what to change" in line and "🔲 Pick squares" in line
        assert len(await all_jobs(store)) == before


async def test_squares_picked_on_the_private_grid_queue_a_region_of_those_squares(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        upscaled = await upscaled_picture(fake, store)
        up = job_of(upscaled)
        opened = await fake.click_button(upscaled, f"sl:sq:{up}:1")
        assert (await opened.wait_ack()).type == 4
        picker = opened.original_response()
        assert picker.ephemeral and "none picked yet" in picker.content
        assert rows(picker) == [
            [f"sl:sc:{up}:1:0:{cell}" for cell in (1, 2, 3)],
            [f"sl:sc:{up}:1:0:{cell}" for cell in (4, 5, 6)],
            [f"sl:sc:{up}:1:0:{cell}" for cell in (7, 8, 9)],
            [f"sl:sn:{up}:1:0"],
        ]
        assert picker.find_component(f"sl:sn:{up}:1:0").get("disabled")  # Next waits for a square

        first = await fake.click_button(picker, f"sl:sc:{up}:1:0:1")
        assert (await first.wait_ack()).type == UPDATE
        picker = fake.message(picker.id)
        second = await fake.click_button(picker, f"sl:sc:{up}:1:1:5")  # square 1 is in the ID now
        assert (await second.wait_ack()).type == UPDATE
        picker = fake.message(picker.id)
        assert "picked: 1, 5" in picker.content
        assert picker.find_component(f"sl:sc:{up}:1:17:5")["style"] == 3  # green: picked
        assert picker.find_component(f"sl:sc:{up}:1:17:2")["style"] == 2

        form = await opened_form(fake, picker, f"sl:sn:{up}:1:17")
        assert form_fields(form) == {"prompt": "a red barn"}  # no words to give: the squares are the region
        region = await store.get(await queued(await form.submit_modal({"prompt": "a blue sky"})))
        assert (region.kind, region.parent_id) == (JobKind.REGION, up)
        assert (region.params["cells"], region.params.get("region"), region.params["prompt"]) == (
            [1, 5],
            None,
            "a blue sky",
        )


async def test_an_empty_region_shows_the_preview_with_the_reason_and_nothing_to_redraw(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        upscaled = await upscaled_picture(fake, store)
        up = job_of(upscaled)
        press = await opened_form(fake, upscaled, f"sl:vr:{up}:1")
        region_id = await queued(await press.submit_modal({"region": "a unicorn", "prompt": "a horse"}))
        preview = await result_of(fake, region_id)
        assert "nothing in the picture matched “a unicorn”; try other words or pick squares with 🔲" in preview.content
        assert preview.attachments  # the preview is shown all the same
        assert f"sl:rr:{region_id}" not in preview.custom_ids()
        assert preview.custom_ids() == [f"sl:vr:{up}:1", f"sl:sq:{up}:1"]  # choose again on the same picture

        before = len(await all_jobs(store))
        forged = fake.state.create_message(fake.text_channel.id, fake.bot_user, {"content": "old", "components": [
            {"type": 1, "components": [{"type": 2, "style": 1, "label": "✅", "custom_id": f"sl:rr:{region_id}"}]},
        ]})  # fmt: skip
        line = await private_line(await fake.click_button(forged, f"sl:rr:{region_id}"))
        assert "nothing in the picture matched “a unicorn”" in line
        assert len(await all_jobs(store)) == before


async def test_cancel_ends_the_preview_and_remix_asks_for_the_redraws_prompt(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        upscaled = await upscaled_picture(fake, store)
        press = await opened_form(fake, upscaled, f"sl:vr:{job_of(upscaled)}:1")
        region_id = await queued(await press.submit_modal({"region": "the roof", "prompt": "a green roof"}))
        preview = await result_of(fake, region_id)
        before = len(await all_jobs(store))

        someone = fake.add_user("sam")  # neither the requester nor allowed to manage messages
        denied = await private_line(await fake.click_button(preview, f"sl:rx:{region_id}", user=someone))
        assert "only the person who asked" in denied
        canceled = await fake.click_button(preview, f"sl:rx:{region_id}")
        assert (await canceled.wait_ack()).type == UPDATE
        after = fake.message(preview.id)
        assert after.custom_ids() == [] and "✖ canceled" in after.content and after.attachments
        assert len(await all_jobs(store)) == before

        await (await fake.invoke_command("settings", {"remix": True})).wait_followups(1)
        other = await opened_form(fake, upscaled, f"sl:vr:{job_of(upscaled)}:1")
        second = await queued(await other.submit_modal({"region": "the door", "prompt": "a red door"}))
        redraw = await fake.click_button(await result_of(fake, second), f"sl:rr:{second}")
        assert (await redraw.wait_ack()).type == MODAL
        assert form_fields(redraw) == {"prompt": "a red door", "negative": "fog"}  # the region job's prompts
        inpaint = await store.get(await queued(await redraw.submit_modal({"prompt": "a blue door", "negative": ""})))
        assert (inpaint.kind, inpaint.parent_id, inpaint.params["prompt"]) == (JobKind.INPAINT, second, "a blue door")


# ------------------------------------------------------------------------------------- Zoom Out and Pan
async def test_zoom_and_pan_buttons_queue_outpaint_jobs(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        upscaled = await upscaled_picture(fake, store)
        up = job_of(upscaled)
        expected = {
            f"sl:zo:{up}:1:20": {"zoom": 2.0}, f"sl:zo:{up}:1:15": {"zoom": 1.5},
            f"sl:pn:{up}:1:l": {"pan": "left"}, f"sl:pn:{up}:1:r": {"pan": "right"},
            f"sl:pn:{up}:1:u": {"pan": "up"}, f"sl:pn:{up}:1:d": {"pan": "down"},
        }  # fmt: skip
        for custom_id, wanted in expected.items():
            job = await store.get(await queued(await fake.click_button(upscaled, custom_id)))
            assert (job.kind, job.parent_id, job.params["index"]) == (JobKind.OUTPAINT, up, 0), custom_id
            assert {k: job.params[k] for k in wanted} == wanted and "prompt" not in job.params
            grown = await result_of(fake, job.id)  # one picture with the usual buttons of an upscaled one
            assert f"sl:vr:{job.id}:1" in grown.custom_ids() and f"sl:pn:{job.id}:1:l" in grown.custom_ids()

        press = await opened_form(fake, upscaled, f"sl:zc:{up}:1")
        assert form_fields(press) == {"zoom": "1.5", "prompt": "a red barn"}
        before = len(await all_jobs(store))
        for typed, words in (("3", "zoom 3 is out of range"), ("1.05", "from 1.1 to 2"), ("big", "not a number")):
            form = await opened_form(fake, upscaled, f"sl:zc:{up}:1")  # a form is answered once
            line = await private_line(await form.submit_modal({"zoom": typed, "prompt": "a farm"}))
            assert words in line, (typed, line)
        assert len(await all_jobs(store)) == before
        form = await opened_form(fake, upscaled, f"sl:zc:{up}:1")
        custom = await store.get(await queued(await form.submit_modal({"zoom": "1.3×", "prompt": "a farm at dusk"})))
        assert (custom.kind, custom.params["zoom"], custom.params["prompt"]) == (
            JobKind.OUTPAINT,
            1.3,
            "a farm at dusk",
        )


def small_growth_limits(config, side: int):
    """``config`` allowing grown pictures of at most ``side`` pixels a side."""
    limits = config.inpaint.model_copy(update={"max_result_side": side})
    return config.model_copy(update={"inpaint": limits})


async def big_picture(fake: FakeDiscord, store, side: int):
    """A finished imagine job whose one picture is recorded as ``side``² pixels, and a message with its Zoom Out
    2× and Pan left buttons."""
    where = {"user_id": fake.member.id, "guild_id": fake.guild.id, "channel_id": fake.text_channel.id}
    source = await store.enqueue(JobKind.IMAGINE, {"prompt": "a boat"}, **where, enforce_caps=False)
    await store.claim("w", [JobKind.IMAGINE.value])
    metadata = {"width": side, "height": side}
    picture = NewArtifact(ArtifactKind.IMAGE, 0, "i.png", "image/png", png(8, 8, (9, 9, 9)), metadata)
    await store.complete(source.id, "w", [picture])
    message = fake.state.create_message(fake.text_channel.id, fake.bot_user, {"content": "a big picture", "components": [
        {"type": 1, "components": [
            {"type": 2, "style": 2, "label": "z", "custom_id": f"sl:zo:{source.id}:1:20"},
            {"type": 2, "style": 2, "label": "p", "custom_id": f"sl:pn:{source.id}:1:l"},
        ]},
    ]})  # fmt: skip
    return source, message


async def test_a_picture_too_large_to_grow_as_it_is_grows_from_a_scaled_down_copy(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        source, message = await big_picture(fake, store, 4096)  # an upscale's size: 2× would be 8192 pixels a side
        zoomed = await store.get(await queued(await fake.click_button(message, f"sl:zo:{source.id}:1:20")))
        assert (zoomed.kind, zoomed.params["zoom"], zoomed.params["fit"]) == (JobKind.OUTPAINT, 2.0, True)
        panned = await store.get(await queued(await fake.click_button(message, f"sl:pn:{source.id}:1:l")))
        assert (panned.params["pan"], panned.params["fit"]) == ("left", True)


async def test_a_growth_the_limits_cannot_hold_even_scaled_down_is_refused_before_queueing(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(small_growth_limits(bot_config(tmp_path), 40), store, fake):
        source, message = await big_picture(fake, store, 1536)
        before = len(await all_jobs(store))
        line = await private_line(await fake.click_button(message, f"sl:zo:{source.id}:1:20"))
        assert "Zoom Out 2× of this 1536×1536 picture would be 3072×3072 pixels" in line
        assert "at most 40 pixels a side" in line
        line = await private_line(await fake.click_button(message, f"sl:pn:{source.id}:1:l"))
        assert "Pan left of this 1536×1536 picture would be 2304×1536 pixels" in line
        assert len(await all_jobs(store)) == before


async def test_only_the_zooms_and_pans_a_picture_can_take_are_offered(fake: FakeDiscord, store, tmp_path: Path) -> None:
    where = {"user_id": fake.member.id, "guild_id": fake.guild.id, "channel_id": fake.text_channel.id}
    offered = {}
    for limit in (2048, 40):
        async with running_bot(small_growth_limits(bot_config(tmp_path), limit), store, fake) as bot:
            bot.delivery.stop()  # prepared by hand below
            for side in (512, 4096):
                source = await store.enqueue(JobKind.IMAGINE, {"prompt": "a boat"}, **where, enforce_caps=False)
                await store.claim("w", [JobKind.IMAGINE.value])
                metadata = {"width": side, "height": side}
                picture = NewArtifact(ArtifactKind.IMAGE, 0, "i.png", "image/png", png(8, 8, (9, 9, 9)), metadata)
                await store.complete(source.id, "w", [picture])
                job = await store.enqueue(
                    JobKind.UPSCALE, {"index": 0}, parent_id=source.id, **where, enforce_caps=False
                )
                await store.claim("w", [JobKind.UPSCALE.value])
                await store.complete(job.id, "w", [picture])
                [post] = (await results.prepare(bot, await store.get(job.id))).posts
                offered[limit, side] = [item.custom_id.removeprefix("sl:").split(":")[0] for item in post.items]
    growth = ["zo", "zo", "zc", "pn", "pn", "pn", "pn"]
    for side in (512, 4096):  # the default limits: every picture can grow, a large one from a scaled-down copy
        assert [name for name in offered[2048, side] if name in ("zo", "zc", "pn")] == growth
    # Grown pictures of at most 40 pixels a side: a 512 picture would be scaled below 32 pixels for 2×, 1.5× and
    # the pans, not for 1.1×; the region buttons stay whatever the limits.
    assert [name for name in offered[40, 512] if name in ("zo", "zc", "pn")] == ["zc"]
    assert offered[40, 4096][:4] == ["vs", "vx", "vr", "sq"]


# ------------------------------------------------------------------------------------------- story pages
async def test_a_story_page_is_fixed_in_its_thread_and_the_book_takes_it_when_used(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store) as worker:
        handle = await fake.invoke_command("story", {"summary": "a cat and a red ball", "pages": 2})
        story_id = job_of(await handle.wait_original())
        thread = await fake.wait_for(
            lambda: fake.threads_of(fake.text_channel) and fake.threads_of(fake.text_channel)[0]
        )
        book = await fake.wait_for_message(thread, lambda m: any(a.filename.endswith(".pdf") for a in m.attachments))
        page = next(m for m in fake.messages_in(thread) if m.content.startswith("**Page 2"))
        page_id = job_of(page)
        assert rows(page)[1] == [f"sl:vr:{page_id}:1", f"sl:sq:{page_id}:1"]
        assert page.find_component(f"sl:vr:{page_id}:1")["label"] == "🖌️ Fix part of this page"

        press = await opened_form(fake, page, f"sl:vr:{page_id}:1")
        assert form_fields(press) == {"region": None, "prompt": "page 2"}  # the page's own prompt
        region_id = await queued(await press.submit_modal({"region": "the ball", "prompt": "a blue ball"}))
        preview = await result_of(fake, region_id)
        assert "“the ball” of page 2 → **a blue ball**" in preview.content
        worker.image = png(64, 64, (20, 40, 220))  # the fixed picture differs from the page's
        redraw = await fake.click_button(preview, f"sl:rr:{region_id}")
        inpaint = await store.get(await queued(redraw))
        assert (inpaint.kind, inpaint.params["page"]) == (JobKind.INPAINT, 1)

        fixed = await result_of(fake, inpaint.id)  # in the story's thread, as the page's new version
        assert fixed.content.startswith("**Page 2** (fixed: “the ball” → *a blue ball*)")
        assert "Text of page 2." in fixed.content
        assert fixed.custom_ids()[:3] == [f"sl:ub:{inpaint.id}", f"sl:vr:{inpaint.id}:1", f"sl:sq:{inpaint.id}:1"]
        versions = await store.story_versions(story_id)
        assert versions.pages[1].id == page_id  # not in the book until the writer says so

        used = await fake.click_button(fixed, f"sl:ub:{inpaint.id}")
        [updated] = await used.wait_followups(1)
        assert (
            updated.attachments[0].data.startswith(b"%PDF") and updated.attachments[0].data != book.attachments[0].data
        )
        assert (await store.story_versions(story_id)).pages[1].id == inpaint.id
        images = await Stories(store).page_images(story_id)
        assert images[1] == worker.image and images[0] != worker.image

        # The fix of the fix: a region on the fixed picture still knows its page.
        again = await opened_form(fake, fixed, f"sl:vr:{inpaint.id}:1")
        second_region = await queued(await again.submit_modal({"region": "the cat", "prompt": "a tiger"}))
        second = await store.get(
            await queued(await fake.click_button(await result_of(fake, second_region), f"sl:rr:{second_region}"))
        )
        assert second.params["page"] == 1


async def test_region_buttons_refuse_jobs_of_another_server(fake: FakeDiscord, store, tmp_path: Path) -> None:
    elsewhere = fake.add_guild("elsewhere")
    [their_channel] = [c for c in fake.state.channels.values() if c.guild_id == elsewhere.id and not c.is_thread]
    where = {"user_id": fake.owner.id, "guild_id": elsewhere.id, "channel_id": their_channel.id}
    theirs = await store.enqueue(JobKind.IMAGINE, {"prompt": "theirs"}, **where, enforce_caps=False)
    await store.claim("w", [JobKind.IMAGINE.value])
    metadata = {"width": 64, "height": 64}
    picture = NewArtifact(ArtifactKind.IMAGE, 0, "i.png", "image/png", png(8, 8, (1, 1, 1)), metadata)
    await store.complete(theirs.id, "w", [picture])
    t = theirs.id
    custom_ids = [
        f"sl:vr:{t}:1", f"sl:sq:{t}:1", f"sl:sn:{t}:1:3", f"sl:rr:{t}", f"sl:rx:{t}",
        f"sl:zo:{t}:1:20", f"sl:zc:{t}:1", f"sl:pn:{t}:1:u", f"sl:ub:{t}",
    ]  # fmt: skip
    async with running_bot(bot_config(tmp_path), store, fake):
        before = len(await all_jobs(store))
        rows_ = [
            {
                "type": 1,
                "components": [{"type": 2, "style": 2, "label": "x", "custom_id": c} for c in custom_ids[i : i + 5]],
            }
            for i in range(0, len(custom_ids), 5)
        ]
        message = fake.state.create_message(
            fake.text_channel.id, fake.bot_user, {"content": "look", "components": rows_}
        )
        for custom_id in custom_ids:
            line = await private_line(await fake.click_button(message, custom_id))
            assert "not one of this server's" in line, custom_id
        assert len(await all_jobs(store)) == before
