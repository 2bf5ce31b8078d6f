"""Queueing a character's training once its photos are in hand, whichever way they came (the command's
attachment options or the photo form): photos → saved folder → job, and the photos removed again when no job
was queued.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import discord

from storyloom.bot import texts
from storyloom.bot.characters import save_photos, training_head
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
    """Save ``photos`` and queue the training; the interaction is already deferred (private "thinking…").

    A photo that is not a usable picture is refused privately with nothing saved; if the job is then not
    queued (the queue refused it, or posting its status failed) the saved photos are removed again."""
    async with bot.in_flight():  # a shutdown lets accepted photos finish queueing
        data_dir = bot.config.paths.data_dir
        try:
            folder = await save_photos(data_dir, photos)
        except StoryloomError as exc:
            await report(interaction, exc)
            return
        queued = None
        try:
            params = TrainSubjectParams(
                name=request.name, identifier=request.identifier, class_name=request.class_name,
                images_dir=folder, description=request.description,
            )  # fmt: skip
            head = training_head(request.name, f"{request.identifier} {request.class_name}")
            thread = f"🧸 {texts.shorten(request.name, 90)}" if bot.config.bot.results_in_thread else ""
            accepted = [f"📥 {len(photos)} photos of **{texts.quote(request.name, 40)}** saved; queueing the training"]
            accepted += [f"⚠️ {warning}" for warning in request.warnings]
            await interaction.followup.send(texts.fit("\n".join(accepted)), ephemeral=True)
            queued = await submit(bot, interaction, Request(JobKind.TRAIN_SUBJECT, params, head, thread))
        finally:
            if queued is None:  # no job will ever read them
                await asyncio.to_thread(_discard, data_dir / folder)


def _discard(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
