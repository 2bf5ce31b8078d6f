"""Queueing a character's training once its photos are in hand, whichever way they came (the command's
attachment options or the photo form): photos → one file in the job store → job. Photos no job refers to are
removed with the store's other unreferenced files (``AsyncJobStore.purge_blobs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord

from storyloom.bot import texts
from storyloom.bot.characters import store_photos, training_head
from storyloom.bot.errors import report
from storyloom.bot.submit import Request, submit
from storyloom.errors import StoryloomError
from storyloom.queue.job import JobKind
from storyloom.queue.params import TrainSubjectParams

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot
    from storyloom.characters.registry import CharacterRequest


async def queue_training(
    bot: StoryloomBot, interaction: discord.Interaction, request: CharacterRequest,
    photos: Sequence[discord.Attachment],
) -> None:  # fmt: skip
    """Store ``photos`` and queue the training; the interaction is already deferred (private "thinking…").

    A photo that is not a usable picture is refused privately with nothing stored."""
    async with bot.in_flight():  # a shutdown lets accepted photos finish queueing
        try:
            digest = await store_photos(bot.store, photos)
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        params = TrainSubjectParams(
            name=request.name, identifier=request.identifier, class_name=request.class_name,
            photos=digest, description=request.description,
        )  # fmt: skip
        head = training_head(request.name, f"{request.identifier} {request.class_name}")
        thread = f"🧸 {texts.shorten(request.name, 90)}" if bot.config.bot.results_in_thread else ""
        accepted = [f"📥 {len(photos)} photos of **{texts.quote(request.name, 40)}** saved; queueing the training"]
        accepted += [f"⚠️ {warning}" for warning in request.warnings]
        await interaction.followup.send(texts.fit("\n".join(accepted)), ephemeral=True)
        await submit(bot, interaction, Request(JobKind.TRAIN_SUBJECT, params, head, thread))
