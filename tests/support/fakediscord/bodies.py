"""Reading request bodies: JSON, or multipart ``payload_json`` plus ``files[N]`` parts.

Both shapes are parsed into one :class:`ParsedBody` so handlers and the call log never care how a request was
encoded, while the raw part metadata (filename, part content type, bytes) is kept for tests to assert on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import errors

_FILE_FIELD = re.compile(r"^files\[(\d+)\]$")


@dataclass(frozen=True)
class UploadedFile:
    """One multipart file part exactly as it arrived."""

    field_name: str
    index: int
    filename: str
    data: bytes
    content_type: str | None

    def __repr__(self) -> str:  # bytes can be large; keep reprs readable
        return f"UploadedFile({self.field_name!r}, {self.filename!r}, {len(self.data)} bytes, {self.content_type!r})"


@dataclass
class ParsedBody:
    json: Any = None
    files: list[UploadedFile] = field(default_factory=list)
    multipart: bool = False

    def file(self, index: int) -> UploadedFile | None:
        return next((f for f in self.files if f.index == index), None)


async def parse_body(request: web.Request) -> ParsedBody:
    """Parse a request body; malformed JSON answers 400 50109 the way Discord does."""
    if request.content_type.startswith("multipart/"):
        return await _parse_multipart(request)
    raw = await request.read()
    if not raw:
        return ParsedBody()
    try:
        return ParsedBody(json=json.loads(raw))
    except ValueError:
        raise errors.DiscordError(400, 50109, "The request body contains invalid JSON.") from None


async def _parse_multipart(request: web.Request) -> ParsedBody:
    body = ParsedBody(multipart=True)
    reader = await request.multipart()
    position = 0
    while True:
        part = await reader.next()
        if part is None:
            break
        name = part.name or ""
        data = await part.read(decode=False)
        if name == "payload_json":
            try:
                body.json = json.loads(data)
            except ValueError:
                raise errors.DiscordError(400, 50109, "The request body contains invalid JSON.") from None
            continue
        match = _FILE_FIELD.match(name)
        index = int(match.group(1)) if match else position
        position += 1
        body.files.append(
            UploadedFile(
                field_name=name,
                index=index,
                filename=part.filename or name,
                data=bytes(data),
                content_type=part.headers.get("Content-Type"),
            )
        )
    return body
