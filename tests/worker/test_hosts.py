"""Three hosts that share nothing but a PostgreSQL URL: a bot host (``storyloom run --bot-only``) and two GPU hosts
(``storyloom worker``), each a real process with its own data directory and ``HOME``, against the fake Discord.

A character trained on host A is drawn in a story on host B after host A's whole data directory is gone; twenty
/imagine requests from five users all arrive exactly once although host A is killed with ``kill -9`` in the
middle of a job and every database connection is dropped (what a PostgreSQL restart does) while they run."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from storyloom.config import Config
from storyloom.models.runtime.tiny import TinyModelPaths, make_tiny_config
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import Job, JobKind, JobStatus
from storyloom.worker.identity import WorkerIdentity
from storyloom.worker.spawn import config_environment
from tests.support.bot import messages_of_job
from tests.support.fakediscord import FakeDiscord, Upload
from tests.support.images import noisy_png
from tests.support.postgres import drop_connections

WORK_TIMEOUT = 300.0  # two worker hosts and a bot on a shared 2-core machine
USERS = 5
REQUESTS = 20
TRAIN = {"name": "Biscuit", "token": "bhna", "class": "cat", "description": "a ginger cat"}


@dataclass
class Host:
    name: str
    root: Path
    config: Config
    process: asyncio.subprocess.Process | None = None

    @property
    def data_dir(self) -> Path:
        return self.config.paths.data_dir

    def environment(self, fake: FakeDiscord | None) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(("STORYLOOM_", "DISCORD_"))}
        env = {**inherited, **config_environment(self.config), "HOME": str(self.root / "home")}
        if fake is not None:  # only the bot host talks to Discord (and only it gets the token)
            env.update(fake.subprocess_env(self.root / "site", base=env))
        return env

    async def start(self, *args: str, fake: FakeDiscord | None = None) -> None:
        (self.root / "home").mkdir(parents=True, exist_ok=True)
        log = open(self.root / f"{self.name}.log", "ab")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "storyloom", *args, env=self.environment(fake),
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        log.close()

    def pids(self) -> set[int]:
        """This host's processes: the command and everything it started."""
        if self.process is None or self.process.returncode is not None:
            return set()
        try:
            parent = psutil.Process(self.process.pid)
            return {parent.pid, *(child.pid for child in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def runs(self, job: Job, pids: set[int]) -> bool:
        holder = WorkerIdentity.parse(job.worker_id or "")
        return holder is not None and holder.pid in pids

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(self.process.wait(), 60)
        except TimeoutError:
            os.killpg(self.process.pid, signal.SIGKILL)
            await self.process.wait()

    def log(self) -> str:
        path = self.root / f"{self.name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""


def host(tmp_path: Path, name: str, url: str, tiny_models: TinyModelPaths) -> Host:
    root = tmp_path / name
    config = make_tiny_config(
        root / "data", tiny_models,
        queue={"database": url, "lease_seconds": 4.0, "heartbeat_seconds": 0.5, "max_waiting_per_user": 20,
               "reconnect_seconds": 120.0},
        image={"steps": 2}, story={"max_new_tokens": 24, "pages": 2},
        training={"subject_epochs": 1, "num_class_images": 0, "sample_images": 1},
        bot={"delivery_poll_interval": 0.1, "progress_edit_interval": 0.5},
        worker={"restart_backoff_seconds": 0.2, "progress_interval": 0.2},
    )  # fmt: skip
    return Host(name, root, config)


@asynccontextmanager
async def hosts_running(hosts: list[Host]) -> AsyncIterator[None]:
    try:
        yield
    except BaseException:
        for one in hosts:
            print(f"--- {one.name}.log\n{one.log()}")
        raise
    finally:
        for one in hosts:
            await one.stop()


async def wait_for(check, what: str, timeout: float = WORK_TIMEOUT):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await check()):
        if loop.time() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        await asyncio.sleep(0.2)
    return value


async def test_three_hosts_share_only_the_database(postgres_url: str, tiny_models: TinyModelPaths, tmp_path: Path):
    bot_host, host_a, host_b = (host(tmp_path, name, postgres_url, tiny_models) for name in ("bot", "gpu-a", "gpu-b"))
    store = await AsyncJobStore.open(postgres_url)
    async with FakeDiscord() as fake, hosts_running([bot_host, host_a, host_b]):
        await bot_host.start("run", "--bot-only", fake=fake)
        await host_a.start("worker", "--devices", "cpu")
        await fake.wait_for(lambda: fake.command("imagine") and fake.connected, timeout=60, what="the bot to connect")

        # A character trained on host A, the only worker host running yet.
        photos = [Upload(f"cat_{i}.png", noisy_png(96, 96, seed=i)) for i in range(5)]
        await fake.invoke_command("character train", TRAIN, user=fake.manager, attachments=photos)

        async def trained() -> Job | None:
            jobs = await store.list_jobs((JobStatus.SUCCEEDED, JobStatus.FAILED))
            return next((j for j in jobs if j.kind is JobKind.TRAIN_SUBJECT), None)

        training = await wait_for(trained, "the training on host A")
        assert training.status is JobStatus.SUCCEEDED, training.error
        record = await store.character("Biscuit", guild_id=fake.guild.id)
        assert record.lora_digest is not None and await store.has_blob(record.lora_digest)
        assert not (bot_host.data_dir / "uploads").exists()  # the photos went through the store, not a disk

        # Host A goes away with everything on its disk; host B draws the character in a story.
        await host_a.stop()
        shutil.rmtree(host_a.root)
        await host_b.start("worker", "--devices", "cpu")
        await fake.invoke_command(
            "story", {"summary": "Biscuit sails to the moon", "character": "Biscuit"}, user=fake.member
        )

        async def story_pages_done() -> list[Job] | None:
            stories = [j for j in await store.list_jobs(tuple(JobStatus)) if j.kind is JobKind.STORY]
            if not stories or not stories[0].is_finished:
                return None
            pages = await store.children(stories[0].id)
            return pages if pages and all(p.is_finished for p in pages) else None

        pages = await wait_for(story_pages_done, "the story on host B")
        assert {p.status for p in pages} == {JobStatus.SUCCEEDED}, [p.error for p in pages]
        assert all([c["name"] for c in p.params["characters"]] == ["Biscuit"] for p in pages)
        assert not host_a.root.exists() and (host_b.data_dir / "cache" / "blobs").is_dir()  # B's own copy

        # Both worker hosts, twenty requests from five users, a kill -9 and a lost database in the middle.
        host_a = host(tmp_path, "gpu-a", postgres_url, tiny_models)
        await host_a.start("worker", "--devices", "cpu")
        users = [fake.member, *(fake.add_user(f"user{n}") for n in range(USERS - 1))]
        for n in range(REQUESTS):
            await fake.invoke_command("imagine", {"prompt": f"a paper boat number {n}"}, user=users[n % USERS])

        async def imagines() -> list[Job]:
            return [j for j in await store.list_jobs(tuple(JobStatus)) if j.kind is JobKind.IMAGINE]

        assert len(await wait_for(lambda: _count(imagines, REQUESTS), "twenty queued /imagine jobs", 60)) == REQUESTS

        async def running_on_a() -> Job | None:
            pids = host_a.pids()
            return next((j for j in await imagines() if j.status is JobStatus.RUNNING and host_a.runs(j, pids)), None)

        victim = await wait_for(running_on_a, "a job running on host A")
        await host_a.stop(signal.SIGKILL)  # the whole host: supervisor and worker
        assert await asyncio.to_thread(drop_connections, postgres_url) >= 1

        async def all_delivered() -> bool:
            jobs = await imagines()
            return all(j.is_finished for j in jobs) and all(
                [await store.delivered_messages(j.id) is not None for j in jobs]
            )

        await wait_for(all_delivered, "every /imagine result to be delivered")
        jobs = await imagines()
        assert {j.status for j in jobs} == {JobStatus.SUCCEEDED}, [(j.id, j.error) for j in jobs]
        assert (await store.get(victim.id)).runs >= 2  # handed back after host A died, finished elsewhere
        for job in jobs:
            channel = job.thread_id or job.channel_id
            grids = [m for m in messages_of_job(fake, channel, job.id) if m.attachments]
            assert len(grids) == 1, (job.id, len(grids))  # exactly once
    await store.close()


async def _count(jobs, wanted: int):
    found = await jobs()
    return found if len(found) >= wanted else None
