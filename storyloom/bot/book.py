"""The whole book as a PDF, made by the bot from what the store holds once the last page is drawn.

Workers illustrate pages one job at a time, so no single job ever sees the finished book; the bot has the
plan (the story job's ``story.json``) and every page picture, and lays them out with the story engine's own
torch-free PDF writer, in a thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from storyloom.bot.stories import Stories
from storyloom.models.story_plan import StoryPlan

PDF_NAME = "book.pdf"


async def book_pdf(stories: Stories, story_id: int) -> tuple[StoryPlan, bytes] | None:
    """(plan, PDF bytes) of story job ``story_id``, or None when it has no plan."""
    plan = await stories.plan(story_id)
    if plan is None:
        return None
    images = await stories.page_images(story_id)
    data = await asyncio.to_thread(_write, plan, images)
    return plan, data


def _write(plan: StoryPlan, images: dict[int, bytes]) -> bytes:
    from storyloom.models.book_pdf import write_pdf

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
