"""Live status messages: queue position, then progress and a preview, edited in place.

``StatusBoard`` owns every edit of a status message, so the rate limit holds whoever asks: at most one edit
per ``bot.progress_edit_interval`` per message (a final edit waits for its turn instead of being dropped), and
once the final text is shown nothing overwrites it. A status message someone deleted is simply no longer
edited; the results are posted as new messages anyway. ``ProgressLoop`` reads the store and asks the board.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import discord

from storyloom.bot import texts
from storyloom.bot.loops import PeriodicLoop
from storyloom.queue.job import Job, JobKind, JobStatus

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

logger = logging.getLogger(__name__)

PREVIEW_NAME = "preview.jpg"
MAX_TRACKED = 2000


@dataclass
class _Status:
    channel_id: int
    last_edit: float = float("-inf")
    content: str = ""
    preview: bytes | None = None  # digest of the preview shown
    final: bool = False
    dead: bool = False
    note: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class StatusBoard:
    def __init__(self, bot: StoryloomBot, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._bot = bot
        self.interval = interval
        self._clock = clock
        self._states: OrderedDict[int, _Status] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()

    def _state(self, channel_id: int, message_id: int) -> _Status:
        state = self._states.get(message_id)
        if state is None:
            state = self._states[message_id] = _Status(channel_id)
            while len(self._states) > MAX_TRACKED:
                self._states.popitem(last=False)
        return state

    def created(self, channel_id: int, message_id: int, content: str, note: str = "") -> None:
        """A status message was just posted (its creation counts as an edit for the rate limit)."""
        state = self._state(channel_id, message_id)
        state.last_edit, state.content, state.note = self._clock(), content, note

    def due(self, message_id: int) -> bool:
        """Whether a progress edit of this message would be allowed now."""
        state = self._states.get(message_id)
        if state is None:
            return True
        return not (state.dead or state.final) and self._clock() - state.last_edit >= self.interval

    async def progress(self, channel_id: int, message_id: int, content: str, preview: bytes | None = None) -> bool:
        """Show progress if the rate limit allows and something changed; returns whether it edited."""
        state = self._state(channel_id, message_id)
        if state.lock.locked() or not self.due(message_id):
            return False
        async with state.lock:
            return await self._edit(state, message_id, content, preview, final=False)

    def finish(self, channel_id: int, message_id: int, content: str) -> None:
        """Show the final text once the message's turn comes (in the background; delivery never waits)."""
        task = asyncio.get_running_loop().create_task(self._finish(channel_id, message_id, content))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _finish(self, channel_id: int, message_id: int, content: str) -> None:
        state = self._state(channel_id, message_id)
        async with state.lock:
            if state.dead or state.final:
                return
            wait = state.last_edit + self.interval - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._edit(state, message_id, content, None, final=True)

    async def _edit(self, state: _Status, message_id: int, content: str, preview: bytes | None, *, final: bool) -> bool:
        if state.dead or state.final:
            return False
        if state.note and state.note not in content:
            content = texts.fit(f"{content}\n-# {state.note}")  # why results are here, kept on every edit
        digest = hashlib.sha1(preview).digest() if preview else None
        if not final and content == state.content and digest == state.preview:
            return False
        kwargs: dict = {"content": content}
        if digest != state.preview:
            kwargs["attachments"] = [discord.File(io.BytesIO(preview), PREVIEW_NAME)] if preview else []
        message = self._bot.get_partial_messageable(state.channel_id).get_partial_message(message_id)
        try:
            await message.edit(**kwargs)
        except (discord.NotFound, discord.Forbidden):
            state.dead = True  # deleted, or we lost access: results still arrive as new messages
            return False
        except discord.HTTPException as exc:
            logger.info("could not update status message %s (%s)", message_id, exc.status)
            return False
        state.last_edit, state.content, state.final = self._clock(), content, final
        if "attachments" in kwargs:
            state.preview = digest
        return True

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class ProgressLoop(PeriodicLoop):
    """Every ``poll`` seconds: read active jobs that have a status message and ask the board to show them."""

    skipped = "progress update skipped"
    failed = "progress update failed"

    def __init__(self, bot: StoryloomBot, poll: float) -> None:
        super().__init__(poll)
        self._bot = bot

    async def run_once(self) -> None:
        await self.tick()

    async def tick(self) -> None:
        store, board = self._bot.store, self._bot.board
        active = await store.list_jobs((JobStatus.QUEUED, JobStatus.RUNNING), limit=500)
        shown: dict[tuple[int, int], Job] = {}
        for job in active:
            where = await self._status_message(job)
            if where is None or not board.due(where[1]):
                continue
            current = shown.get(where)
            if current is None or _more_telling(job, current):
                shown[where] = job
        if not shown:
            return
        positions = await store.positions([job.id for job in shown.values()])
        for (channel_id, message_id), job in shown.items():
            content = await self._content(job, positions.get(job.id))
            preview = await store.preview(job.id) if job.status is JobStatus.RUNNING and job.has_preview else None
            await board.progress(channel_id, message_id, content, preview)

    async def _status_message(self, job: Job) -> tuple[int, int] | None:
        """A job's own status message; a story's pages (which have none) show on the story's."""
        if job.message_id is not None and job.channel_id is not None:
            return job.channel_id, job.message_id
        if job.kind is JobKind.STORY_PAGE and job.parent_id is not None:
            return await self._bot.stories.status_message(job.parent_id)
        return None

    async def _content(self, job: Job, position) -> str:
        if job.kind is JobKind.STORY_PAGE and job.parent_id is not None:
            story = await self._bot.stories.summary(job.parent_id)
            if story is not None:
                return texts.page_status(story.title, job, story.pages, position)
        return texts.status_line(texts.headline(job), job, position)


def _more_telling(job: Job, other: Job) -> bool:
    """Of several jobs sharing a status message (a story's pages), show the running one, else the next."""
    if (job.status is JobStatus.RUNNING) != (other.status is JobStatus.RUNNING):
        return job.status is JobStatus.RUNNING
    return (job.page_index if job.page_index is not None else job.id) < (
        other.page_index if other.page_index is not None else other.id
    )
