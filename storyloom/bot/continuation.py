"""➕ Continue: a form asking what happens next, then a story job that continues the book.

The new chapter is written by the story engine with the book's memory (``continue_from``); its pages go to
the same thread. The form is short-lived by nature (the user has it open); the button that opens it is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from storyloom.bot.actions import load_source
from storyloom.bot.errors import report
from storyloom.bot.safety import safety_checker_for
from storyloom.bot.submit import Request, submit
from storyloom.bot.validation import parse_pages, story_params
from storyloom.errors import StoryloomError
from storyloom.queue.job import JobKind

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

DEFAULT_NEXT = "The adventure continues."


class ContinueModal(discord.ui.Modal, title="Continue the story"):
    def __init__(self, story_id: int) -> None:
        super().__init__(timeout=900, custom_id=f"sl:cm:{story_id}")
        self.story_id = story_id
        self.next: discord.ui.TextInput[ContinueModal] = discord.ui.TextInput(
            label="What happens next?",
            style=discord.TextStyle.paragraph,
            default=DEFAULT_NEXT,
            max_length=1000,
            custom_id="next",
        )
        self.pages: discord.ui.TextInput[ContinueModal] = discord.ui.TextInput(
            label="Pages (blank: the usual)", required=False, max_length=2, custom_id="pages"
        )
        self.add_item(self.next)
        self.add_item(self.pages)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot: StoryloomBot = interaction.client  # type: ignore[assignment]
        try:
            await load_source(interaction, self.story_id)  # a form's custom ID can be forged like a button's
            params = story_params(
                bot.config,
                bot.story_screen,
                summary=self.next.value,
                pages=parse_pages(self.pages.value),
                continue_from=self.story_id,
                safety_checker=safety_checker_for(interaction.channel),
            )
        except StoryloomError as exc:
            await report(interaction, exc, job_id=self.story_id)
            return
        await interaction.response.defer(thinking=True)
        head = f"📖 next chapter of job {self.story_id}"
        await submit(bot, interaction, Request(JobKind.STORY, params, head))

    # discord.py's Modal.on_error has no ``item`` argument, unlike the BaseView.on_error it overrides.
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await report(interaction, error, job_id=self.story_id)
