"""The bot against the fake Discord with a fast stand-in worker: commands, replies, delivery rules.

The stand-in completes jobs in the store at once with small made-up results, so these tests exercise the
bot's side (acknowledging, validating, queueing, status messages, threads, exactly-once delivery, upload
limits) in seconds. ``test_e2e.py`` runs the same paths with a real worker on the tiny models.
"""

from __future__ import annotations

from pathlib import Path

from storyloom.bot.stories import Stories
from storyloom.queue.job import JobKind, JobStatus
from tests.support.bot import bot_config, fast_worker, job_of, messages_of_job, running_bot
from tests.support.fakediscord import FakeDiscord
from tests.support.images import png
from tests.support.jobs import wait_job


async def test_imagine_is_deferred_queued_and_delivered_into_a_thread(fake: FakeDiscord, store, tmp_path: Path) -> None:
    config = bot_config(tmp_path)
    async with running_bot(config, store, fake), fast_worker(store):
        handle = await fake.invoke_command("imagine", {"prompt": "a red cat"})
        assert (await handle.wait_ack()).type == 5
        status = await handle.wait_original()
        [thread] = await fake.wait_for(lambda: fake.threads_of(fake.text_channel))
        grid = await fake.wait_for_message(thread, lambda m: bool(m.attachments), timeout=10)
        job_id = job_of(grid)
        assert job_id is not None and f"job {job_id}" in status.content
        assert grid.custom_ids() == [
            *(f"sl:u:{job_id}:{n}" for n in range(1, 5)),
            f"sl:r:{job_id}",
            *(f"sl:v:{job_id}:{n}" for n in range(1, 5)),
            f"sl:dm:{job_id}",
            f"sl:del:{job_id}",
        ]
        await fake.wait_for(lambda: fake.message(status.id).content.startswith("✅"), timeout=5)
        assert thread.name == "a red cat"
        assert await store.is_delivered(job_id)


# ------------------------------------------------------------------------------------------------ bad input
BAD_IMAGINE = [
    ({"prompt": ""}, "empty"),
    ({"prompt": "   "}, "empty"),
    ({"prompt": "x" * 20_000}, "20,000 characters"),
    ({"prompt": "a cat", "ar": "abc"}, "aspect ratio"),
    ({"prompt": "a cat", "ar": "10:1"}, "aspect ratio"),
    ({"prompt": "a cat", "steps": 0}, "steps must be between"),
    ({"prompt": "a cat", "steps": 500}, "steps must be between"),
    ({"prompt": "a cat", "seed": -1}, "seed"),
    ({"prompt": "[a cat:a dog:2.5]"}, "fraction"),
    ({"prompt": "a cat", "negative": "y" * 20_000}, "negative prompt"),
    ({"prompt": "a Forbidden thing"}, "does not allow"),
]


async def test_bad_inputs_get_ephemeral_errors_and_queue_nothing(fake: FakeDiscord, store, tmp_path: Path) -> None:
    config = bot_config(tmp_path, banned_words=["forbidden"])
    async with running_bot(config, store, fake):
        cases = [("imagine", options, expected) for options, expected in BAD_IMAGINE] + [
            ("story", {"summary": "  "}, "summary is empty"),
            ("story", {"summary": "a knight with a gun"}, "gentle stories"),
            ("story", {"summary": "a cat and a forbidden box"}, "gentle stories"),
            ("story", {"summary": "a cat", "style": "cubist"}, "style"),
            ("story", {"summary": "a cat", "pages": 50}, "pages"),
        ]
        for name, options, expected in cases:
            handle = await fake.invoke_command(name, options, validate=False)
            ack = await handle.wait_ack()
            reply = handle.original_response()
            assert ack.type == 4 and reply.ephemeral, (name, options)
            assert reply.content.startswith("⚠️") and expected in reply.content, (options, reply.content)
        assert await store.list_jobs(tuple(JobStatus)) == []
        assert fake.threads_of(fake.text_channel) == []


# ------------------------------------------------------------------------------------------------ places
async def test_in_direct_messages_results_come_in_place_and_the_status_says_why(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        handle = await fake.invoke_command("imagine", {"prompt": "a quiet moon"}, channel=fake.dm_channel)
        status = await handle.wait_original()
        assert "direct messages have no threads" in status.content
        grid = await fake.wait_for_message(fake.dm_channel, lambda m: bool(m.attachments))
        assert int(grid.message_reference["message_id"]) == status.id  # it answers the request
        job = await store.get(job_of(grid))
        assert (job.guild_id, job.channel_id, job.thread_id) == (None, fake.dm_channel.id, None)
        assert job.params["safety_checker"] is True  # DMs are not age-restricted


async def test_where_threads_are_refused_results_come_in_place(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        handle = await fake.invoke_command("imagine", {"prompt": "a loud sun"}, channel=fake.no_threads_channel)
        status = await handle.wait_original()
        grid = await fake.wait_for_message(fake.no_threads_channel, lambda m: bool(m.attachments))
        await fake.wait_for(lambda: "threads are not allowed" in fake.message(status.id).content, timeout=5)
        assert fake.threads_of(fake.no_threads_channel) == [] and job_of(grid) is not None


async def test_results_in_the_channel_when_threads_are_switched_off(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path, results_in_thread=False), store, fake), fast_worker(store):
        handle = await fake.invoke_command("imagine", {"prompt": "a red fox"})
        await handle.wait_original()
        grid = await fake.wait_for_message(fake.text_channel, lambda m: bool(m.attachments))
        assert fake.threads_of(fake.text_channel) == [] and job_of(grid) is not None


async def test_age_restricted_channels_leave_the_safety_checker_to_the_config(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        first = await fake.invoke_command("imagine", {"prompt": "a night club"}, channel=fake.nsfw_channel)
        second = await fake.invoke_command("imagine", {"prompt": "a day club"})
        for handle in (first, second):
            await handle.wait_original()
        jobs = {job.params["prompt"]: job for job in await store.list_jobs(tuple(JobStatus))}
        assert "safety_checker" not in jobs["a night club"].params  # None: the configured default
        assert jobs["a day club"].params["safety_checker"] is True


async def test_a_story_outside_age_restricted_channels_forces_the_safety_checker(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        handle = await fake.invoke_command("story", {"summary": "a kind cat finds a lost kite"})
        await handle.wait_original()
        (job,) = [job for job in await store.list_jobs(tuple(JobStatus)) if job.kind.value == "story"]
        assert job.params["safety_checker"] is True  # and the worker hands it to every page


# ------------------------------------------------------------------------------------------------ /queue, /cancel, /help, /status
async def test_queue_cancel_help_and_status(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        mine = await fake.invoke_command("imagine", {"prompt": "first"})
        theirs = await fake.invoke_command("imagine", {"prompt": "second"}, user=fake.owner)
        mine_id = job_of(await mine.wait_original())
        theirs_id = job_of(await theirs.wait_original())

        listing = await fake.invoke_command("queue")
        [reply] = await listing.wait_followups(1)
        assert reply.ephemeral and f"`{mine_id}`" in reply.content and f"`{theirs_id}`" not in reply.content
        assert "position 1" in reply.content and "2 waiting" in reply.content

        refused = await fake.invoke_command("cancel", {"job": theirs_id})
        [answer] = await refused.wait_followups(1)
        assert answer.ephemeral and "someone else" in answer.content and f"job {theirs_id}" in answer.content
        assert (await store.get(theirs_id)).status is JobStatus.QUEUED

        by_manager = await fake.invoke_command("cancel", {"job": theirs_id}, user=fake.manager)
        assert f"Canceled job {theirs_id}" in (await by_manager.wait_followups(1))[0].content
        newest = await fake.invoke_command("cancel")
        assert f"Canceled job {mine_id}" in (await newest.wait_followups(1))[0].content
        unknown = await fake.invoke_command("cancel", {"job": 999})
        assert "999" in (await unknown.wait_followups(1))[0].content
        for job_id in (mine_id, theirs_id):
            assert (await store.get(job_id)).status is JobStatus.CANCELED
        status = await fake.wait_for(
            lambda: fake.message(mine.original_response().id).content.startswith("🛑") and True, timeout=5
        )
        assert status

        helped = await fake.invoke_command("help")
        await helped.wait_ack()
        assert helped.original_response().ephemeral and "/imagine" in helped.original_response().content

        denied = await fake.invoke_command("status", validate=False)
        await denied.wait_ack()
        assert denied.original_response().ephemeral and "managers" in denied.original_response().content
        await store.register_worker("host/1/cpu", host="host", pid=1, device="cpu")
        shown = await fake.invoke_command("status", user=fake.manager)
        [report] = await shown.wait_followups(1)
        assert report.ephemeral and "host/1/cpu" in report.content and "**cpu**" in report.content


# ------------------------------------------------------------------------------------------------ stories
async def test_story_flow_with_a_failed_page_redraw_and_upscale(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store) as worker:
        handle = await fake.invoke_command("story", {"summary": "a cat and a red ball", "pages": 3})
        status = await handle.wait_original()
        story_id = job_of(status)
        thread = await fake.wait_for(
            lambda: fake.threads_of(fake.text_channel) and fake.threads_of(fake.text_channel)[0]
        )
        book = await fake.wait_for_message(
            thread, lambda m: any(a.filename.endswith(".pdf") for a in m.attachments), timeout=10
        )
        assert fake.channel(thread.id).name == "The Cat and the Red Ball"
        contents = [m.content.split("\n")[0] for m in fake.messages_in(thread)]
        assert contents == ["📖 **The Cat and the Red Ball**", "**Page 1**", "**Page 2**", "**Page 3**", contents[-1]]
        assert book.attachments[0].data.startswith(b"%PDF")
        await fake.wait_for(lambda: fake.message(status.id).content.startswith("✅"), timeout=5)

        pages = [m for m in fake.messages_in(thread) if m.content.startswith("**Page")]
        worker.fail_kinds.add(JobKind.STORY_PAGE)
        redraw = await fake.click_button(pages[1], f"sl:rd:{job_of(pages[1])}", user=fake.owner)
        redraw_id = job_of((await redraw.wait_followups(1))[0])
        failed = await fake.wait_for_message(thread, lambda m: job_of(m) == redraw_id and "failed" in m.content)
        assert "the fast worker refuses this" in failed.content and f"<@{fake.owner.id}>" in failed.content
        worker.fail_kinds.clear()

        worker.image = png(8, 8, (20, 40, 220))  # the redrawn picture differs from the first one
        again = await fake.click_button(pages[1], f"sl:rd:{job_of(pages[1])}")
        again_id = job_of((await again.wait_followups(1))[0])
        redrawn = await fake.wait_for_message(thread, lambda m: job_of(m) == again_id and bool(m.attachments))
        assert redrawn.content.startswith("**Page 2** (redrawn)")
        job = await store.get(again_id)
        assert (job.kind, job.parent_id, job.params["page"]) == (JobKind.STORY_PAGE, story_id, 1)
        assert job.params["seed"] != (await store.get(job_of(pages[1]))).params.get("seed")

        # The book follows the thread: page 2 is now the redrawn picture, the others are unchanged.
        images = await Stories(store).page_images(story_id)
        assert sorted(images) == [0, 1, 2] and images[1] == worker.image and images[0] != worker.image
        assert f"sl:bk:{story_id}" in redrawn.custom_ids()
        rebuilt = await fake.click_button(redrawn, f"sl:bk:{story_id}")
        [updated] = await rebuilt.wait_followups(1)
        assert "with its redrawn and edited pages" in updated.content
        assert updated.attachments[0].data.startswith(b"%PDF")
        assert updated.attachments[0].filename == book.attachments[0].filename
        assert f"sl:c:{story_id}" in updated.custom_ids()

        up = await fake.click_button(pages[0], f"sl:u:{job_of(pages[0])}:1")
        up_id = job_of((await up.wait_followups(1))[0])
        upscaled = await fake.wait_for_message(thread, lambda m: job_of(m) == up_id and bool(m.attachments))
        assert upscaled.custom_ids()[0] == f"sl:vs:{up_id}:1"


async def test_a_failed_story_page_is_reported_and_the_book_still_comes(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store) as worker:
        worker.paused.set()
        handle = await fake.invoke_command("story", {"summary": "a dog and a kite", "pages": 2})
        story_id = job_of(await handle.wait_original())
        job = await store.claim("fast/1", ["story"])
        artifacts, followups = worker.results(job)
        await store.complete(job.id, "fast/1", artifacts, followups)
        assert len(await store.children(story_id)) == 2
        from storyloom.queue.job import JobError

        first = await store.claim("fast/1", ["story_page"])
        await store.fail(first.id, "fast/1", JobError("out of paint", "Test"))
        worker.paused.clear()
        thread = fake.threads_of(fake.text_channel)[0]
        book = await fake.wait_for_message(
            thread, lambda m: any(a.filename.endswith(".pdf") for a in m.attachments), timeout=10
        )
        lines = [m.content.split("\n")[0] for m in fake.messages_in(thread)]
        assert "out of paint" in lines[1] and lines[2] == "**Page 2**" and book.custom_ids()[0] == f"sl:c:{story_id}"


# ------------------------------------------------------------------------------------------------ exactly once
async def test_a_delivery_interrupted_after_posting_is_not_posted_again(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    """A crash between posting and recording: the next try finds the message (by nonce, else by footer)."""
    from storyloom.bot.delivery import part_nonce

    async with running_bot(bot_config(tmp_path), store, fake) as bot, fast_worker(store):
        bot.delivery.stop()  # deliver by hand below
        await fake.wait_for(lambda: bot._loops[0].done(), timeout=5)
        first = await fake.invoke_command("imagine", {"prompt": "one"}, channel=fake.no_threads_channel)
        second = await fake.invoke_command("imagine", {"prompt": "two"}, channel=fake.no_threads_channel)
        ids = [job_of(await h.wait_original()) for h in (first, second)]
        jobs = [await wait_job(store, i, lambda j: j.is_finished and j.channel_id is not None, timeout=5) for i in ids]
        channel = bot.get_partial_messageable(fake.no_threads_channel.id)
        posted = []
        for job, with_nonce in zip(jobs, (True, False)):
            intent = await store.begin_delivery(job.id)
            nonce = part_nonce(intent.nonce, 0) if with_nonce else "12345"  # the second: Discord lost the nonce
            posted.append(await channel.send(f"earlier try\n-# job {job.id}", nonce=nonce))
        for job, message in zip(jobs, posted):
            assert await bot.delivery.deliver(job)
            assert await store.delivered_messages(job.id) == (message.id,)
            found = [m.id for m in messages_of_job(fake, fake.no_threads_channel, job.id) if m.id != job.message_id]
            assert found == [message.id]
        assert not await bot.delivery.deliver(jobs[0])  # already delivered: nothing happens


async def test_an_upload_refused_as_too_large_is_shrunk_and_retried(fake: FakeDiscord, store, tmp_path: Path) -> None:
    from tests.support.images import noisy_png

    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store, grid=noisy_png(96, 96)) as worker:
        worker.paused.set()
        handle = await fake.invoke_command("imagine", {"prompt": "static"})  # the bot learns a 10 MB limit here
        await handle.wait_original()
        fake.set_attachment_size_limit(6000)  # ...but the guild's limit has since dropped
        [thread] = await fake.wait_for(lambda: fake.threads_of(fake.text_channel))
        worker.paused.clear()
        grid = await fake.wait_for_message(thread, lambda m: bool(m.attachments), timeout=10)
        statuses = [c.status for c in fake.calls.filter("POST", f"/channels/{thread.id}/messages")]
        assert statuses[0] == 413 and statuses[-1] == 200
        assert len(grid.attachments[0].data) <= 6000 and "re-encoded" in grid.content


async def test_the_token_never_reaches_the_log(fake: FakeDiscord, store, tmp_path: Path, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        handle = await fake.invoke_command("imagine", {"prompt": "a secret garden"})
        await handle.wait_original()
        [thread] = await fake.wait_for(lambda: fake.threads_of(fake.text_channel))
        await fake.wait_for_message(thread, lambda m: bool(m.attachments))
        broken = await fake.invoke_command("imagine", {"prompt": "x" * 3000}, validate=False)
        await broken.wait_ack()
    assert "discord.gateway" in caplog.text  # debug logging really was on
    assert fake.token not in caplog.text and fake.token_leaks() == []


# ------------------------------------------------------------------------------------------------ /settings
async def test_settings_are_saved_and_fill_what_a_command_leaves_out(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake):
        saved = await fake.invoke_command("settings", {"negative": "blurry", "ar": "2:3", "style": "Crayon"})
        [answer] = await saved.wait_followups(1)
        assert (
            answer.ephemeral and "blurry" in answer.content and "2:3" in answer.content and "crayon" in answer.content
        )
        assert await store.user_settings(fake.member.id) == {
            "negative_prompt": "blurry",
            "aspect_ratio": "2:3",
            "style": "crayon",
        }

        bad = await fake.invoke_command("settings", {"ar": "wide"})
        await bad.wait_ack()
        assert bad.original_response().ephemeral and "aspect ratio" in bad.original_response().content

        plain = await fake.invoke_command("imagine", {"prompt": "a boat"})
        explicit = await fake.invoke_command("imagine", {"prompt": "a ship", "negative": "fog", "ar": "16:9"})
        story = await fake.invoke_command("story", {"summary": "a boat trip with a duck", "pages": 1})
        ids = [job_of(await h.wait_original()) for h in (plain, explicit, story)]
        boat, ship, trip = [await store.get(i) for i in ids]
        assert (boat.params["negative_prompt"], boat.params["aspect_ratio"]) == ("blurry", "2:3")
        assert (ship.params["negative_prompt"], ship.params["aspect_ratio"]) == ("fog", "16:9")
        assert trip.params["style"] == "crayon"

        other = await fake.invoke_command("imagine", {"prompt": "a car"}, user=fake.owner)
        car = await store.get(job_of(await other.wait_original()))
        assert car.params["negative_prompt"] == "" and "aspect_ratio" not in car.params  # defaults are per user

        cleared = await fake.invoke_command("settings", {"ar": "none"})
        await cleared.wait_followups(1)
        assert await store.user_settings(fake.member.id) == {"negative_prompt": "blurry", "style": "crayon"}
        reset = await fake.invoke_command("settings", {"reset": True})
        assert "no defaults" in (await reset.wait_followups(1))[0].content
        assert await store.user_settings(fake.member.id) == {}


# ------------------------------------------------------------------------------------------------ status and tokens
async def test_progress_and_preview_show_on_the_status_message_then_go(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    import asyncio

    hold = asyncio.Event()
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store, hold=hold):
        handle = await fake.invoke_command("imagine", {"prompt": "a slow snail"})
        status = await handle.wait_original()
        handle.expire()  # like 15 minutes later: everything from now on must use the bot token
        shown = await fake.wait_for(lambda: (m := fake.message(status.id)).attachments and m, timeout=5)
        assert "drawing 50% (step 1/2)" in shown.content and shown.attachments[0].filename == "preview.jpg"
        hold.set()
        await fake.wait_for(lambda: fake.message(status.id).content.startswith("✅"), timeout=5)
        assert fake.message(status.id).attachments == []
        [thread] = fake.threads_of(fake.text_channel)
        assert any(m.attachments for m in fake.messages_in(thread))
    webhook = [c for c in fake.calls if c.path.startswith("/webhooks/")]
    assert [(c.method, c.ok) for c in webhook] == [("POST", True)]  # the one followup that filled "thinking…"


async def test_commands_sync_to_the_dev_guild_when_set(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path, dev_guild=fake.guild.id), store, fake):
        [put] = fake.calls.filter("PUT", f"/applications/{fake.application_id}/guilds/{fake.guild.id}/commands")
        assert {c["name"] for c in put.response} == {
            "imagine",
            "blend",
            "describe",
            "story",
            "queue",
            "cancel",
            "settings",
            "help",
            "status",
            "character",
        }
        assert fake.calls.filter("PUT", f"/applications/{fake.application_id}/commands") == []
        handle = await fake.invoke_command("help")
        assert (await handle.wait_ack()).type == 4


async def test_status_tells_managers_when_the_workers_supervisor_failed(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake) as bot:
        shown = await fake.invoke_command("status", user=fake.manager)
        [report] = await shown.wait_followups(1)
        assert "⚠️" not in report.content
        bot.worker_health = lambda: "the workers' supervisor failed at 12:00:00 (OSError: boom) and was restarted"
        shown = await fake.invoke_command("status", user=fake.manager)
        [report] = await shown.wait_followups(1)
        assert "⚠️ **Workers**: the workers' supervisor failed at 12:00:00 (OSError: boom) and was restarted" in (
            report.content
        )
