"""``storyloom narrate BOOK_DIR [--voice V] [--speed S] [--video]``: a book read aloud, beside the book.

Writes ``narration/page-N.ogg`` for every page with text, ``audiobook.m4a`` with a chapter per page, and with
``--video`` ``book.mp4`` (the page pictures with pan and zoom, the narration and subtitles).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from storyloom.config import Config

NARRATION_DIR = "narration"
AUDIOBOOK_FILE = "audiobook.m4a"
VIDEO_FILE = "book.mp4"


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    parser = subparsers.add_parser(
        "narrate",
        help="read a book aloud: a recording per page, an audiobook and (--video) a narrated video",
        description="Read the book in BOOK_DIR aloud in its own language: narration/page-N.ogg, audiobook.m4a "
        "(a chapter per page) and with --video book.mp4, all beside the book.",
    )
    parser.add_argument("book", type=Path, metavar="BOOK_DIR", help="a book directory made by `storyloom story`")
    parser.add_argument("--voice", default=None, help="a voice from [narration] voices (default: the configured one)")
    parser.add_argument("--speed", type=float, default=None, help="0.5 (slow) to 2.0 (fast); default from config")
    parser.add_argument("--seed", type=int, default=None, help="the same seed reads the same way (default 0)")
    parser.add_argument("--video", action="store_true", help="also make book.mp4")
    add_common_options(parser)
    parser.set_defaults(handler=narrate_command)


def narrate_command(config: Config, args: argparse.Namespace) -> int:
    from PIL import Image

    from storyloom.cli.progress_bar import ProgressBar
    from storyloom.domain.narration import DEFAULT_SEED, choose_voice
    from storyloom.domain.story.plan import StoryPlan
    from storyloom.errors import InvalidInput
    from storyloom.models.narration import media
    from storyloom.models.narration.cache import SpeechCache, read_page
    from storyloom.models.narration.narrator import Narrator
    from storyloom.models.runtime.step_progress import StepProgress

    book = args.book
    plan = StoryPlan.load(book)
    choice = choose_voice(config, args.voice, plan.language, args.speed)  # bad input fails before any model loads
    seed = DEFAULT_SEED if args.seed is None else args.seed
    narrator = Narrator.from_config(config)
    cache = SpeechCache.from_config(config)
    folder = book / NARRATION_DIR
    folder.mkdir(parents=True, exist_ok=True)
    read: list[media.NarratedPage] = []
    with ProgressBar("reading aloud") as bar:
        for index, page in enumerate(plan.pages):
            speech = read_page(narrator, cache, page.text, choice, seed)
            bar(StepProgress(index + 1, len(plan.pages)))
            if speech is None:
                print(f"page {page.number}: no text, skipped")
                continue
            (folder / f"page-{page.number}.ogg").write_bytes(media.encode_ogg_opus(speech, title=f"Page {page.number}"))
            picture_path = book / page.image_name
            picture = Image.open(picture_path).convert("RGB") if args.video and picture_path.is_file() else None
            read.append(media.NarratedPage(page.number, speech, picture))
    if not read:
        raise InvalidInput(f"{book} has no page with text to read aloud")
    pause = config.narration.page_pause
    audiobook = book / AUDIOBOOK_FILE
    audiobook.write_bytes(media.encode_audiobook(read, title=plan.title, page_pause=pause))
    print(f"{folder}/ ({len(read)} pages, voice {choice.voice})")
    print(audiobook)
    if args.video:
        video = book / VIDEO_FILE
        settings = config.narration
        data = media.encode_video(
            read, title=plan.title, side=settings.video_side, fps=settings.video_fps, page_pause=pause
        )
        video.write_bytes(data)
        print(video)
    return 0
