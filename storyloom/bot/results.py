"""What a finished job looks like in Discord: the messages to post, where, and the status message's last words.

Pure reading and formatting: everything comes from the store (parameters, artifacts, the story's plan), and
nothing is posted here; ``delivery`` does the posting, exactly once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import discord

from storyloom.bot import buttons, narration, texts
from storyloom.bot.book import book_filename, book_message, book_pdf
from storyloom.bot.regions import PAN_ICONS, fixed_page, growth_check, nothing_matched
from storyloom.domain.sizes import fits_upscale
from storyloom.errors import StoryloomError
from storyloom.queue.job import Artifact, ArtifactKind, Job, JobKind, JobStatus

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

MAX_PAGE_TEXT = 1700
MAX_CHAIN = 20


@dataclass(frozen=True)
class Post:
    content: str
    data: bytes | None = None
    filename: str = ""
    shrinkable: bool = True  # a picture may be re-encoded to fit the upload limit; a PDF cannot
    items: tuple[Any, ...] = ()  # DynamicItem buttons
    reply_to: int | None = None  # results posted in place answer the status message


@dataclass(frozen=True)
class Outcome:
    target: int  # the channel or thread to post in
    posts: list[Post] = field(default_factory=list)
    status: str | None = None  # new text of the status message (None: leave it to the progress loop)
    status_final: bool = True
    rename_thread: str | None = None  # a story's thread takes the story's title
    status_at: tuple[int, int] | None = None  # (channel, message) of the status message to update


async def prepare(bot: StoryloomBot, job: Job) -> Outcome:
    parent = await _job_or_none(bot, job.parent_id)
    outcome = await _prepare(bot, job, parent)
    return replace(outcome, status_at=status_message(job, parent))


def status_message(job: Job, parent: Job | None) -> tuple[int, int] | None:
    """Where a job's progress is shown: its own status message, or for a story's page the story's."""
    owner = parent if job.message_id is None and job.kind is JobKind.STORY_PAGE and parent is not None else job
    if owner.message_id is None or owner.channel_id is None:
        return None
    return owner.channel_id, owner.message_id


async def _prepare(bot: StoryloomBot, job: Job, parent: Job | None) -> Outcome:
    target = (
        job.thread_id or (parent.thread_id if parent and job.kind is JobKind.STORY_PAGE else None) or job.channel_id
    )
    assert target is not None  # only jobs with a channel are delivered
    in_place = target == job.channel_id
    reply_to = job.message_id if in_place and job.kind is not JobKind.STORY_PAGE else None
    where = "results in the thread" if not in_place else ""
    head = texts.headline(job)

    if job.kind is JobKind.STORY_PAGE and job.page_index is not None and parent is not None:
        return await _numbered_page(bot, job, parent, target)
    if job.status is not JobStatus.SUCCEEDED:
        posts = (
            []
            if job.status is JobStatus.CANCELED
            else [Post(texts.failure_post(head, job, job.user_id), reply_to=reply_to)]
        )
        return Outcome(target, posts, texts.finished_line(head, job))
    if job.kind is JobKind.DESCRIBE:
        return Outcome(target, [await _described(bot, job, reply_to)], texts.finished_line(head, job, where))
    if job.kind in (JobKind.IMAGINE, JobKind.VARY, JobKind.BLEND):
        return Outcome(target, [await _grid(bot, job, reply_to)], texts.finished_line(head, job, where))
    if job.kind is JobKind.UPSCALE:
        return Outcome(target, [await _upscaled(bot, job, reply_to)], texts.finished_line(head, job, where))
    if job.kind is JobKind.REGION:
        return Outcome(target, [await _region_preview(bot, job, reply_to)], texts.finished_line(head, job, where))
    if job.kind in (JobKind.INPAINT, JobKind.OUTPAINT):
        return Outcome(target, [await _reworked(bot, job, parent, reply_to)], texts.finished_line(head, job, where))
    if job.kind is JobKind.STORY:
        return await _story(bot, job, target, reply_to)
    if job.kind is JobKind.TRAIN_SUBJECT:
        return Outcome(target, [await _trained(bot, job, reply_to)], texts.finished_line(head, job, where))
    if job.kind is JobKind.NARRATE:
        posts = await narration.narrate_posts(bot, job, reply_to)
        return Outcome(target, posts, texts.finished_line(head, job, where))
    if job.kind is JobKind.STORY_PAGE:  # a redrawn page
        page = await _page_post(bot, job, redrawn=True)
        return Outcome(target, [page], texts.finished_line(head, job, where))
    return Outcome(
        target, [Post(f"✅ job {job.id} ({job.kind}) finished", reply_to=reply_to)], texts.finished_line(head, job)
    )


async def _grid(bot: StoryloomBot, job: Job, reply_to: int | None) -> Post:
    artifacts = await bot.store.artifacts(job.id)
    grid = _first(artifacts, ArtifactKind.GRID) or _first(artifacts, ArtifactKind.IMAGE)
    images = [a for a in artifacts if a.kind is ArtifactKind.IMAGE]
    prompt = await origin_prompt(bot, job)
    if job.kind is JobKind.VARY:
        what = f"{job.params.get('strength', 'subtle')} variations of image {job.params.get('index', 0) + 1} of job {job.parent_id}"
        line = f"🎲 **{texts.quote(prompt)}** — {what} for <@{job.user_id}>"
    elif job.kind is JobKind.BLEND:
        line = f"🌀 **{texts.quote(prompt)}** — for <@{job.user_id}>"
    else:
        line = f"🎨 **{texts.quote(prompt)}** — for <@{job.user_id}>"
    seeds = (grid.metadata.get("seeds") if grid else None) or [a.metadata.get("seed") for a in images]
    notes = [f"seeds {', '.join(str(s) for s in seeds if s is not None)}" if seeds else ""]
    if any(a.metadata.get("nsfw") for a in images):
        notes.append("some pictures were blurred by the safety checker")
    content = f"{line}\n{texts.job_footer(job.id, *notes)}"
    data = grid.data if grid else None
    return Post(
        texts.fit(content),
        data,
        f"storyloom_{job.id}_grid.png",
        items=tuple(buttons.grid_buttons(job.id, len(images) or 4)),
        reply_to=reply_to,
    )


async def _described(bot: StoryloomBot, job: Job, reply_to: int | None) -> Post:
    """/describe: the suggestions numbered as their buttons, under the described picture."""
    found = await bot.store.artifact(job.id, 0, ArtifactKind.TEXT)
    described = json.loads(found.data.decode("utf-8")) if found is not None else {}
    prompts = [str(p) for p in described.get("prompts", [])]
    given = await bot.store.job_inputs(job.id)
    lines = [f"🔎 described for <@{job.user_id}>"]
    for number, prompt in enumerate(prompts, start=1):
        lines.append(f"{texts.keycap(number)} {texts.quote(prompt, 350)}")
    content = texts.fit("\n".join([*lines, texts.job_footer(job.id, "press a number to draw that prompt")]))
    picture = given[0] if given else None
    return Post(
        content,
        picture.data if picture else None,
        f"storyloom_{job.id}_{picture.name}" if picture else "",
        items=tuple(buttons.describe_buttons(job.id, len(prompts))),
        reply_to=reply_to,
    )


async def _upscaled(bot: StoryloomBot, job: Job, reply_to: int | None) -> Post:
    picture = await bot.store.artifact(job.id, 0)
    prompt = await origin_prompt(bot, job)
    mode = job.params.get("mode") or (picture.metadata.get("mode") if picture else None)
    how = "4× Real-ESRGAN" if mode == "esrgan" else "upscaled"
    size = f"{picture.metadata.get('width')}×{picture.metadata.get('height')}" if picture else ""
    line = f"⬆️ **{texts.quote(prompt)}** — image {job.params.get('index', 0) + 1} of job {job.parent_id}, {how}, for <@{job.user_id}>"
    notes = [size, "blurred by the safety checker" if picture and picture.metadata.get("nsfw") else ""]
    esrgan = mode != "esrgan" and _fits_esrgan(picture)
    items = tuple(buttons.upscaled_buttons(job.id, esrgan=esrgan, grows=growth_check(bot.config, picture)))
    return Post(texts.fit(f"{line}\n{texts.job_footer(job.id, *notes)}"), picture.data if picture else None,
                f"storyloom_{job.id}_upscaled.png", items=items, reply_to=reply_to)  # fmt: skip


async def _region_preview(bot: StoryloomBot, job: Job, reply_to: int | None) -> Post:
    """The picture with the region found tinted, and ✅ Redraw / ✖ Cancel; when nothing matched, the words why
    and the ways to choose again (nothing is queued)."""
    preview = await bot.store.artifact(job.id, 0, ArtifactKind.IMAGE)
    params = job.params
    page = await fixed_page(bot, job)
    source = f"page {page + 1}" if page is not None else f"image {params.get('index', 0) + 1} of job {job.parent_id}"
    if preview is None or preview.metadata.get("empty") or job.parent_id is None:
        line = f"🖌️ {nothing_matched(job)} (in {source}, for <@{job.user_id}>)"
        retry = buttons.region_retry_buttons(job.parent_id, params.get("index", 0) + 1) if job.parent_id else []
        return Post(texts.fit(f"{line}\n{texts.job_footer(job.id)}"), preview.data if preview else None,
                    f"storyloom_{job.id}_region.png", items=tuple(retry), reply_to=reply_to)  # fmt: skip
    words = params.get("region")
    what = f"“{texts.quote(str(words), 80)}”" if words else f"squares {', '.join(map(str, params.get('cells') or []))}"
    share = preview.metadata.get("coverage")
    notes = [f"{round(100 * share)}% of the picture" if isinstance(share, (int, float)) else ""]
    line = (
        f"🖌️ {what} of {source} → **{texts.quote(str(params.get('prompt', '')))}**, for <@{job.user_id}>\n"
        "✅ Redraw draws the tinted part again; ✖ Cancel leaves the picture as it is"
    )
    return Post(texts.fit(f"{line}\n{texts.job_footer(job.id, *notes)}"), preview.data,
                f"storyloom_{job.id}_region.png", items=tuple(buttons.region_preview_buttons(job.id)),
                reply_to=reply_to)  # fmt: skip


async def _reworked(bot: StoryloomBot, job: Job, parent: Job | None, reply_to: int | None) -> Post:
    """A redrawn region or a grown picture (``parent``: the region job, or the grown picture's job): one picture
    with the buttons of an upscaled one; a fixed story page as the page's new version, with ✅ Use in the book."""
    from storyloom.bot.remix import source_prompts
    from storyloom.domain.regions import describe_growth

    picture = await bot.store.artifact(job.id, 0)
    if job.kind is JobKind.INPAINT and job.params.get("page") is not None:
        return await _fixed_page(bot, job, parent, picture, reply_to)
    prompt = (await source_prompts(bot, job)).prompt or await origin_prompt(bot, job)
    if job.kind is JobKind.INPAINT:
        region = parent
        index = region.params.get("index", 0) if region else 0
        what = f"part of image {index + 1} of job {region.parent_id if region else '?'} redrawn"
        icon = "🖌️"
    else:
        zoom, pan = job.params.get("zoom"), job.params.get("pan")
        what = f"{describe_growth(zoom=zoom, pan=pan)} of image {job.params.get('index', 0) + 1} of job {job.parent_id}"
        icon = PAN_ICONS.get(pan or "", "🔍")
    line = f"{icon} **{texts.quote(prompt)}** — {what}, for <@{job.user_id}>"
    size = f"{picture.metadata.get('width')}×{picture.metadata.get('height')}" if picture else ""
    seed = picture.metadata.get("seed") if picture else None
    scaled_from = picture.metadata.get("scaled_from") if picture else None
    notes = [
        size,
        f"grown from a copy scaled down from {scaled_from[0]}×{scaled_from[1]}" if scaled_from else "",
        f"seed {seed}" if seed is not None else "",
        "blurred by the safety checker" if picture and picture.metadata.get("nsfw") else "",
    ]
    items = tuple(
        buttons.upscaled_buttons(job.id, esrgan=_fits_esrgan(picture), grows=growth_check(bot.config, picture))
    )
    return Post(texts.fit(f"{line}\n{texts.job_footer(job.id, *notes)}"), picture.data if picture else None,
                f"storyloom_{job.id}_{job.kind}.png", items=items, reply_to=reply_to)  # fmt: skip


async def _fixed_page(
    bot: StoryloomBot, job: Job, region: Job | None, picture: Artifact | None, reply_to: int | None
) -> Post:
    """A story page with part of its picture redrawn (``region``: the region job it redrew): posted as the page's
    new version (its text again)."""
    origin = await bot.stories.page_origin(job)
    page = job.params.get("page", 0)
    number = ((origin.params.get("plan") or {}).get("number") if origin else None) or page + 1
    text = discord.utils.escape_mentions(texts.shorten(origin.params.get("text", ""), MAX_PAGE_TEXT)) if origin else ""
    change = ""
    if region is not None:
        words = region.params.get("region")
        where = f"“{texts.quote(str(words), 60)}”" if words else "the squares picked"
        change = f": {where} → *{texts.quote(str(job.params.get('prompt') or region.params.get('prompt', '')), 120)}*"
    notes = ["blurred by the safety checker" if picture and picture.metadata.get("nsfw") else ""]
    content = texts.fit(
        f"**Page {number}** (fixed{change}) for <@{job.user_id}>\n{text}\n"
        f"press ✅ Use in the book to put this picture in the book\n{texts.job_footer(job.id, *notes)}"
    )
    return Post(content, picture.data if picture else None, f"page_{number:03d}_fixed.png",
                items=tuple(buttons.fixed_page_buttons(job.id)), reply_to=reply_to)  # fmt: skip


def _fits_esrgan(picture: Artifact | None) -> bool:
    """Real-ESRGAN is offered only for a picture it takes (a standard upscale is usually already too large)."""
    if picture is None:
        return False
    width, height = picture.metadata.get("width"), picture.metadata.get("height")
    return isinstance(width, int) and isinstance(height, int) and fits_upscale(width, height, "esrgan")


async def _trained(bot: StoryloomBot, job: Job, reply_to: int | None) -> Post:
    """A trained character: its sample grid, and how to use it."""
    artifacts = await bot.store.artifacts(job.id)
    grid = _first(artifacts, ArtifactKind.GRID) or _first(artifacts, ArtifactKind.IMAGE)
    summary = _training_summary(_first(artifacts, ArtifactKind.TEXT))
    name = str(summary.get("character") or job.params.get("name", ""))
    token = summary.get("token") or f"{job.params.get('identifier', '')} {job.params.get('class_name', '')}"
    line = f"🧸 **{texts.quote(name, 40)}** (`{token}`) is trained, for <@{job.user_id}>"
    usage = f"use it with `character:{name}` on /imagine or /story"
    steps = summary.get("steps")
    notes = ["sample pictures" if grid else "", f"{steps} steps" if steps else ""]
    content = texts.fit(f"{line}\n{usage}\n{texts.job_footer(job.id, *notes)}")
    return Post(content, grid.data if grid else None, f"storyloom_{job.id}_samples.png", reply_to=reply_to)


def _training_summary(document: Artifact | None) -> dict[str, Any]:
    """``training.json`` of a training job (empty when missing or unreadable)."""
    if document is None or not document.data:
        return {}
    try:
        loaded = json.loads(document.data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


async def _story(bot: StoryloomBot, job: Job, target: int, reply_to: int | None) -> Outcome:
    summary = await bot.stories.summary(job.id)
    title = summary.title if summary else "A story"
    pages = summary.pages if summary else 0
    if job.params.get("continue_from"):
        line = f"📖 **{texts.quote(title, 100)}** — a new chapter: *{texts.quote(job.params.get('summary', ''))}*"
    else:
        line = f"📖 **{texts.quote(title, 100)}**\n*{texts.quote(job.params.get('summary', ''), 600)}*"
    card = await bot.store.artifact(job.id, 0, ArtifactKind.GRID)  # the cast card (a new story's)
    who = _cast_lines(card)
    content = texts.fit(
        f"{line}\n{who}written for <@{job.user_id}>; {_pages(pages)} follow one by one\n{texts.job_footer(job.id)}"
    )
    status = texts.fit(f"📖 **{texts.quote(title, 100)}** — written; drawing the pages\n{texts.job_footer(job.id)}")
    rename = texts.thread_name(title) if job.thread_id else None
    opening = Post(
        content,
        card.data if card else None,
        f"storyloom_{job.id}_cast.png" if card else "",
        items=(buttons.EditTitleButton(job.id),),
        reply_to=reply_to,
    )
    return Outcome(target, [opening], status, status_final=False, rename_thread=rename)


def _cast_lines(card: Artifact | None) -> str:
    """Who is who on the cast card, a line per character (empty without a card)."""
    cast = card.metadata.get("cast") if card else None
    if not isinstance(cast, list) or not cast:
        return ""
    lines = [
        f"**{texts.quote(str(member.get('name', '')), 40)}** — {texts.quote(str(member.get('description', '')), 160)}"
        for member in cast
        if isinstance(member, dict)
    ]
    return "🎭 Who is who:\n" + "\n".join(lines) + "\n"


async def _numbered_page(bot: StoryloomBot, job: Job, story: Job, target: int) -> Outcome:
    posts: list[Post] = []
    if job.status is JobStatus.SUCCEEDED:
        posts.append(await _page_post(bot, job))
        posts += await narration.page_audio_posts(bot, job)  # /story narrate:True
    elif job.status is JobStatus.FAILED:
        number = job.params.get("page", 0) + 1
        posts.append(Post(texts.failure_post(f"page {number}", job, job.user_id)))
    numbered = [c.page_index for c in await bot.store.children(story.id) if c.page_index is not None]
    if numbered and job.page_index != max(numbered):
        return Outcome(target, posts, None)
    made = await book_pdf(bot.stories, story.id)
    title = made[0].title if made else "the story"
    if made is not None:
        content = book_message(title, job.user_id, story.id)
        posts.append(
            Post(content, made[1], book_filename(title), shrinkable=False, items=tuple(buttons.book_buttons(story.id)))
        )
    where = "the pages and the book are in the thread" if story.thread_id else "the pages and the book are below"
    status = texts.fit(f"✅ 📖 **{texts.quote(title, 100)}** — done; {where}\n{texts.job_footer(story.id)}")
    return Outcome(target, posts, status)


async def _page_post(bot: StoryloomBot, job: Job, *, redrawn: bool = False) -> Post:
    picture = await bot.store.artifact(job.id, 0)
    number = (job.params.get("plan") or {}).get("number") or job.params.get("page", 0) + 1
    text = discord.utils.escape_mentions(texts.shorten(job.params.get("text", ""), MAX_PAGE_TEXT))
    heading = f"**Page {number}**" + (
        (" (edited)" if await _words_changed(bot, job) else " (redrawn)") if redrawn else ""
    )
    notes = ["blurred by the safety checker" if picture and picture.metadata.get("nsfw") else ""]
    content = texts.fit(f"{heading}\n{text}\n{texts.job_footer(job.id, *notes)}")
    items = buttons.page_buttons(job.id, story_id=job.parent_id if redrawn else None)
    return Post(content, picture.data if picture else None, f"page_{number:03d}.png", items=tuple(items))


async def _words_changed(bot: StoryloomBot, job: Job) -> bool:
    """Whether a redrawn page has other words than the page the story first had (✏️ Edit)."""
    if job.parent_id is None:
        return False
    page = job.params.get("page")
    first = next((c for c in await bot.store.children(job.parent_id) if c.page_index == page), None)
    return first is not None and first.params.get("text") != job.params.get("text")


async def origin_prompt(bot: StoryloomBot, job: Job) -> str:
    """The prompt a picture came from, following vary/upscale back to the imagine (or page) job."""
    current = job
    for _ in range(MAX_CHAIN):
        if current.kind is JobKind.IMAGINE:
            return str(current.params.get("prompt", ""))
        if current.kind is JobKind.BLEND:
            return str(current.params.get("prompt") or "a blend of your pictures")
        if current.kind is JobKind.STORY_PAGE:
            return f"page {current.params.get('page', 0) + 1} of story job {current.parent_id}"
        parent = await _job_or_none(bot, current.parent_id)
        if parent is None:
            break
        current = parent
    return f"job {job.id}"


async def _job_or_none(bot: StoryloomBot, job_id: int | None) -> Job | None:
    """A related job, or None when there is none or it was purged."""
    if job_id is None:
        return None
    try:
        return await bot.store.get(job_id)
    except StoryloomError:
        return None


def _pages(count: int) -> str:
    return "1 page" if count == 1 else f"{count} pages" if count else "the pages"


def _first(artifacts: list[Artifact], kind: ArtifactKind) -> Artifact | None:
    return next((a for a in artifacts if a.kind is kind), None)
