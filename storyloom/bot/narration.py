"""Read-aloud buttons: 🔊 under a page, 🎧 Audiobook and 🎬 Video under a book, and how their results are posted.

A press reads the story as it is now from the store (each page's newest drawing, its current text, the story's
language) and queues a ``narrate`` job owned by whoever pressed, in the presser's default voice. The worker
keys every page's recording by what is heard, so a changed page is read again and an unchanged one is reused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import discord

from storyloom.bot import texts
from storyloom.bot.actions import load_source
from storyloom.bot.errors import JobFailure, report
from storyloom.bot.stories import MAX_CHAIN
from storyloom.bot.submit import Request, submit
from storyloom.domain.narration import check_language, check_voice, language_name
from storyloom.errors import StoryloomError
from storyloom.queue.job import Artifact, ArtifactKind, Job, JobKind, JobStatus
from storyloom.queue.params import NarratedPage, NarrateParams, NarrationChoice
from storyloom.queue.stories import page_of

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot
    from storyloom.bot.results import Post

Output = Literal["pages", "audiobook", "video"]
ICONS = {"pages": "🔊", "audiobook": "🎧", "video": "🎬"}


async def press(interaction: discord.Interaction, source_id: int, output: Output) -> Job | None:
    """🔊 (``source_id`` is a page job) or 🎧/🎬 (a story job): acknowledge, then queue the reading."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    async with bot.in_flight():  # a shutdown lets an accepted press finish queueing
        try:
            source = await load_source(interaction, source_id)  # a job of this server, or the presser's own
            request = await _request(bot, interaction, source, output)
        except StoryloomError as exc:
            await report(interaction, exc, job_id=source_id)
            return None
        await interaction.response.defer(thinking=True)
        return await submit(bot, interaction, request)


async def _request(bot: StoryloomBot, interaction: discord.Interaction, source: Job, output: Output) -> Request:
    source_id = source.id
    story_id = source.parent_id if output == "pages" else source.id
    wanted = JobKind.STORY_PAGE if output == "pages" else JobKind.STORY
    if source.kind is not wanted or story_id is None:
        raise JobFailure("only story pages and books can be read aloud", source_id)
    plan = await bot.stories.plan(story_id)
    if plan is None:
        raise JobFailure("this story has no text to read (it was purged, or is still being written)", story_id)
    language = check_language(bot.config, plan.language)
    defaults = await bot.settings.get(interaction.user.id)
    choice = NarrationChoice(voice=check_voice(bot.config, defaults.voice or None), speed=defaults.pace)
    if output == "pages":
        number = (source.params.get("plan") or {}).get("number") or source.params.get("page", 0) + 1
        pages = [NarratedPage(number=number, text=str(source.params.get("text", "")), picture_job=source.id)]
        head = f"🔊 reading page {number} aloud"
    else:
        newest = await newest_pages(bot, story_id)
        pages = [
            NarratedPage(
                number=page.number,
                text=str(newest[index].params.get("text", page.text)) if index in newest else page.text,
                picture_job=newest[index].id if index in newest else None,
            )
            for index, page in enumerate(plan.pages)
        ]
        what = "an audiobook" if output == "audiobook" else "a narrated video"
        head = f"{ICONS[output]} making {what} of **{texts.quote(plan.title, 100)}**"
    if not any(page.text.strip() for page in pages):
        raise JobFailure("there is nothing to read aloud: the page has no text", source_id)
    params = NarrateParams(output=output, title=plan.title, language=language, pages=pages, narration=choice)
    return Request(JobKind.NARRATE, params, f"{head} ({choice.voice}, {language_name(language)})", parent_id=source.id)


async def newest_pages(bot: StoryloomBot, story_id: int) -> dict[int, Job]:
    """Page index → the newest successful drawing of that page, through earlier chapters (``continue_from``)."""
    found: dict[int, Job] = {}
    current: int | None = story_id
    for _ in range(MAX_CHAIN):
        if current is None:
            break
        for child in sorted(await bot.store.children(current), key=lambda job: job.id, reverse=True):
            page = page_of(child)
            if page is not None and page not in found and child.status is JobStatus.SUCCEEDED:
                found[page] = child
        story = await bot.store.get(current)
        current = story.params.get("continue_from")
    return found


async def narrate_posts(bot: StoryloomBot, job: Job, reply_to: int | None) -> list[Post]:
    """A finished ``narrate`` job: the recording(s) as attachments; one too large for the channel is re-encoded
    (a page) or replaced by a note saying so (an audiobook or a video)."""
    from storyloom.bot.results import Post

    files = [a for a in await bot.store.artifacts(job.id) if a.kind is ArtifactKind.FILE]
    output = str(job.params.get("output", "pages"))
    title = str(job.params.get("title", ""))
    posts = []
    for artifact in files:
        line = f"{ICONS.get(output, '🔊')} {_described(artifact, output, title)} — for <@{job.user_id}>"
        notes = [_seconds(artifact), str(artifact.metadata.get("voice", ""))]
        content = texts.fit(f"{line}\n{texts.job_footer(job.id, *notes)}")
        # A page's Ogg/Opus can be re-encoded at a lower bitrate to fit; an audiobook or a video is posted whole.
        shrinkable = artifact.name.endswith(".ogg")
        posts.append(Post(content, artifact.data, _filename(artifact, title), shrinkable=shrinkable, reply_to=reply_to))
    return posts


async def page_audio_posts(bot: StoryloomBot, page_job: Job) -> list[Post]:
    """What ``/story narrate:True`` adds under a page: its recording, or why the voices could not read it."""
    from storyloom.bot.results import Post

    posts = []
    for artifact in await bot.store.artifacts(page_job.id):
        if artifact.kind is ArtifactKind.FILE and artifact.mime.startswith("audio/"):
            number = artifact.metadata.get("page", "")
            content = texts.fit(f"🔊 **Page {number}** read aloud\n{texts.job_footer(page_job.id, _seconds(artifact))}")
            posts.append(Post(content, artifact.data, str(artifact.name)))
        elif artifact.kind is ArtifactKind.TEXT and artifact.name == "narration.txt":
            note = artifact.data.decode("utf-8", "replace")
            posts.append(Post(texts.fit(f"🔇 {note}\n{texts.job_footer(page_job.id)}")))
    return posts


def _described(artifact: Artifact, output: str, title: str) -> str:
    name = f"**{texts.quote(title, 100)}**" if title else "the story"
    if output == "audiobook":
        return f"{name} as an audiobook, a chapter per page"
    if output == "video":
        return f"{name} as a narrated video"
    return f"**Page {artifact.metadata.get('page', '')}** of {name} read aloud"


def _seconds(artifact: Artifact) -> str:
    seconds = artifact.metadata.get("seconds")
    if not isinstance(seconds, (int, float)):
        return ""
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d}"


def _filename(artifact: Artifact, title: str) -> str:
    from storyloom.bot.book import book_filename

    if artifact.name in ("audiobook.m4a", "book.mp4") and title:
        return book_filename(title).removesuffix(".pdf") + "." + artifact.name.rsplit(".", 1)[1]
    return artifact.name
