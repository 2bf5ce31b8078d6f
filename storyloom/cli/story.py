"""``storyloom story "SUMMARY"`` writes and illustrates a book; ``storyloom story --continue DIR`` adds a chapter.

One progress bar covers the whole run: writing, planning, then one step per page.
"""

from __future__ import annotations

import argparse
import logging
import re
import time
from pathlib import Path
from typing import Any

from storyloom.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    parser = subparsers.add_parser(
        "story",
        help="write and illustrate a children's story (a book directory with PNGs, HTML and PDF)",
        description='Write and illustrate a story: storyloom story "A shy cat learns to sail". '
        "With --continue DIR, add a chapter to an existing book (SUMMARY then says what happens next).",
    )
    parser.add_argument("summary", nargs="?", default=None, help="what the story is about (a sentence or two)")
    parser.add_argument("--pages", type=int, default=None, help="pages, 1-20 (default: story.pages from config)")
    parser.add_argument(
        "--style", default=None, help="illustration style: watercolor, crayon, storybook, papercut, clay, cartoon"
    )
    parser.add_argument(
        "--character",
        action="append",
        default=[],
        metavar="NAME",
        help="a registered character to star in the story (give it up to three times for several)",
    )
    parser.add_argument(
        "--consistent",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="share self-attention with the first page for one look across the pages "
        "(default: on where it fits the memory budget)",
    )
    parser.add_argument("--seed", type=int, default=None, help="base seed: same seed and summary, same book")
    parser.add_argument("--out", type=Path, default=None, help="book directory (default: <data_dir>/books/...)")
    parser.add_argument(
        "--continue", dest="continue_dir", type=Path, default=None, metavar="DIR", help="add a chapter to the book"
    )
    add_common_options(parser)
    parser.set_defaults(handler=story_command)


def story_command(config: Config, args: argparse.Namespace) -> int:
    from storyloom.errors import InvalidInput
    from storyloom.models.story.pipeline import StoryPipeline

    # fpdf subsets fonts through fontTools, which logs every table at INFO level.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    from storyloom.characters.registry import story_character
    from storyloom.domain.story.checks import character_names
    from storyloom.domain.story.plan import character_lookup

    records = _characters(config, character_names(args.character))  # a fourth is refused before anything loads
    characters = character_lookup({record.name: story_character(record) for record in records})
    pipeline = StoryPipeline.from_config(config, characters=characters)
    if args.continue_dir is not None:
        return _continue(config, pipeline, args)
    if not args.summary:
        raise InvalidInput('give a summary, for example: storyloom story "A shy cat learns to sail"')
    # Checked before any model loads, so a bad request fails at once.
    names = [record.name for record in records]
    inputs = pipeline.check_inputs(args.summary, args.pages, args.style, names, args.seed)
    out = args.out or _default_directory(config, inputs.summary)
    with _StoryBar(inputs.pages) as bar:
        plan = pipeline.write(inputs.summary, inputs.pages, inputs.style.name, names, args.seed, progress=bar.update)
        plan.save(out)
        files = _illustrate(config, pipeline, records, plan, out, range(len(plan.pages)), bar, args.consistent)
    _report(plan, files)
    return 0


def _characters(config: Config, names: list[str]) -> list[Any]:
    """Characters registered on this machine (``storyloom character list``), checked before any model loads."""
    if not names:
        return []
    from storyloom.queue.store import JobStore

    with JobStore.from_config(config) as store:
        return [store.character(name) for name in names]


def _continue(config: Config, pipeline: Any, args: argparse.Namespace) -> int:
    from storyloom.domain.story.plan import StoryPlan

    book = StoryPlan.load(args.continue_dir)
    before = len(book.pages)
    # The book's characters are still drawn with their LoRAs and reference pictures.
    records = _characters(config, book.characters or ([book.character] if book.character else []))
    with _StoryBar(args.pages or 0) as bar:
        plan = pipeline.continue_story(book, args.summary or "", args.pages, progress=bar.update)
        plan.save(args.continue_dir)
        bar.resize(len(plan.pages) - before)
        pages = range(before, len(plan.pages))
        files = _illustrate(config, pipeline, records, plan, args.continue_dir, pages, bar, args.consistent)
    _report(plan, files)
    return 0


def _illustrate(
    config: Config,
    pipeline: Any,
    records: list[Any],
    plan: Any,
    out: Path,
    indices: range,
    bar: _StoryBar,
    consistent: bool | None,
) -> Any:
    """Draw the pages at ``indices`` and write the book files: each page with the LoRAs and reference pictures of
    the registered characters on it, each reference steering its place in the picture (the prompts already carry
    the characters' words); with ``consistent`` (None: where it fits the memory budget) every later page shares
    self-attention with the book's first page."""
    import dataclasses

    from PIL import Image

    from storyloom.domain.book.files import write_book
    from storyloom.worker.handlers.characters import drawing_placed, stored_reference_picture

    txt2img = pipeline.txt2img
    if consistent is None:
        from storyloom.models.image.consistent_attention import consistent_attention_fits

        consistent = consistent_attention_fits(config)
    first_page = out / plan.pages[0].image_name
    pictures = {record.name: stored_reference_picture(config, record) for record in records}
    by_name = {record.name.casefold(): record for record in records}
    for position, index in enumerate(indices):
        bar.page = position
        page = plan.pages[index]
        present = [by_name[name.casefold()] for name in page.characters if name.casefold() in by_name]
        placed = [(record, page.positions.get(record.name, "whole")) for record in present]
        shared = Image.open(first_page).convert("RGB") if consistent and index > 0 and first_page.is_file() else None
        with drawing_placed(
            txt2img, placed, lambda record: pictures[record.name], config, shared_attention=shared
        ) as character:
            result = pipeline.illustrate_page(plan, index, progress=bar.update)
        pipeline.save_page(out, dataclasses.replace(result, parameters=character.named(result.parameters)))
        bar.update_page_done(position)
    return write_book(plan, out)


def _report(plan: Any, files: Any) -> None:
    print(f"{plan.title}")
    print(f"  book:  {files.pdf}")
    print(f"  html:  {files.html}")
    print(f"  text:  {files.markdown}")
    print(f"  pages: {len(plan.pages)} (seed {plan.base_seed}, style {plan.style})")
    for note in list(plan.notes) + list(files.notes):
        print(f"  note:  {note}")


def _default_directory(config: Config, summary: str) -> Path:
    slug = "-".join(re.findall(r"[a-z0-9]+", summary.lower())[:6]) or "story"
    return config.paths.data_dir / "books" / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}"


class _StoryBar:
    """One tqdm bar: 1 step of writing, 1 of planning, 1 per page; fractions inside each step."""

    def __init__(self, pages: int) -> None:
        from tqdm import tqdm

        layout = "{l_bar}{bar}| {n:.1f}/{total} [{elapsed}<{remaining}]{postfix}"
        self._bar = tqdm(total=2 + pages, unit="step", bar_format=layout)
        self.page = -1

    def __enter__(self) -> _StoryBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.close()

    def resize(self, pages: int) -> None:
        self._bar.total = 2 + pages
        self._bar.refresh()

    def update(self, progress: Any) -> None:
        """A ``StepProgress`` from any stage, mapped onto the one bar."""
        fraction = progress.step / progress.total if progress.total else 0.0
        stage = progress.stage or ""
        if stage == "writing":
            position, label = fraction, f"writing {progress.step}/{progress.total} tokens"
        elif stage == "planning":
            position, label = 1 + fraction, "planning pages"
        else:
            position = 2 + max(self.page, 0) + fraction
            label = f"{stage or 'illustrating'} step {progress.step}/{progress.total}"
        self._bar.n = min(position, self._bar.total)
        self._bar.set_postfix_str(label, refresh=True)

    def update_page_done(self, position: int) -> None:
        self._bar.n = min(2 + position + 1, self._bar.total)
        self._bar.refresh()
