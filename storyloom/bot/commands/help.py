"""``/help``: what the bot can do, in one screen."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

HELP = """\
**/imagine** `prompt` — four pictures as a grid. Options: `negative` (what to leave out), `ar` (16:9, 2:3 …), \
`seed` (same number, same pictures), `steps`, `character`, `image` (a picture to follow; `image_as:start` draws over it). Emphasis works as in AUTOMATIC1111: `((word))`, `(word:1.3)`, `[word]`.
**/blend** 2–5 pictures mixed into four. **/describe** `image` — four prompts for a picture; a number draws one.
Under the grid: **U1–U4** upscale a picture, **V1–V4** make variations of it, **🔄** draws the prompt again. \
Under an upscaled picture: **Vary (Subtle)**, **Vary (Strong)**, **🖌️ Vary (Region)** (redraw one part), **Zoom Out**, **⬅️ ➡️ ⬆️ ⬇️**, **4× Real-ESRGAN**. **✉️** sends you a copy, **❌** deletes your result.
**/story** `summary` — a children's story, written and illustrated page by page in a thread named after it, \
opening with its cast card, then the whole book as a PDF. Options: `pages`, `style`, `character`–`character3`, \
`consistent`, `narrate` (read each page aloud), `voice`. Under each page: **🔁 Redraw**, **✏️ Edit**, **⬆️ Upscale**, **🔊** (read it aloud), **🖌️ Fix part of this page**; under the book: **➕ Continue** for the next \
chapter, **🎧 Audiobook** and **🎬 Video** (the pages read aloud, as one file).
**/queue** — your jobs and when they should be done. **/cancel** `[job]` — stop one.
**/settings** — your defaults (negative prompt, aspect ratio, story style, narration voice and speed), and `remix` to change the prompt before V1–V4, 🔄, Vary and ✅ Redraw draw.
**/character** `list` · `show` — the characters (pets, toys, drawings…) to use with `character:`. Server managers: `create` `name` `picture` — a character from one picture, ready at once; `train` `name` `token` `class` with 5–21 photos attached, or none to upload 5–30 in a form; `reference` (a picture for a character, trained ones too) and `delete` (also whoever made it).
Anyone can press any button; the new pictures are theirs."""


class Help(commands.Cog):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot

    @app_commands.command(name="help")
    async def show_help(self, interaction: discord.Interaction) -> None:
        """What this bot can do."""
        await interaction.response.send_message(HELP, ephemeral=True)


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Help(bot))
