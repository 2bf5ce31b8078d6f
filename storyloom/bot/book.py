"""The whole book as a PDF, made by the bot from what the store holds once the last page is drawn.

Workers illustrate pages one job at a time, so no single job ever sees the finished book; the bot has the
plan (the story job's ``story.json``) and every page picture, and lays them out with the story engine's own
torch-free PDF writer, in a thread so the event loop stays free.

The 📕 Updated book button goes through ``Books``: a book is laid out once per version (which drawing each page
uses), one layout per story at a time, and the same version is not posted again within a couple of minutes, so
pressing the button over and over costs the bot nothing.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from storyloom.bot import texts
from storyloom.bot.errors import JobFailure
from storyloom.bot.stories import Stories
from storyloom.domain.story.plan import StoryPlan

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

PDF_NAME = "book.pdf"
BOOK_REPEAT_SECONDS = 120.0  # an unchanged book is not posted again within this time
BOOK_CACHE_SIZE = 16  # books kept laid out


async def book_pdf(stories: Stories, story_id: int) -> tuple[StoryPlan, bytes] | None:
    """(plan, PDF bytes) of story job ``story_id``, or None when it has no plan."""
    versions = await stories.versions(story_id)
    plan = await stories.plan(story_id, versions)
    if plan is None:
        return None
    images = await stories.page_images(story_id, versions)
    data = await asyncio.to_thread(_write, plan, images)
    return plan, data


def book_message(title: str, user_id: int, story_id: int, *, updated: bool = False) -> str:
    """The text that goes with a book's PDF."""
    what = "the whole book, with its redrawn and edited pages" if updated else "the whole book"
    return texts.fit(f"📕 **{texts.quote(title, 100)}** — {what}, for <@{user_id}>\n{texts.job_footer(story_id)}")


# What a book shows: its edited title (or "") and (page, job of the drawing it uses) in page order.
BookVersion = tuple[str, tuple[tuple[int, int], ...]]


@dataclass(frozen=True)
class ShelvedBook:
    version: BookVersion
    plan: StoryPlan
    pdf: bytes


class Books:
    """Book PDFs for the 📕 button: cached per story and version, built once at a time per story, and each
    version posted at most once per ``repeat_seconds``."""

    def __init__(
        self,
        stories: Stories,
        *,
        clock: Callable[[], float] = time.monotonic,
        repeat_seconds: float = BOOK_REPEAT_SECONDS,
        size: int = BOOK_CACHE_SIZE,
    ) -> None:
        self._stories = stories
        self._clock = clock
        self._repeat_seconds = repeat_seconds
        self._size = size
        self._shelf: OrderedDict[int, ShelvedBook] = OrderedDict()
        self._posted: OrderedDict[int, tuple[BookVersion, float]] = OrderedDict()
        self._building: dict[int, asyncio.Lock] = {}
        self.layouts = 0  # how many PDFs were laid out, for the logs and tests

    async def version(self, story_id: int) -> BookVersion:
        """Changes when a page is drawn again or edited, or the title is edited."""
        versions = await self._stories.versions(story_id)
        return versions.title or "", tuple(sorted((page, job.id) for page, job in versions.pages.items()))

    def claim_post(self, story_id: int, version: BookVersion) -> float | None:
        """Reserve posting this version now; or, when it was posted within ``repeat_seconds``, how long ago."""
        now = self._clock()
        posted = self._posted.get(story_id)
        if posted is not None and posted[0] == version and now - posted[1] < self._repeat_seconds:
            return now - posted[1]
        self._posted[story_id] = (version, now)
        self._posted.move_to_end(story_id)
        while len(self._posted) > self._size:
            self._posted.popitem(last=False)
        return None

    def release_post(self, story_id: int) -> None:
        """The post did not happen after all: the same version may be asked for again at once."""
        self._posted.pop(story_id, None)

    async def book(self, story_id: int, version: BookVersion) -> ShelvedBook | None:
        """The book at ``version``, laid out now unless it is on the shelf; None when the story has no plan."""
        lock = self._building.setdefault(story_id, asyncio.Lock())
        try:
            async with lock:
                shelved = self._shelf.get(story_id)
                if shelved is not None and shelved.version == version:
                    self._shelf.move_to_end(story_id)
                    return shelved
                made = await book_pdf(self._stories, story_id)
                if made is None:
                    return None
                self.layouts += 1
                shelved = self._shelf[story_id] = ShelvedBook(version, *made)
                while len(self._shelf) > self._size:
                    self._shelf.popitem(last=False)
                return shelved
        finally:
            if not lock.locked() and self._building.get(story_id) is lock:
                del self._building[story_id]


async def send_book(interaction: discord.Interaction, story_id: int) -> None:
    """Answer 📕 with the book as it is now (each page's newest drawing); unchanged books are not sent again."""
    from storyloom.bot.actions import load_source
    from storyloom.bot.buttons import book_buttons, frozen_view

    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    await load_source(interaction, story_id)
    version = await bot.books.version(story_id)
    ago = bot.books.claim_post(story_id, version)
    if ago is not None:
        raise JobFailure(
            f"this book has not changed since it was posted {round(ago)} s ago; scroll up for it", story_id
        )
    try:
        await interaction.response.defer(thinking=True)
        shelved = await bot.books.book(story_id, version)
        if shelved is None:
            raise JobFailure("this story has no book (it was purged, or is still being written)", story_id)
        filename = book_filename(shelved.plan.title)
        if len(shelved.pdf) > interaction.filesize_limit:
            raise JobFailure(f"{filename} is larger than this channel's upload limit", story_id)
        content = book_message(shelved.plan.title, interaction.user.id, story_id, updated=True)
        view = frozen_view(book_buttons(story_id))
        await interaction.followup.send(
            content, file=discord.File(io.BytesIO(shelved.pdf), filename), view=view or discord.utils.MISSING
        )
    except BaseException:
        bot.books.release_post(story_id)
        raise


def _write(plan: StoryPlan, images: dict[int, bytes]) -> bytes:
    from storyloom.domain.book.pdf import write_pdf

    with tempfile.TemporaryDirectory(prefix="storyloom-book-") as folder:
        directory = Path(folder)
        for index, page in enumerate(plan.pages):
            if index in images:
                (directory / page.image_name).write_bytes(images[index])
        target = directory / PDF_NAME
        write_pdf(plan, directory, target)
        return target.read_bytes()


def book_filename(title: str) -> str:
    """A safe file name from the title (``The Brave Cat`` → ``The-Brave-Cat.pdf``)."""
    words = "".join(c if c.isalnum() else " " for c in title).split()
    return ("-".join(words)[:60] or "book") + ".pdf"
