"""``StoryPipeline``: summary → written, planned story → illustrated pages → book, and continuations.

The steps are separate calls because a worker runs them as separate jobs (one text job, then one job
per page, so a long story never holds the GPU away from everyone else): :meth:`write` makes a
:class:`StoryPlan` (text, pages, cast, prompts, seeds) that is saved as JSON; :meth:`illustrate_page`
draws one page from that plan alone; :meth:`redraw_page` changes one page's seed and nothing else;
:meth:`continue_story` adds a chapter. Everything is synchronous and blocking: it belongs in a worker
process or thread, never in an event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

from PIL import Image

from storyloom.config import Config
from storyloom.domain.book.files import BookFiles, save_page_image, write_book
from storyloom.domain.seeds import check_seed, page_seed, random_seed
from storyloom.domain.story.checks import StoryInputs, check_story_inputs
from storyloom.domain.story.pages import split_pages
from storyloom.domain.story.plan import (
    CastMember,
    ChapterPlan,
    CharacterLookup,
    PagePlan,
    StoryPlan,
    character_lookup,
)
from storyloom.domain.story.safety import SafetyScreen
from storyloom.domain.story.scenes import compose_prompt
from storyloom.domain.story.styles import get_style
from storyloom.domain.story.text import detect_language
from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress
from storyloom.models.story.drafts import accept_title, fallback_title, write_text
from storyloom.models.story.memory import chapter_synopsis, continuation
from storyloom.models.story.planner import ScenePlan, StoryPlanner
from storyloom.models.story.prompts import CastHint, story_request
from storyloom.models.story.writer import LanguageModel

logger = logging.getLogger(__name__)

T = TypeVar("T")
# Planning of chapter k uses seed base + k * this, so chapters never share sampling noise.
_CHAPTER_SEED_STRIDE = 1000


class Lazy(Generic[T]):
    """A model built on first use: the CLI loads the LM before the image model, not both up front."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None

    def get(self) -> T:
        if self._value is None:
            self._value = self._factory()
        return self._value


@dataclass(frozen=True)
class PageImage:
    """One page's picture with the seed and parameters that make it again, and the safety flag."""

    page: PagePlan
    image: Image.Image
    seed: int
    parameters: Any
    nsfw: bool


class StoryPipeline:
    """Writes, plans and illustrates children's stories with one language model and one image model."""

    def __init__(
        self,
        config: Config,
        *,
        lm: LanguageModel | Lazy[LanguageModel],
        txt2img: Any | Lazy[Any] = None,
        characters: CharacterLookup | None = None,
    ) -> None:
        self.config = config
        self._lm = lm
        self._txt2img = txt2img
        self.characters = characters or character_lookup()
        self.screen = SafetyScreen(config.bot.banned_words)

    @classmethod
    def from_config(
        cls, config: Config, *, characters: CharacterLookup | None = None, cache: Any = None
    ) -> StoryPipeline:
        """Both models are loaded on first use (``cache`` shares the image model with other pipelines)."""

        def load_lm() -> LanguageModel:
            from storyloom.models.story.writer import StoryWriter

            return StoryWriter.from_config(config)

        def load_txt2img() -> Any:
            from storyloom.models.image.txt2img import Txt2Img

            return Txt2Img.from_config(config, cache)

        return cls(config, lm=Lazy(load_lm), txt2img=Lazy(load_txt2img), characters=characters)

    @property
    def lm(self) -> LanguageModel:
        return self._lm.get() if isinstance(self._lm, Lazy) else self._lm

    @property
    def txt2img(self) -> Any:
        model = self._txt2img.get() if isinstance(self._txt2img, Lazy) else self._txt2img
        if model is None:
            raise InvalidInput("this story pipeline has no image model")
        return model

    def check_inputs(
        self, summary: Any, pages: Any = None, style: Any = None, character: Any = None, seed: Any = None
    ) -> StoryInputs:
        """Validate a request before any model runs; raises a concise, polite ``InvalidInput``. ``character``:
        one registered name or a list of up to three."""
        return check_story_inputs(
            self.config.story, self.screen, self.characters, summary, pages, style, character, seed
        )

    def write(
        self,
        summary: str,
        pages: int | None = None,
        style: str | None = None,
        character: str | Sequence[str] | None = None,
        seed: int | None = None,
        *,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> StoryPlan:
        """Write the story and plan its pages (no pictures yet); ``character``: up to three registered names."""
        _refuse_event_loop()
        inputs = self.check_inputs(summary, pages, style, character, seed)
        base_seed = inputs.seed if inputs.seed is not None else random_seed()
        known = [CastMember.from_character(found) for found in inputs.characters]
        request = story_request(
            inputs.summary,
            prompt_format=self.config.story.prompt_format,
            pages=inputs.pages,
            max_new_tokens=self.config.story.max_new_tokens,
            characters=[CastHint(member.name, member.description) for member in known],
        )
        written = write_text(
            self.lm, self.screen, request, inputs.pages, seed=base_seed, progress=progress, should_cancel=should_cancel
        )
        _report(progress, "planning", 0, 1)
        page_texts = split_pages(written.body, inputs.pages)
        scenes = StoryPlanner(self.lm, temperature=self.config.story.plan_temperature, screen=self.screen)(
            page_texts, known_cast=known, summary=inputs.summary, seed=base_seed, should_cancel=should_cancel
        )
        _report(progress, "planning", 1, 1)
        title = accept_title(self.screen, written.title, scenes.title) or fallback_title(inputs.summary)
        language, direction = detect_language(inputs.summary + "\n" + written.body)
        plan = StoryPlan(
            title=title,
            summary=inputs.summary,
            language=language,
            direction=direction,
            style=inputs.style.name,
            base_seed=base_seed,
            character=inputs.character.name if inputs.character else "",
            characters=[found.name for found in inputs.characters],
            cast=scenes.cast,
            chapters=[ChapterPlan(number=1, title=title, summary=inputs.summary, text=written.body)],
            notes=written.notes + scenes.notes,
        )
        plan.pages = self._page_plans(plan, scenes, chapter=1)
        return plan

    def illustrate_page(
        self,
        plan: StoryPlan,
        page_index: int,
        seed: int | None = None,
        *,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> PageImage:
        """Draw page ``page_index`` (0-based) with its planned seed, or with ``seed`` for a redraw."""
        page = plan.page(page_index)
        if should_cancel is not None and should_cancel():
            raise JobCanceled(f"the story was canceled before page {page.number} was drawn")
        stage = f"page {page.number}"
        relay = None if progress is None else (lambda step: progress(replace(step, stage=stage)))
        return draw_page(self.txt2img, page, seed, progress=relay, should_cancel=should_cancel)

    def save_page(self, book_dir: Path | str, result: PageImage) -> Path:
        return save_page_image(book_dir, result.page, result.image, result.parameters)

    def make_book(
        self,
        plan: StoryPlan,
        book_dir: Path | str,
        *,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> BookFiles:
        """Draw every page that has no picture yet, then write the book files."""
        plan.save(book_dir)
        for index, page in enumerate(plan.pages):
            if not (Path(book_dir) / page.image_name).is_file():
                result = self.illustrate_page(plan, index, progress=progress, should_cancel=should_cancel)
                self.save_page(book_dir, result)
        return write_book(plan, book_dir)

    def redraw_page(
        self,
        book_dir: Path | str,
        page_index: int,
        seed: int | None = None,
        *,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> PageImage:
        """Draw one page again with a new seed (random unless given); the other pages are not touched."""
        plan = StoryPlan.load(book_dir)
        page = plan.page(page_index)
        seed = random_seed() if seed is None else seed
        result = self.illustrate_page(plan, page_index, seed, progress=progress, should_cancel=should_cancel)
        plan.pages[page_index] = page.model_copy(update={"seed": result.seed})
        result = replace(result, page=plan.pages[page_index])
        self.save_page(book_dir, result)
        write_book(plan, book_dir)
        return result

    def continue_story(
        self,
        book: StoryPlan,
        summary: str = "",
        pages: int | None = None,
        *,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> StoryPlan:
        """``book`` with its next chapter written and planned (pictures still to draw); ``book`` itself is left
        as it was, and saving the new plan is the caller's business."""
        _refuse_event_loop()
        plan = book.model_copy(deep=True)
        settings = self.config.story
        hint = summary.strip()
        if hint:
            self.check_inputs(hint)
        last_chapter = plan.chapters[-1].number if plan.chapters else 0
        last_pages = sum(1 for page in plan.pages if page.chapter == last_chapter)
        count = pages if pages is not None else last_pages or settings.pages
        self.check_inputs(plan.summary, count)
        chapter = len(plan.chapters) + 1
        seed = plan.base_seed + chapter * _CHAPTER_SEED_STRIDE
        if settings.memory == "summary":
            for old in plan.chapters:
                if not old.synopsis:
                    old.synopsis = chapter_synopsis(self.lm, old.text, seed=seed, screen=self.screen)
        fitted = continuation(
            plan,
            self.lm,
            memory=settings.memory,
            prompt_format=settings.prompt_format,
            recent_pages=settings.recent_pages,
            pages=count,
            max_new_tokens=settings.max_new_tokens,
            hint=hint,
        )
        written = write_text(
            self.lm, self.screen, fitted.request, count, seed=seed, progress=progress, should_cancel=should_cancel
        )
        _report(progress, "planning", 0, 1)
        scenes = StoryPlanner(self.lm, temperature=settings.plan_temperature, screen=self.screen)(
            split_pages(written.body, count),
            known_cast=plan.cast,
            summary=hint or plan.summary,
            seed=seed,
            should_cancel=should_cancel,
        )
        _report(progress, "planning", 1, 1)
        title = accept_title(self.screen, written.title) or f"Chapter {chapter}"
        plan.chapters.append(ChapterPlan(number=chapter, title=title, summary=hint, text=written.body))
        plan.cast = scenes.cast
        plan.pages = plan.pages + self._page_plans(plan, scenes, chapter=chapter)
        notes = written.notes + scenes.notes
        if fitted.trimmed:
            notes.append(f"memory trimmed to fit the context window: {', '.join(fitted.trimmed)}")
        plan.notes = plan.notes + [f"chapter {chapter}: {note}" for note in notes]
        return plan

    def _page_plans(self, plan: StoryPlan, scenes: ScenePlan, *, chapter: int) -> list[PagePlan]:
        style = get_style(plan.style)
        by_name = {member.name: member for member in scenes.cast}
        first = len(plan.pages) + 1  # numbering runs on across chapters
        pages = []
        for offset, planned in enumerate(scenes.pages):
            number = first + offset
            members = [by_name[name] for name in planned.characters if name in by_name]
            page = PagePlan(
                number=number, chapter=chapter, text=planned.text, scene=planned.scene, characters=planned.characters,
                positions=planned.positions, prompt=compose_prompt(style, planned.scene, members, planned.positions),
                negative_prompt=style.negative_prompt, seed=page_seed(plan.base_seed, number), source=planned.source,
            )  # fmt: skip
            pages.append(page)
        return pages


def draw_page(
    txt2img: Any,
    page: PagePlan,
    seed: int | None = None,
    *,
    safety_checker: bool | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
) -> PageImage:
    """One page's picture: its planned prompt, one image, its planned seed (or ``seed`` for a redraw). The
    CLI (through :meth:`StoryPipeline.illustrate_page`) and the worker's page jobs both draw pages here;
    ``safety_checker`` None keeps the image model's setting."""
    seed = page.seed if seed is None else seed
    check_seed(seed)
    batch = txt2img(
        page.prompt,
        page.negative_prompt,
        seed=seed,
        num_images=1,
        safety_checker=safety_checker,
        progress=progress,
        should_cancel=should_cancel,
    )
    return PageImage(page, batch.images[0], batch.seeds[0], batch.parameters[0], bool(batch.nsfw[0]))


def _report(progress: ProgressCallback | None, stage: str, step: int, total: int) -> None:
    if progress is not None:
        progress(StepProgress(step, total, stage=stage))


def _refuse_event_loop() -> None:
    """The language model blocks for seconds to minutes: never inside an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        "StoryPipeline blocks while the model runs; call it from a worker thread or process, not an event loop"
    )
