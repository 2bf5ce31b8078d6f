"""Pictures attached to a command (/imagine's image, /blend, /describe): checked and read before anything is
queued, so a bad one is one private line and no job.

The size the upload declares is checked before downloading; the bytes are then checked by the same rule the
worker applies (``domain.pictures``: type, bytes, pixel count from the header, still, not tiny), off the
event loop because decoding a large picture takes a moment. The pictures travel to the worker inside the
job store, never as a path on the bot's disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import discord

from storyloom.domain.pictures import check_declared_size, check_picture
from storyloom.errors import InvalidInput
from storyloom.queue.job import JobInput


async def read_pictures(attachments: Sequence[discord.Attachment]) -> tuple[JobInput, ...]:
    """The attachments as checked job inputs, in order, or ``InvalidInput`` naming the first bad one."""
    for attachment in attachments:  # every declared size first: nothing is downloaded for a doomed request
        check_declared_size(attachment.size, attachment.filename)
    inputs = []
    for index, attachment in enumerate(attachments):
        data = await download(attachment)
        info = await asyncio.to_thread(check_picture, data, attachment.filename)
        inputs.append(JobInput(index, attachment.filename, info.mime, data))
    return tuple(inputs)


async def download(attachment: discord.Attachment) -> bytes:
    """The attachment's bytes, or ``InvalidInput`` asking for it again when Discord does not give them."""
    try:
        return await attachment.read()
    except discord.HTTPException as exc:  # NotFound among them
        raise InvalidInput(f"{attachment.filename} could not be downloaded ({exc.status}); attach it again") from None
