"""✏️ Edit under a story's page and ✏️ Edit title under its title post: forms that change the story's words.

Saving a page's form queues a redraw of that page (a ``story_page`` job, child of the story, as 🔁 is) with the
new text and a prompt rebuilt from the new scene the way the planner builds every page's prompt, on the same
seed unless the form asks for a new one; the book and ➕ Continue then read the page as edited (``Stories.plan``).
Saving the title form records the new title in the store; 📕 Updated book shows it. The forms are short-lived
(the user has them open); the buttons that open them are the usual restart-proof ones.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import discord

from storyloom.bot import texts
from storyloom.bot.actions import load_source, press
from storyloom.bot.errors import JobFailure, report
from storyloom.bot.safety import safety_checker_for
from storyloom.bot.submit import Request
from storyloom.domain.seeds import random_seed
from storyloom.domain.story.cast import fallback_scene
from storyloom.domain.story.edits import EMPTY_PAGE
from storyloom.domain.story.plan import PagePlan, StoryPlan
from storyloom.domain.story.scenes import MAX_SCENE_CHARS, page_prompt
from storyloom.errors import InvalidInput, StoryloomError
from storyloom.queue.job import Job, JobKind
from storyloom.queue.params import StoryPageParams, validate_params
from storyloom.queue.stories import page_of

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot
    from storyloom.queue.stories import StoryVersions

logger = logging.getLogger(__name__)

FORM_TEXT_CHARS = 4000  # Discord's limit for one text field
FORM_SCENE_CHARS = 500
YES = {"yes", "y", "true", "1", "new", "oui", "ja", "sí", "si"}
NO = {"", "no", "n", "false", "0", "same", "non", "nein"}


async def open_page_form(interaction: discord.Interaction, page_job_id: int) -> None:
    """✏️ Edit: the form with the page's newest text and scene."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    source = await load_source(interaction, page_job_id)
    story_id, index = _page_of(source)
    plan = await _story_plan(bot, story_id)
    page = plan.page(index)
    await interaction.response.send_modal(PageEditModal(page_job_id, page))


async def open_title_form(interaction: discord.Interaction, story_id: int) -> None:
    """✏️ Edit title: the form with the story's title as it now is."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    source = await load_source(interaction, story_id)
    if source.kind is not JobKind.STORY:
        raise JobFailure("only a story's title can be edited", story_id)
    plan = await _story_plan(bot, story_id)
    await interaction.response.send_modal(TitleEditModal(story_id, plan.title))


def edited_page_request(
    plan: StoryPlan, story_id: int, newest: StoryPageParams, text: str, scene: str, *, new_seed: bool, safety: Any
) -> Request:
    """The redraw of page ``newest.page`` with ``text`` and ``scene``: its prompt rebuilt as the planner builds
    every page's, its seed kept unless ``new_seed``; everything else (characters, places, reference) as the
    page's newest drawing has it. An emptied text is refused."""
    text = text.strip()
    if not text:
        raise InvalidInput(EMPTY_PAGE)
    page = plan.page(newest.page)
    scene = " ".join(scene.split())[:MAX_SCENE_CHARS] or fallback_scene(text, plan.summary)
    seed = random_seed() if new_seed else (newest.seed if newest.seed is not None else page.seed)
    changes = {
        "text": text,
        "prompt": page_prompt(plan.style, plan.cast, page, scene),
        "seed": seed,
        "plan": {**newest.plan, "scene": scene},
        "safety_checker": safety,
    }
    params = validate_params(JobKind.STORY_PAGE, {**newest.model_dump(), **changes})  # as any page job is checked
    number = newest.plan.get("number") or newest.page + 1
    return Request(JobKind.STORY_PAGE, params, f"✏️ redrawing page {number} with your words", parent_id=story_id)


class PageEditModal(discord.ui.Modal, title="Edit the page"):
    def __init__(self, page_job_id: int, page: PagePlan) -> None:
        super().__init__(timeout=900, custom_id=f"sl:em:{page_job_id}")
        self.page_job_id = page_job_id
        self.text: discord.ui.TextInput[PageEditModal] = discord.ui.TextInput(
            label=f"Page {page.number}",
            style=discord.TextStyle.paragraph,
            default=page.text[:FORM_TEXT_CHARS],
            required=False,  # an emptied page gets a message, not Discord's silent refusal
            max_length=FORM_TEXT_CHARS,
            custom_id="text",
        )
        self.scene: discord.ui.TextInput[PageEditModal] = discord.ui.TextInput(
            label="What the picture shows",
            style=discord.TextStyle.paragraph,
            default=page.scene[:FORM_SCENE_CHARS],
            required=False,
            max_length=FORM_SCENE_CHARS,
            custom_id="scene",
        )
        self.new_seed: discord.ui.TextInput[PageEditModal] = discord.ui.TextInput(
            label="New seed? (yes / no)", default="no", required=False, max_length=5, custom_id="new_seed"
        )
        for item in (self.text, self.scene, self.new_seed):
            self.add_item(item)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot: StoryloomBot = interaction.client  # type: ignore[assignment]
        try:
            answer = (self.new_seed.value or "").strip().casefold()
            if answer not in YES | NO:
                raise InvalidInput(f"new seed: answer yes or no (got {self.new_seed.value.strip()!r})")
            text, scene = self.text.value or "", self.scene.value or ""
            if not text.strip():
                raise InvalidInput(EMPTY_PAGE)
            bot.story_screen.ensure_allowed(f"{text}\n{scene}")
            source = await load_source(interaction, self.page_job_id)
            story_id, index = _page_of(source)
            versions = await bot.stories.versions(story_id)
            plan = await _story_plan(bot, story_id, versions)
            newest_job = versions.pages.get(index)
            newest = newest_job if newest_job is not None and newest_job.kind is JobKind.STORY_PAGE else source
            request = edited_page_request(
                plan,
                story_id,
                StoryPageParams.model_validate(dict(newest.params)),
                text,
                scene,
                new_seed=answer in YES,
                safety=safety_checker_for(interaction.channel),
            )
        except StoryloomError as exc:
            await report(interaction, exc, job_id=self.page_job_id)
            return
        await press(interaction, self.page_job_id, lambda job, pressed: request)

    # discord.py's Modal.on_error has no ``item`` argument, unlike the BaseView.on_error it overrides.
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await report(interaction, error, job_id=self.page_job_id)


class TitleEditModal(discord.ui.Modal, title="Edit the title"):
    def __init__(self, story_id: int, title: str) -> None:
        super().__init__(timeout=900, custom_id=f"sl:etm:{story_id}")
        self.story_id = story_id
        self.title_field: discord.ui.TextInput[TitleEditModal] = discord.ui.TextInput(
            label="Title", default=title[:100], required=False, max_length=100, custom_id="title"
        )
        self.add_item(self.title_field)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        from storyloom.bot.buttons import BookButton, frozen_view

        bot: StoryloomBot = interaction.client  # type: ignore[assignment]
        try:
            title = " ".join((self.title_field.value or "").split())
            if not title:
                raise InvalidInput("a story needs a title; write a few words (or keep the title as it is)")
            bot.story_screen.ensure_allowed(title)
            story = await load_source(interaction, self.story_id)
            await bot.store.set_story_title(self.story_id, title)
        except StoryloomError as exc:
            await report(interaction, exc, job_id=self.story_id)
            return
        await _rename_thread(bot, story.thread_id, texts.thread_name(title))
        line = f"✏️ the story is now called **{texts.quote(title, 100)}**, by <@{interaction.user.id}>"
        view = frozen_view([BookButton(self.story_id)])
        await interaction.response.send_message(
            texts.fit(f"{line}\n{texts.job_footer(self.story_id, 'press 📕 for the book with it')}"),
            view=view or discord.utils.MISSING,
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await report(interaction, error, job_id=self.story_id)


async def _rename_thread(bot: StoryloomBot, thread_id: int | None, name: str) -> None:
    """The story's thread takes its new title, as it took the first one; a thread that cannot be renamed (gone,
    archived, no permission) keeps its name."""
    if thread_id is None:
        return
    try:
        thread = bot.get_channel(thread_id) or await bot.fetch_channel(thread_id)
        if isinstance(thread, discord.Thread) and thread.name != name:
            await thread.edit(name=name)
    except discord.HTTPException as exc:
        logger.info("could not rename thread %s to the story's new title (%s)", thread_id, exc.status)


def _page_of(source: Job) -> tuple[int, int]:
    """(story job, page index) of a page's job."""
    index = page_of(source)
    if source.kind is not JobKind.STORY_PAGE or source.parent_id is None or index is None:
        raise JobFailure("only a story's pages can be edited", source.id)
    return source.parent_id, index


async def _story_plan(bot: StoryloomBot, story_id: int, versions: StoryVersions | None = None) -> StoryPlan:
    plan = await bot.stories.plan(story_id, versions)
    if plan is None:
        raise JobFailure("this story's text is gone (it was purged, or is still being written)", story_id)
    return plan
