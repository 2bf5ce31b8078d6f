"""narrate: pages read aloud as Ogg/Opus files, a whole book as an M4A audiobook, or a narrated MP4."""

from __future__ import annotations

import io
from typing import Any

from storyloom.domain.narration import DEFAULT_SEED, choose_voice
from storyloom.errors import InvalidInput
from storyloom.models.runtime.step_progress import StepProgress
from storyloom.queue.job import ArtifactKind, JobKind, NewArtifact
from storyloom.queue.params import NarrateParams
from storyloom.worker.context import Handler, HandlerResult, JobContext


def handlers() -> dict[JobKind, Handler]:
    return {JobKind.NARRATE: narrate}


def narrate(context: JobContext) -> HandlerResult:
    from storyloom.models.narration import media
    from storyloom.models.narration.cache import SpeechCache, read_page

    params = context.params
    assert isinstance(params, NarrateParams)
    choice = choose_voice(context.config, params.narration.voice, params.language, params.narration.speed)
    seed = DEFAULT_SEED if params.seed is None else params.seed
    narrator = context.resources.narrator()  # after the checks: a bad request never loads a model
    cache = SpeechCache.from_config(context.config)
    total = len(params.pages) + (0 if params.output == "pages" else 1)
    read: list[media.NarratedPage] = []
    for index, page in enumerate(params.pages):
        context.check_canceled()
        context.progress(StepProgress(index, total, stage=f"reading page {page.number} aloud"))
        speech = read_page(narrator, cache, page.text, choice, seed, context.should_cancel)
        if speech is None:
            continue  # an empty page: nothing to say, nothing sent to the model
        picture = _picture(context, page.picture_job) if params.output == "video" else None
        read.append(media.NarratedPage(page.number, speech, picture))
    if not read:
        raise InvalidInput("there is nothing to read aloud: the pages have no text")
    about: dict[str, Any] = {"voice": choice.voice, "language": choice.language, "speed": choice.speed}
    if params.output == "pages":
        return HandlerResult(
            tuple(
                NewArtifact(
                    ArtifactKind.FILE,
                    index,
                    f"page-{page.number}.ogg",
                    media.OGG_MIME,
                    media.encode_ogg_opus(page.speech, title=f"Page {page.number}"),
                    {"page": page.number, "seconds": round(page.speech.duration, 3), **about},
                )  # fmt: skip
                for index, page in enumerate(read)
            )
        )
    context.progress(StepProgress(len(params.pages), total, stage=f"making the {params.output}"))
    pause = context.config.narration.page_pause
    seconds = round(sum(page.speech.duration for page in read) + pause * len(read), 3)
    about.update(pages=[page.number for page in read], seconds=seconds)
    if params.output == "audiobook":
        data = media.encode_audiobook(read, title=params.title, page_pause=pause)
        return HandlerResult((NewArtifact(ArtifactKind.FILE, 0, "audiobook.m4a", media.M4A_MIME, data, about),))
    settings = context.config.narration
    data = media.encode_video(
        read, title=params.title, side=settings.video_side, fps=settings.video_fps, page_pause=pause,
        should_cancel=context.should_cancel,
    )  # fmt: skip
    return HandlerResult((NewArtifact(ArtifactKind.FILE, 0, "book.mp4", media.MP4_MIME, data, about),))


def _picture(context: JobContext, job_id: int | None) -> Any:
    """The picture of a page job, or None when it has none (the video then shows a plain page)."""
    if job_id is None:
        return None
    from PIL import Image

    found = context.lookup_artifact(job_id, 0, ArtifactKind.IMAGE)
    if found is None:
        return None
    image = Image.open(io.BytesIO(found.data))
    image.load()
    return image
