"""A bot moved from its SQLite file to PostgreSQL (``storyloom queue migrate-store``) still answers the buttons
it posted before the move: their custom IDs carry job IDs, and the copy keeps every job's ID."""

from __future__ import annotations

from pathlib import Path

from storyloom.queue import JobKind, JobStatus, JobStore
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.postgres.from_sqlite import copy_sqlite_store
from tests.support.bot import FastWorker, bot_config, job_of, running_bot
from tests.support.fakediscord import FakeDiscord


async def test_an_old_button_works_on_the_copied_store(fake: FakeDiscord, tmp_path: Path, postgres_url: str) -> None:
    config = bot_config(tmp_path)
    old_file = tmp_path / "old.db"
    with JobStore.open(old_file, config.queue) as old:
        fox = old.enqueue(
            JobKind.IMAGINE, {"prompt": "a fox"}, user_id=fake.owner.id, guild_id=fake.text_channel.guild_id,
            channel_id=fake.text_channel.id,
        )  # fmt: skip
        claimed = old.claim("old-host/0", [JobKind.IMAGINE.value])
        assert claimed is not None
        artifacts, _ = FastWorker(store=None).results(claimed)  # type: ignore[arg-type]
        old.complete(fox.id, "old-host/0", artifacts)
        assert old.begin_delivery(fox.id) is not None
        old.record_delivery(fox.id, [1])  # posted before the move: the copy must not post it again
    copy_sqlite_store(old_file, postgres_url, config.queue)

    rows = [{"type": 1, "components": [
        {"type": 2, "style": 2, "label": label, "custom_id": custom_id}
        for label, custom_id in (("🔄", f"sl:r:{fox.id}"), ("V2", f"sl:v:{fox.id}:2"))
    ]}]  # fmt: skip
    posted_before = fake.state.create_message(
        fake.text_channel.id, fake.bot_user, {"content": "grid", "components": rows}
    )
    store = await AsyncJobStore.open(postgres_url, config.queue)
    try:
        async with running_bot(config, store, fake):
            reroll = await fake.click_button(posted_before, f"sl:r:{fox.id}", user=fake.member)
            assert (await reroll.wait_ack()).type == 5
            [status] = await reroll.wait_followups(1)
            vary = await fake.click_button(posted_before, f"sl:v:{fox.id}:2", user=fake.member)
            assert (await vary.wait_ack()).type == 5
            [vary_status] = await vary.wait_followups(1)
            new_jobs = [await store.get(job_of(status)), await store.get(job_of(vary_status))]
            assert [(j.kind, j.user_id) for j in new_jobs] == [
                (JobKind.IMAGINE, fake.member.id),
                (JobKind.VARY, fake.member.id),
            ]
            assert new_jobs[0].params["prompt"] == "a fox"  # re-rolled from the copied job's parameters
            assert (new_jobs[1].parent_id, new_jobs[1].params["index"]) == (fox.id, 1)  # V2: the second picture
            assert all(job.id > fox.id and job.status is JobStatus.QUEUED for job in new_jobs)
            assert all(job_of(m) != fox.id for m in fake.messages_in(fake.text_channel)[1:])  # not posted again
    finally:
        await store.close()
