"""Remix: with the setting on (``/settings remix:True``), V1–V4, 🔄, Vary and a region preview's ✅ Redraw open a
form pre-filled with the prompt and negative prompt, and the job is queued with what the user leaves in it.

The form lives only while the user has it open; the buttons that open it are the usual restart-proof ones.
Without the setting a press queues at once, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import discord

from storyloom.bot import actions
from storyloom.bot.errors import report
from storyloom.bot.submit import Request
from storyloom.domain.prompts import validate_prompt
from storyloom.errors import StoryloomError
from storyloom.queue.job import Job, JobKind

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

MAX_CHAIN = 20
FORM_PROMPT_CHARS = 4000  # Discord's limit for one text field


@dataclass(frozen=True)
class Prompts:
    prompt: str
    negative_prompt: str = ""


# (source job, interaction, the prompts from the form or None for the source's own) -> the request to queue
RemixMaker = Callable[[Job, discord.Interaction, "Prompts | None"], Request]


async def remixable(interaction: discord.Interaction, source_id: int, make: RemixMaker) -> None:
    """Queue at once, or with Remix on, first show the form pre-filled with the source's prompts."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    defaults = await bot.settings.get(interaction.user.id)
    if not defaults.remixing:
        await actions.press(interaction, source_id, lambda source, pressed: make(source, pressed, None))
        return
    try:
        source = await actions.load_source(interaction, source_id)
        make(source, interaction, None)  # refuses what cannot be made at all before showing a form
        prompts = await source_prompts(bot, source)
    except StoryloomError as exc:
        await report(interaction, exc, job_id=source_id)
        return
    # A blend may have no words: the pictures alone decide what it draws.
    words_optional = source.kind is JobKind.BLEND
    await interaction.response.send_modal(RemixModal(source_id, prompts, make, words_optional=words_optional))


async def source_prompts(bot: StoryloomBot, job: Job) -> Prompts:
    """The prompts a picture was made with: the job's own (an imagine, a blend, a region to redraw, a variation,
    redraw or grown picture given new words), else those of the job it came from."""
    current: Job | None = job
    for _ in range(MAX_CHAIN):
        if current is None:
            break
        params = current.params
        if current.kind in (JobKind.IMAGINE, JobKind.BLEND, JobKind.REGION) or (
            current.kind in (JobKind.VARY, JobKind.INPAINT, JobKind.OUTPAINT) and params.get("prompt")
        ):
            return Prompts(str(params.get("prompt") or ""), str(params.get("negative_prompt") or ""))
        if current.kind is JobKind.STORY_PAGE:
            return Prompts(str(params.get("prompt") or ""), str(params.get("negative_prompt") or ""))
        current = await bot.store.get(current.parent_id) if current.parent_id is not None else None
    return Prompts("")


class RemixModal(discord.ui.Modal, title="Remix"):
    def __init__(self, source_id: int, prompts: Prompts, make: RemixMaker, *, words_optional: bool = False) -> None:
        super().__init__(timeout=900, custom_id=f"sl:rm:{source_id}")
        self.source_id = source_id
        self.make = make
        self.words_optional = words_optional
        self.prompt: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label="Prompt",
            style=discord.TextStyle.paragraph,
            default=prompts.prompt[:FORM_PROMPT_CHARS],
            required=not words_optional,
            max_length=FORM_PROMPT_CHARS,
            custom_id="prompt",
        )
        self.negative: discord.ui.TextInput[RemixModal] = discord.ui.TextInput(
            label="Negative prompt",
            style=discord.TextStyle.paragraph,
            default=prompts.negative_prompt[:FORM_PROMPT_CHARS],
            required=False,
            max_length=FORM_PROMPT_CHARS,
            custom_id="negative",
        )
        self.add_item(self.prompt)
        self.add_item(self.negative)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot: StoryloomBot = interaction.client  # type: ignore[assignment]
        limit = bot.config.image.max_prompt_chars
        try:
            prompt, negative = (self.prompt.value or "").strip(), (self.negative.value or "").strip()
            validate_prompt(prompt, max_chars=limit, allow_empty=self.words_optional)
            validate_prompt(negative, max_chars=limit, name="negative prompt", allow_empty=True)
            bot.banned.ensure_allowed(prompt)
        except StoryloomError as exc:
            await report(interaction, exc, job_id=self.source_id)
            return
        chosen = Prompts(prompt, negative)
        await actions.press(interaction, self.source_id, lambda source, pressed: self.make(source, pressed, chosen))

    # discord.py's Modal.on_error has no ``item`` argument, unlike the BaseView.on_error it overrides.
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await report(interaction, error, job_id=self.source_id)
