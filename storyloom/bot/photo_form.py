"""The photo form of ``/character train``: up to 30 photos in three upload fields, where the command itself
has room for only 21 attachment options.

The form lives only while the user has it open (15 minutes, and not across a restart: Discord then says the
form failed). On submit the name is checked again, as someone may have taken it meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord

from storyloom.bot import texts
from storyloom.bot.character_training import queue_training
from storyloom.bot.characters import MAX_PHOTOS, MIN_PHOTOS, check_photos
from storyloom.bot.commands.cancel import is_manager
from storyloom.bot.errors import JobFailure, report
from storyloom.errors import StoryloomError

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot
    from storyloom.characters.registry import CharacterRequest

FILES_PER_FIELD = 10  # Discord's limit for one upload field
MAX_TITLE = 45  # Discord's limit for a form title
FORM_TIMEOUT = 15 * 60


class PhotoForm(discord.ui.Modal):
    def __init__(self, request: CharacterRequest) -> None:
        title = f"Photos of {texts.shorten(request.name, MAX_TITLE - len('Photos of '))}"
        super().__init__(title=title, timeout=FORM_TIMEOUT)
        self.request = request
        self.add_item(discord.ui.TextDisplay(
            f"Clear, well-lit photos of just {texts.quote(request.name, 40)}: different angles, poses and "
            f"backgrounds. {MIN_PHOTOS}–{MAX_PHOTOS} photos in all."
        ))  # fmt: skip
        self.fields: list[discord.ui.FileUpload] = []
        for first in range(1, MAX_PHOTOS + 1, FILES_PER_FIELD):
            last = min(first + FILES_PER_FIELD - 1, MAX_PHOTOS)
            needed = first == 1  # the first field carries the minimum; the others add more if wanted
            upload: discord.ui.FileUpload[PhotoForm] = discord.ui.FileUpload(
                custom_id=f"photos_{first}_{last}", required=needed,
                min_values=MIN_PHOTOS if needed else 1, max_values=last - first + 1,
            )  # fmt: skip
            description = f"at least {MIN_PHOTOS}" if needed else "optional: more photos help"
            self.add_item(discord.ui.Label(text=f"Photos {first}–{last}", description=description, component=upload))
            self.fields.append(upload)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot: StoryloomBot = interaction.client  # type: ignore[assignment]
        await interaction.response.defer(ephemeral=True, thinking=True)
        photos = [photo for upload in self.fields for photo in upload.values]
        try:  # things may have changed while the form was open
            if not is_manager(interaction):
                raise JobFailure("only server managers can train characters")
            await bot.store.check_character_name(self.request.name, guild_id=interaction.guild_id)
            check_photos(photos, how_to_add=f"put at least {MIN_PHOTOS} in the first field")
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        await queue_training(bot, interaction, self.request, photos)

    # discord.py's Modal.on_error has no ``item`` argument, unlike the BaseView.on_error it overrides.
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await report(interaction, error)
