"""``/settings``: see or change your defaults for /imagine and /story; they are kept in the store."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Optional

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot import texts
from storyloom.bot.commands.story import style_names, voice_names
from storyloom.bot.errors import report
from storyloom.bot.user_settings import REMIX_ON, UserDefaults
from storyloom.domain.narration import check_speed, check_voice
from storyloom.domain.prompts import validate_prompt
from storyloom.domain.sizes import parse_aspect_ratio
from storyloom.domain.story.styles import get_style
from storyloom.errors import StoryloomError

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

CLEAR = ("none", "-")


def _cleared(value: str | None) -> str | None:
    """None: leave as is; "": clear; else the new value."""
    if value is None:
        return None
    value = value.strip()
    return "" if value.lower() in CLEAR else value


def describe(defaults: UserDefaults) -> str:
    if defaults.empty:
        return "You have no defaults: every command uses the server's."
    rows = [
        ("negative prompt", texts.quote(defaults.negative_prompt, 200)),
        ("aspect ratio", defaults.aspect_ratio),
        ("story style", defaults.style),
        ("narration voice", defaults.voice),
        ("narration speed", defaults.speed),
        ("Remix", "on (V1–V4, 🔄, Vary and ✅ Redraw let you change the prompt first)" if defaults.remixing else ""),
    ]
    return "Your defaults:\n" + "\n".join(f"• {name}: {value}" for name, value in rows if value)


class Settings(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command()
    @app_commands.describe(
        negative='default negative prompt for /imagine ("none" clears it)',
        ar='default aspect ratio for /imagine, such as 2:3 ("none" clears it)',
        style='default illustration style for /story ("none" clears it)',
        voice='default voice that reads stories aloud ("none" clears it)',
        speed="how fast stories are read aloud: 0.5 (slow) to 2.0 (fast); 0 forgets it",
        remix="on: V1–V4, 🔄, Vary and ✅ Redraw open a form to change the prompt before drawing",
        reset="forget all your defaults",
    )
    @app_commands.autocomplete(style=style_names, voice=voice_names)
    async def settings(
        self,
        interaction: discord.Interaction,
        negative: Optional[str] = None,
        ar: Optional[str] = None,
        style: Optional[str] = None,
        voice: Optional[str] = None,
        speed: Optional[app_commands.Range[float, 0.0, 2.0]] = None,
        remix: Optional[bool] = None,
        reset: bool = False,
    ) -> None:
        """See or change your defaults for /imagine and /story."""
        negative, ar, style, voice = _cleared(negative), _cleared(ar), _cleared(style), _cleared(voice)
        try:
            if negative:
                validate_prompt(
                    negative, max_chars=self.bot.config.image.max_prompt_chars, name="negative prompt", negative=True
                )
            if ar:
                parse_aspect_ratio(ar)
            if style:
                style = get_style(style).name
            if voice:
                voice = check_voice(self.bot.config, voice)
            pace = None if speed is None else "" if speed == 0 else f"{check_speed(speed, self.bot.config):g}"
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        current = UserDefaults() if reset else await self.bot.settings.get(interaction.user.id)
        remixing = None if remix is None else (REMIX_ON if remix else "")
        chosen = (
            ("negative_prompt", negative), ("aspect_ratio", ar), ("style", style), ("voice", voice), ("speed", pace), ("remix", remixing)
        )  # fmt: skip
        changes = {k: v for k, v in chosen if v is not None}
        updated = replace(current, **changes)
        if reset or changes:
            updated = await self.bot.settings.save(interaction.user.id, updated)
        await interaction.followup.send(texts.fit(describe(updated)), ephemeral=True)


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Settings(bot))
