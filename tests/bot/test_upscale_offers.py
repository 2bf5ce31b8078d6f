"""Only upscales that can succeed are offered: Real-ESRGAN under a picture it takes, and a press of an older
button for a picture too large is refused before anything is queued."""

from __future__ import annotations

from pathlib import Path

from storyloom.bot import results
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import ArtifactKind, Job, JobKind, JobStatus, NewArtifact
from tests.support.bot import bot_config, running_bot
from tests.support.fakediscord import FakeDiscord
from tests.support.images import png


async def upscaled(store: AsyncJobStore, fake: FakeDiscord, side: int) -> Job:
    """A finished standard upscale whose picture is ``side``² pixels (as the worker records it)."""
    where = {"user_id": fake.member.id, "guild_id": fake.guild.id, "channel_id": fake.text_channel.id}
    source = await store.enqueue(JobKind.IMAGINE, {"prompt": "a boat"}, **where, enforce_caps=False)
    await store.claim("w", [JobKind.IMAGINE.value])
    picture = NewArtifact(
        ArtifactKind.IMAGE, 0, "image_1.png", "image/png", png(8, 8, (9, 9, 9)), {"width": 512, "height": 512}
    )
    await store.complete(source.id, "w", [picture])
    job = await store.enqueue(JobKind.UPSCALE, {"index": 0}, parent_id=source.id, **where, enforce_caps=False)
    await store.claim("w", [JobKind.UPSCALE.value])
    metadata = {"width": side, "height": side, "mode": "chain"}
    await store.complete(
        job.id, "w", [NewArtifact(ArtifactKind.IMAGE, 0, "up.png", "image/png", png(8, 8, (9, 9, 9)), metadata)]
    )
    return await store.get(job.id)


async def test_real_esrgan_is_offered_only_under_pictures_it_takes(fake: FakeDiscord, store, tmp_path: Path) -> None:
    async with running_bot(bot_config(tmp_path), store, fake) as bot:
        bot.delivery.stop()  # prepared by hand below
        large, small = await upscaled(store, fake, 4096), await upscaled(store, fake, 2048)
        [large_post] = (await results.prepare(bot, large)).posts
        [small_post] = (await results.prepare(bot, small)).posts
        offered = [item.custom_id for item in large_post.items]
        assert f"sl:vs:{large.id}:1" in offered and f"sl:x4:{large.id}:1" not in offered  # 4096² > 2048²
        assert f"sl:x4:{small.id}:1" in [item.custom_id for item in small_post.items]

        # A button posted before this rule (or forged) is refused at once, with the sizes that are allowed.
        jobs_before = len(await store.list_jobs(tuple(JobStatus)))
        custom_id = f"sl:x4:{large.id}:1"
        old = fake.state.create_message(fake.text_channel.id, fake.bot_user, {
            "content": "older result",
            "components": [{"type": 1, "components": [{"type": 2, "style": 2, "label": "4×", "custom_id": custom_id}]}],
        })  # fmt: skip
        click = await fake.click_button(old, custom_id)
        assert (await click.wait_ack()).type == 4
        reply = click.original_response()
        assert reply.ephemeral and "4096×4096 pixels" in reply.content and "32 to 2048 pixels" in reply.content
        assert len(await store.list_jobs(tuple(JobStatus))) == jobs_before
