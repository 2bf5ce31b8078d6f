"""Shared pieces of the bot tests: a bot-only config, running the bot against the fake Discord, a real worker
under the supervisor, a fast in-process stand-in worker, and helpers to read what the bot posted."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from storyloom.bot.app import StoryloomBot, make_bot
from storyloom.config import Config, load_config
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import ArtifactKind, Job, JobKind, NewArtifact, NewJob
from tests.support.fakediscord import FakeDiscord, FakeMessage
from tests.support.images import png


def bot_config(tmp_path: Path, **bot) -> Config:
    """A config for bot-only tests: nothing here loads a model."""
    return load_config(
        None, environ={}, overrides={
            "paths": {"data_dir": str(tmp_path / "data")},
            "bot": {"progress_edit_interval": 0.5, "delivery_poll_interval": 0.05, **bot},
            "queue": {"max_waiting_per_user": 5, "disk_reserve_mb": 0},
        },
    )  # fmt: skip


FOOTER = re.compile(r"^-# .*\bjob (\d+)$", re.MULTILINE)


def job_of(message: FakeMessage) -> int | None:
    """The job a result message belongs to (its ``-# … job N`` footer)."""
    found = FOOTER.findall(message.content)
    return int(found[-1]) if found else None


@dataclass
class RunningBot:
    bot: StoryloomBot
    runner: asyncio.Task

    async def stop(self) -> None:
        await self.bot.close()
        await asyncio.wait_for(asyncio.gather(self.runner, return_exceptions=True), 10)


async def start_bot(config: Config, store: AsyncJobStore, fake: FakeDiscord) -> RunningBot:
    """A new bot (as a new process would be) on ``store``, connected and ready."""
    bot = make_bot(config, store, guild_ready_timeout=0.05)
    runner = asyncio.create_task(bot.start(fake.token))
    ready = asyncio.create_task(bot.wait_until_ready())
    done, _ = await asyncio.wait({runner, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
    if runner in done:
        runner.result()
    if ready not in done:
        ready.cancel()
        await RunningBot(bot, runner).stop()
        raise AssertionError("the bot did not become ready within 20 s")
    return RunningBot(bot, runner)


@asynccontextmanager
async def running_bot(config: Config, store: AsyncJobStore, fake: FakeDiscord) -> AsyncIterator[StoryloomBot]:
    running = await start_bot(config, store, fake)
    try:
        yield running.bot
    finally:
        await running.stop()


class LogCollector(logging.Handler):
    """Every record from every logger, formatted with tracebacks, to search for secrets."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@asynccontextmanager
async def collecting_logs() -> AsyncIterator[LogCollector]:
    collector = LogCollector()
    root = logging.getLogger()
    loggers = [logging.getLogger(name) for name in ("storyloom", "discord")]
    old = [(logger, logger.level) for logger in [root, *loggers]]
    root.addHandler(collector)
    root.setLevel(logging.INFO)
    for logger in loggers:  # everything the bot and discord.py say, down to debug
        logger.setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        root.removeHandler(collector)
        for logger, level in old:
            logger.setLevel(level)


@dataclass
class SupervisedWorker:
    """``storyloom worker`` as ``storyloom run`` starts it: a supervisor (in a thread) keeping one worker alive."""

    config: Config
    supervisor: object = None
    thread: threading.Thread | None = None

    def start(self) -> SupervisedWorker:
        from storyloom.worker.supervisor import Supervisor

        self.supervisor = Supervisor(self.config, ["cpu"], shutdown_timeout=10)
        self.thread = threading.Thread(target=self.supervisor.run, name="test-supervisor", daemon=True)
        self.thread.start()
        return self

    @property
    def pid(self) -> int | None:
        process = self.supervisor.slots[0].process
        return None if process is None else process.pid

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop()
        if self.thread is not None:
            self.thread.join(30)


# ------------------------------------------------------------------------------------------------ fast worker
def story_plan_json(title: str, pages: int, summary: str = "a cat and a ball") -> str:
    plan = {
        "title": title, "summary": summary, "style": "watercolor", "base_seed": 1,
        "chapters": [{"number": 1, "title": title, "summary": summary, "text": "..."}],
        "pages": [
            {"number": i + 1, "chapter": 1, "text": f"Text of page {i + 1}.", "scene": "a garden",
             "prompt": f"page {i + 1}", "negative_prompt": "", "seed": i}
            for i in range(pages)
        ],
    }  # fmt: skip
    return json.dumps(plan)


@dataclass
class FastWorker:
    """Completes jobs in the store at once with small made-up results: for tests of the bot's side only.

    ``hold`` keeps jobs of the listed kinds queued until released; ``title``/``pages`` shape stories."""

    store: AsyncJobStore
    image: bytes = field(default_factory=lambda: png(64, 64, (200, 30, 90)))  # big enough to upscale
    grid: bytes = field(default_factory=lambda: png(16, 16, (30, 200, 90)))
    title: str = "The Cat and the Red Ball"
    fail_kinds: set[JobKind] = field(default_factory=set)
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    hold: asyncio.Event | None = None  # when set: each job waits for it after reporting progress
    done: list[int] = field(default_factory=list)
    unmatched: frozenset[str] = frozenset({"a unicorn"})  # region words a region job finds nothing for

    async def run(self) -> None:
        await self.store.register_worker("fast/1", host="fast", pid=1, device="cpu")
        while True:
            try:
                await self._step()
            except Exception:
                logging.getLogger(__name__).exception("the fast worker failed")
                raise

    async def _step(self) -> None:
        if self.paused.is_set():
            await asyncio.sleep(0.02)
            return
        job = await self.store.claim("fast/1", [k.value for k in JobKind])
        if job is None:
            await asyncio.sleep(0.02)
            return
        await self.store.report_progress(job.id, "fast/1", 1, 2, stage="drawing", preview=png(4, 4, (1, 2, 3)))
        if self.hold is not None:
            await self.hold.wait()
        if job.kind in self.fail_kinds:
            from storyloom.queue.job import JobError

            await self.store.fail(job.id, "fast/1", JobError("the fast worker refuses this", "Test"))
        else:
            artifacts, followups = self.results(job)
            await self.store.complete(job.id, "fast/1", artifacts, followups)
        self.done.append(job.id)

    def results(self, job: Job) -> tuple[list[NewArtifact], list[NewJob]]:
        with Image.open(io.BytesIO(self.image)) as picture:
            width, height = picture.size

        def image(i):
            return NewArtifact(
                ArtifactKind.IMAGE,
                i,
                f"image_{i + 1}.png",
                "image/png",
                self.image,
                {"seed": 100 + i, "width": width, "height": height},
            )

        if job.kind is JobKind.DESCRIBE:
            described = {"caption": "a cat", "prompts": [f"a cat, suggestion {n}" for n in range(1, 5)]}
            return [
                NewArtifact(ArtifactKind.TEXT, 0, "describe.json", "application/json", json.dumps(described).encode())
            ], []
        if job.kind in (JobKind.IMAGINE, JobKind.VARY, JobKind.BLEND):
            grid = NewArtifact(
                ArtifactKind.GRID, 0, "grid.png", "image/png", self.grid, {"seeds": [100, 101, 102, 103]}
            )
            return [grid, *(image(i) for i in range(4))], []
        if job.kind is JobKind.UPSCALE:
            return [image(0)], []
        if job.kind is JobKind.STORY:
            pages = job.params.get("pages") or 2
            plan = NewArtifact(
                ArtifactKind.TEXT,
                0,
                "story.json",
                "application/json",
                story_plan_json(self.title, pages).encode(),
                {"title": self.title, "pages": pages},
            )
            followups = [
                NewJob(
                    JobKind.STORY_PAGE,
                    {"page": i, "text": f"Text of page {i + 1}.", "prompt": f"page {i + 1}", "plan": {"number": i + 1}},
                    page_index=i,
                )
                for i in range(pages)
            ]
            return [plan], followups
        if job.kind is JobKind.STORY_PAGE:
            return [image(0)], []
        if job.kind is JobKind.REGION:
            empty = job.params.get("region") in self.unmatched
            metadata = {"coverage": 0.0 if empty else 0.25, "empty": empty, "width": width, "height": height}
            preview = NewArtifact(ArtifactKind.IMAGE, 0, "preview.png", "image/png", self.grid, metadata)
            mask = NewArtifact(ArtifactKind.FILE, 0, "mask.png", "image/png", png(width, height, (0, 0, 0)))
            return [preview, mask], []
        if job.kind in (JobKind.INPAINT, JobKind.OUTPAINT):
            return [image(0)], []
        return [], []


@asynccontextmanager
async def fast_worker(store: AsyncJobStore, **options) -> AsyncIterator[FastWorker]:
    worker = FastWorker(store, **options)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def messages_of_job(fake: FakeDiscord, channel, job_id: int) -> list[FakeMessage]:
    return [m for m in fake.messages_in(channel) if job_of(m) == job_id]


async def open_store(config: Config) -> AsyncJobStore:
    Path(config.paths.data_dir).mkdir(parents=True, exist_ok=True)
    return await AsyncJobStore.from_config(config)
