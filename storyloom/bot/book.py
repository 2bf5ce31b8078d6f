"""The whole book as a PDF, made by the bot from what the store holds once the last page is drawn.

Workers illustrate pages one job at a time, so no single job ever sees the finished book; the bot has the
plan (the story job's ``story.json``) and every page picture, and lays them out with the story engine's own
torch-free PDF writer, in a thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import io
import tempfile
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


async def book_pdf(stories: Stories, story_id: int) -> tuple[StoryPlan, bytes] | None:
    """(plan, PDF bytes) of story job ``story_id``, or None when it has no plan."""
    plan = await stories.plan(story_id)
    if plan is None:
        return None
    images = await stories.page_images(story_id)
    data = await asyncio.to_thread(_write, plan, images)
    return plan, data


def book_message(title: str, user_id: int, story_id: int, *, updated: bool = False) -> str:
    """The text that goes with a book's PDF."""
    what = "the whole book, with its redrawn pages" if updated else "the whole book"
    return texts.fit(f"📕 **{texts.quote(title, 100)}** — {what}, for <@{user_id}>\n{texts.job_footer(story_id)}")


async def send_book(interaction: discord.Interaction, story_id: int) -> None:
    """Answer 📕 with the book as it is now (each page's newest drawing), laid out afresh."""
    from storyloom.bot.buttons import book_buttons, frozen_view

    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    await interaction.response.defer(thinking=True)
    made = await book_pdf(bot.stories, story_id)
    if made is None:
        raise JobFailure("this story has no book (it was purged, or is still being written)", story_id)
    plan, data = made
    filename = book_filename(plan.title)
    if len(data) > interaction.filesize_limit:
        raise JobFailure(f"{filename} is larger than this channel's upload limit", story_id)
    content = book_message(plan.title, interaction.user.id, story_id, updated=True)
    view = frozen_view(book_buttons(story_id))
    await interaction.followup.send(
        content, file=discord.File(io.BytesIO(data), filename), view=view or discord.utils.MISSING
    )


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
