"""``/character``: list, show, create from one picture, train (from photo attachments or a photo form), give a
picture to, and delete characters. Creating and training are for server managers; deleting and changing a
character's picture for them and whoever made it.

Giving an existing character a picture is its own command (``/character reference``) rather than ``create`` with
a taken name: ``create`` then always means a new character, so a typo or another member's character of the same
name is refused ("already exists") instead of quietly changed, and ``reference`` autocompletes the names that
exist and says what happens to them."""

from __future__ import annotations

import asyncio
import io
from typing import TYPE_CHECKING, Optional

import discord
from discord import app_commands
from discord.ext import commands

from storyloom.bot import texts
from storyloom.bot.character_training import queue_training
from storyloom.bot.characters import (
    MAX_PHOTOS,
    MIN_PHOTOS,
    character_details,
    character_kind,
    character_list,
    character_names,
    check_photos,
    read_reference,
)
from storyloom.bot.commands.cancel import is_manager
from storyloom.bot.errors import JobFailure, report
from storyloom.bot.photo_form import PhotoForm
from storyloom.characters.references import check_reference_request, reference_character
from storyloom.characters.registry import check_character_request, remove_character_files
from storyloom.errors import StoryloomError
from storyloom.queue.character import CharacterExists, CharacterRecord

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

PHOTO_OPTIONS = 21  # Discord allows 25 options per command: name, token, class, description and 21 photos
ATTACH_MORE = f"attach {MIN_PHOTOS} or more, or leave the photo options out to upload up to {MAX_PHOTOS} in a form"
Photo = Optional[discord.Attachment]
Weight = Optional[app_commands.Range[float, 0.0, 1.0]]


class Characters(commands.GroupCog, group_name="character", group_description="Characters (pets, toys, drawings…)"):
    def __init__(self, bot: StoryloomBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="list")
    async def list_(self, interaction: discord.Interaction) -> None:
        """The characters that can star in /imagine and /story here."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        records = await self.bot.store.list_characters(guild_id=interaction.guild_id)
        await interaction.followup.send(
            character_list(records, self.bot.config.characters.reference_weight), ephemeral=True
        )

    @app_commands.command()
    @app_commands.describe(name="the character's name")
    @app_commands.autocomplete(name=character_names)
    async def show(self, interaction: discord.Interaction, name: str) -> None:
        """A character's kind, description and preview picture."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            record = await self.bot.store.character(name, guild_id=interaction.guild_id)
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        files = [discord.File(io.BytesIO(record.preview), "preview.jpg")] if record.preview else []
        details = character_details(record, self.bot.config.characters.reference_weight)
        await interaction.followup.send(details, files=files, ephemeral=True)

    @app_commands.command()
    @app_commands.describe(
        name="what stories call the character, e.g. Pip",
        picture="one picture of it: a drawing, a toy, a pet",
        description="a few words about it for the story writer, e.g. a small red dragon",
        weight="how strongly the picture guides drawings, 0-1 (default: the server's setting)",
    )
    async def create(
        self,
        interaction: discord.Interaction,
        name: str,
        picture: discord.Attachment,
        description: Optional[str] = None,
        weight: Weight = None,
    ) -> None:
        """Make a character from one picture, in seconds (server managers)."""
        bot = self.bot
        try:  # cheap checks first, so a refusal is private and nothing is downloaded or stored
            if not is_manager(interaction):
                raise JobFailure("only server managers can create characters")
            request = check_reference_request(name, description or "", weight)
            try:
                await bot.store.check_character_name(request.name, guild_id=interaction.guild_id)
            except CharacterExists:
                taken = await bot.store.find_character(request.name, guild_id=interaction.guild_id)
                if taken is None:  # reserved by a training still running: the store's message says so
                    raise
                raise CharacterExists(
                    f"a character named {taken.name!r} already exists: choose another name, or give it this picture "
                    "with /character reference"
                ) from None
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            reference = await read_reference(picture, min_side=bot.config.characters.reference_min_side)
            digest = await bot.store.put_blob(reference.png)
            new = reference_character(
                request, digest, reference.preview, created_by=interaction.user.id, guild_id=interaction.guild_id
            )
            record = await bot.store.add_character(new)
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        preview = discord.File(io.BytesIO(reference.preview), "preview.jpg")
        await interaction.followup.send(self._ready(record, "is ready"), file=preview, ephemeral=True)

    @app_commands.command()
    @app_commands.describe(
        name="the character to give the picture to",
        picture="one picture of it: a drawing, a toy, a pet",
        weight="how strongly the picture guides drawings, 0-1 (default: the server's setting)",
    )
    @app_commands.autocomplete(name=character_names)
    async def reference(
        self, interaction: discord.Interaction, name: str, picture: discord.Attachment, weight: Weight = None
    ) -> None:
        """Give a character (a trained one too) a reference picture, or a new one (managers, or its maker)."""
        bot = self.bot
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            record = await self._own_character(interaction, name, "change")
            request = check_reference_request(record.name, record.description, weight)
            reference = await read_reference(picture, min_side=bot.config.characters.reference_min_side)
            digest = await bot.store.put_blob(reference.png)
            record = await bot.store.set_character_reference(
                record.name,
                digest,
                guild_id=interaction.guild_id,
                weight=request.weight,
                # a trained character keeps the preview of its training's samples
                preview=None if record.has_lora else reference.preview,
            )
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        both = " (with its training: both are used)" if record.has_lora else ""
        preview = discord.File(io.BytesIO(reference.preview), "reference.jpg")
        await interaction.followup.send(self._ready(record, f"has a new picture{both}"), file=preview, ephemeral=True)

    def _ready(self, record: CharacterRecord, what: str) -> str:
        name = texts.quote(record.name, 40)
        kind = character_kind(record, self.bot.config.characters.reference_weight)
        return (
            f"✅ **{name}** {what} — {kind}.\n"
            f"Use it: `/imagine prompt: {name} in a garden character: {name}` or `/story character: {name}`"
        )

    async def _own_character(self, interaction: discord.Interaction, name: str, verb: str) -> CharacterRecord:
        """The guild's own character ``name``, if the user may ``verb`` it: server managers, or whoever made it."""
        record = await self.bot.store.character(name, guild_id=interaction.guild_id)
        if record.guild_id is None or record.guild_id != interaction.guild_id:
            raise JobFailure(f"{record.name} was registered on the command line; {verb} it there")
        if not (is_manager(interaction) or record.trained_by == interaction.user.id):
            raise JobFailure(f"only server managers or whoever made {record.name} can {verb} it")
        return record

    @app_commands.command()
    @app_commands.describe(
        name="what stories call the character, e.g. Biscuit",
        token="a made-up word the image model learns for it, e.g. bhna",
        class_="what it is, e.g. cat, dog or teddy bear",
        description="a few words about it for the story writer",
    )
    @app_commands.rename(class_="class")
    async def train(
        self, interaction: discord.Interaction, name: str, token: str, class_: str,
        description: Optional[str] = None,
        photo1: Photo = None, photo2: Photo = None, photo3: Photo = None, photo4: Photo = None,
        photo5: Photo = None, photo6: Photo = None, photo7: Photo = None, photo8: Photo = None,
        photo9: Photo = None, photo10: Photo = None, photo11: Photo = None, photo12: Photo = None,
        photo13: Photo = None, photo14: Photo = None, photo15: Photo = None, photo16: Photo = None,
        photo17: Photo = None, photo18: Photo = None, photo19: Photo = None, photo20: Photo = None,
        photo21: Photo = None,
    ) -> None:  # fmt: skip
        """Train a character from 5–30 photos of it (server managers)."""
        bot = self.bot
        photos = [p for p in (
            photo1, photo2, photo3, photo4, photo5, photo6, photo7, photo8, photo9, photo10, photo11, photo12,
            photo13, photo14, photo15, photo16, photo17, photo18, photo19, photo20, photo21,
        ) if p is not None]  # fmt: skip
        try:  # cheap checks first, so a refusal is private and nothing is saved or queued
            if not is_manager(interaction):
                raise JobFailure("only server managers can train characters")
            request = check_character_request(name, token, class_, description or "")
            if photos:
                check_photos(photos, how_to_add=ATTACH_MORE, max_photos=min(MAX_PHOTOS, PHOTO_OPTIONS))
            # taken, or already being trained: refused before any photo is saved
            await bot.store.check_character_name(request.name, guild_id=interaction.guild_id)
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        if not photos:  # no attachments: a form with room for all 30
            await interaction.response.send_modal(PhotoForm(request))
            return
        # Private "thinking…" while the photos download: a file that only looks like a picture is still
        # refused privately; the public status message follows once the job is queued.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await queue_training(bot, interaction, request, photos)

    @app_commands.command()
    @app_commands.describe(name="the character to delete")
    @app_commands.autocomplete(name=character_names)
    async def delete(self, interaction: discord.Interaction, name: str) -> None:
        """Delete a character (server managers, or whoever made it)."""
        bot = self.bot
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            record = await self._own_character(interaction, name, "delete")
            # its stored LoRA and picture go with the row: nothing refers to them any more
            deleted = await bot.store.delete_character(record.name, guild_id=interaction.guild_id)
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        from storyloom.characters.cleanup import sweep_async

        data_dir = bot.config.paths.data_dir
        if deleted.has_lora:
            await asyncio.to_thread(remove_character_files, deleted, data_dir)
        # With the last character of its class gone, that class's images may go too (once unused for a while).
        await sweep_async(bot.store, data_dir, retention_days=bot.config.queue.retention_days)
        await interaction.followup.send(f"🗑️ Deleted **{texts.quote(deleted.name, 40)}**.", ephemeral=True)


async def setup(bot: StoryloomBot) -> None:
    await bot.add_cog(Characters(bot))
