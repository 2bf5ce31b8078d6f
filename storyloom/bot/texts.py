"""The words the bot shows: status lines, captions and short descriptions of jobs.

Kept apart from the code that posts them so every message reads the same way and stays under Discord's
2,000-character limit. User text is escaped so a prompt cannot turn into markdown or a mass mention.
"""

from __future__ import annotations

import discord

from storyloom.domain.regions import describe_growth
from storyloom.queue.job import Job, JobKind, JobStatus, QueuePosition

MAX_CONTENT = 2000
MAX_PROMPT_SHOWN = 300
MAX_THREAD_NAME = 100


def shorten(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def quote(text: str, limit: int = MAX_PROMPT_SHOWN) -> str:
    """User text, one line, shortened, markdown and mentions neutralised."""
    return discord.utils.escape_mentions(discord.utils.escape_markdown(shorten(text, limit)))


def thread_name(text: str) -> str:
    return shorten(text, MAX_THREAD_NAME) or "storyloom"


def fit(content: str) -> str:
    return content if len(content) <= MAX_CONTENT else content[: MAX_CONTENT - 1] + "…"


def job_footer(job_id: int, *extra: str) -> str:
    return "-# " + " · ".join([*(e for e in extra if e), f"job {job_id}"])


def duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    if seconds < 3600:
        return f"about {round(seconds / 60)} min"
    return f"about {seconds / 3600:.1f} h"


def keycap(number: int) -> str:
    """The keycap emoji of a digit: 1️⃣ … 9️⃣."""
    return f"{number}\N{VARIATION SELECTOR-16}\N{COMBINING ENCLOSING KEYCAP}"


def headline(job: Job) -> str:
    """What a job is, in a few words, for status messages and /queue."""
    params = job.params
    if job.kind is JobKind.IMAGINE:
        return f"🎨 **{quote(params.get('prompt', ''), 120)}**"
    if job.kind is JobKind.VARY:
        return f"🎲 {params.get('strength', 'subtle')} variations of image {params.get('index', 0) + 1} of job {job.parent_id}"
    if job.kind is JobKind.UPSCALE:
        how = "4× Real-ESRGAN" if params.get("mode") == "esrgan" else "upscale"
        return f"⬆️ {how} of image {params.get('index', 0) + 1} of job {job.parent_id}"
    if job.kind is JobKind.STORY:
        if params.get("continue_from"):
            return f"📖 next chapter of job {params['continue_from']}: *{quote(params.get('summary', ''), 100)}*"
        return f"📖 *{quote(params.get('summary', ''), 120)}*"
    if job.kind is JobKind.STORY_PAGE:
        return f"🖌️ page {params.get('page', 0) + 1} of story job {job.parent_id}"
    if job.kind is JobKind.BLEND:
        return "🌀 blend" + (f" **{quote(params['prompt'], 100)}**" if params.get("prompt") else " of your pictures")
    if job.kind is JobKind.DESCRIBE:
        return "🔎 describing your picture"
    if job.kind is JobKind.REGION:
        where = f"“{quote(params['region'], 60)}”" if params.get("region") else "the squares picked"
        return f"🖌️ finding {where} in image {params.get('index', 0) + 1} of job {job.parent_id}"
    if job.kind is JobKind.INPAINT:
        page = params.get("page")
        return f"🖌️ redrawing part of {f'page {page + 1}' if page is not None else 'a picture'} (region job {job.parent_id})"
    if job.kind is JobKind.OUTPAINT:
        how = describe_growth(zoom=params.get("zoom"), pan=params.get("pan", ""))
        return f"🔍 {how} of image {params.get('index', 0) + 1} of job {job.parent_id}"
    if job.kind is JobKind.TRAIN_SUBJECT:
        token = f"{params.get('identifier', '')} {params.get('class_name', '')}".strip()
        return f"🧸 training **{quote(params.get('name', ''), 40)}** (`{token}`)"
    if job.kind is JobKind.NARRATE:
        icon = {"audiobook": "🎧 audiobook", "video": "🎬 video"}.get(params.get("output", ""), "🔊 reading")
        return f"{icon} of **{quote(params.get('title', '') or 'the story', 100)}**"
    return f"{job.kind} job"


def progress_text(job: Job, position: QueuePosition | None) -> str:
    """ "queued — position 3, about 40 s" or "denoising 40% (step 4/10)"."""
    if job.status is JobStatus.QUEUED:
        if position is None or position.position is None:
            return "queued"
        wait = duration(position.wait_seconds)
        return f"queued — position {position.position}" + (f", {wait}" if wait else "")
    if job.status is JobStatus.RUNNING:
        progress = job.progress
        stage = progress.stage or "working"
        if progress.total:
            return f"{stage} {round(100 * progress.fraction)}% (step {progress.step}/{progress.total})"
        return f"{stage}…"
    return str(job.status)


def status_line(head: str, job: Job, position: QueuePosition | None, note: str = "") -> str:
    lines = [f"{head} — {progress_text(job, position)}", job_footer(job.id, note)]
    return fit("\n".join(lines))


def page_status(title: str, job: Job, pages: int, position: QueuePosition | None, note: str = "") -> str:
    number = (job.params.get("page", 0) or 0) + 1
    head = f"📖 **{quote(title, 100)}** — page {number} of {pages}"
    return fit(f"{head}: {progress_text(job, position)}\n{job_footer(job.parent_id or job.id, note)}")


def finished_line(head: str, job: Job, where: str = "", note: str = "") -> str:
    if job.status is JobStatus.SUCCEEDED:
        what = "done" + (f" — {where}" if where else "")
        return fit(f"✅ {head} — {what}\n{job_footer(job.id, note)}")
    if job.status is JobStatus.CANCELED:
        return fit(f"🛑 {head} — canceled\n{job_footer(job.id, note)}")
    return fit(f"⚠️ {head} — failed\n{job_footer(job.id, note)}")


def failure_post(head: str, job: Job, requester: int) -> str:
    if job.status is JobStatus.CANCELED:
        return fit(f"🛑 <@{requester}> {head} was canceled.\n{job_footer(job.id)}")
    message = shorten(job.error.message if job.error else "it stopped without saying why", 400)
    return fit(f"⚠️ <@{requester}> {head} failed: {discord.utils.escape_mentions(message)}\n{job_footer(job.id)}")
