"""Characters in Discord: checking a ``/character train`` request and its photos, reading a ``/character create``
picture, and describing characters (trained, from a picture, or both) for ``/character list`` and ``show``.

Pure and torch-free: the checks use ``storyloom.characters.registry``/``uploads`` (the same rules a training
job applies), so a refusal happens before anything is saved or queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

import discord
from discord import app_commands

from storyloom.bot import texts
from storyloom.bot.pictures import download
from storyloom.characters.photos import check_photo_sizes
from storyloom.characters.references import ReferencePicture, kind_details, kind_label, prepare_reference
from storyloom.characters.uploads import Upload, pack_training_photos
from storyloom.domain.pictures import check_declared_size
from storyloom.errors import InvalidInput
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.character import CharacterRecord

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot

MIN_PHOTOS = 5
MAX_PHOTOS = 30
MAX_LISTED = 50


async def character_names(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete: the characters visible where the command is typed, each marked with its kind."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    records = await bot.store.list_characters(guild_id=interaction.guild_id)
    found = [r for r in records if current.casefold() in r.name.casefold()]
    return [app_commands.Choice(name=f"{r.name} ({kind_label(r)})", value=r.name) for r in found[:25]]


async def read_reference(attachment: discord.Attachment, *, min_side: int) -> ReferencePicture:
    """The attachment as a checked reference picture, or ``InvalidInput`` naming what is wrong with it: the size
    Discord declares first (nothing is downloaded for a file that is too large), then the bytes themselves."""
    check_declared_size(attachment.size, attachment.filename)
    kind = (attachment.content_type or "").split(";")[0].strip()
    if kind and not kind.startswith("image/"):
        raise InvalidInput(f"{attachment.filename} is not a picture ({kind}); attach a PNG, JPEG or WebP picture")
    data = await download(attachment)
    return await asyncio.to_thread(prepare_reference, data, attachment.filename, min_side=min_side)


def check_photos(attachments: Sequence[discord.Attachment], *, how_to_add: str, max_photos: int = MAX_PHOTOS) -> None:
    """``InvalidInput`` when there are too few or too many attachments, one is plainly not a picture, or they are
    too large (by the sizes Discord declares: nothing is downloaded); ``how_to_add`` ends the "too few" message
    (where the photos came from decides how to send more).

    Discord names an attachment's type from its file name; the bytes are checked again when they are saved."""
    if len(attachments) < MIN_PHOTOS:
        raise InvalidInput(
            f"training a character needs at least {MIN_PHOTOS} photos of it (got {len(attachments)}); {how_to_add}"
        )
    if len(attachments) > max_photos:
        raise InvalidInput(f"at most {max_photos} photos can be used for one character (got {len(attachments)})")
    for attachment in attachments:
        kind = (attachment.content_type or "").split(";")[0].strip()
        if kind and not kind.startswith("image/"):
            raise InvalidInput(f"{attachment.filename} is not a picture ({kind}); attach photos only")
    check_photo_sizes([(attachment.filename, attachment.size) for attachment in attachments])


async def store_photos(store: AsyncJobStore, attachments: Sequence[discord.Attachment]) -> str:
    """Download the attachments and store them for a training job, as one file every host can read; returns its
    digest (``InvalidInput``, nothing stored, when one is not a usable picture). Their number and the sizes
    Discord declares are checked before anything is downloaded."""
    if not MIN_PHOTOS <= len(attachments) <= MAX_PHOTOS:
        raise InvalidInput(f"training a character takes {MIN_PHOTOS}–{MAX_PHOTOS} photos (got {len(attachments)})")
    check_photo_sizes([(a.filename, a.size) for a in attachments])
    uploads = [Upload(a.filename, await a.read(), a.description or "") for a in attachments]
    packed = await asyncio.to_thread(pack_training_photos, uploads, min_images=MIN_PHOTOS, max_images=MAX_PHOTOS)
    return await store.put_blob(packed)


def character_kind(record: CharacterRecord, default_weight: float) -> str:
    """Its kind, with the trained token and the picture's weight where they apply."""
    return kind_details(record, default_weight, quote="`")


def character_line(record: CharacterRecord, default_weight: float) -> str:
    """One line of ``/character list``."""
    scope = "" if record.guild_id is not None else " · everywhere"
    return f"• **{texts.quote(record.name, 40)}** — {character_kind(record, default_weight)}{scope}"


def character_list(records: Sequence[CharacterRecord], default_weight: float) -> str:
    if not records:
        return (
            "No characters yet. A server manager can make one from a single picture with `/character create`, or "
            f"train one with `/character train` and {MIN_PHOTOS}–{MAX_PHOTOS} photos."
        )
    listed = (character_line(r, default_weight) for r in records[:MAX_LISTED])
    lines = [f"**Characters** ({len(records)})", *listed]
    if len(records) > MAX_LISTED:
        lines.append(f"… and {len(records) - MAX_LISTED} more")
    lines.append("-# use one with `character:` on /imagine or /story")
    return texts.fit("\n".join(lines))


def character_details(record: CharacterRecord, default_weight: float) -> str:
    """What ``/character show`` says about a character."""
    lines = [f"**{texts.quote(record.name, 40)}** — {character_kind(record, default_weight)}"]
    if record.description:
        lines.append(f"*{texts.quote(record.description, 300)}*")
    who = "from the command line" if record.trained_by == 0 else f"by <@{record.trained_by}>"
    when = f"<t:{int(record.created_at)}:D>"
    made = "trained" if record.has_lora else "made from a picture"
    lines.append(f"{made} {who} on {when}" + (f" (job {record.job_id})" if record.job_id else ""))
    steps = record.metadata.get("steps")
    photos = record.metadata.get("instance_images")
    facts = [f"{photos} photos" if photos else "", f"{steps} steps" if steps else ""]
    if any(facts):
        lines.append("-# " + " · ".join(f for f in facts if f))
    return texts.fit("\n".join(lines))


def training_head(name: str, token: str) -> str:
    """How the status message of a training job names it."""
    return f"🧸 training **{texts.quote(name, 40)}** (`{token}`)"
