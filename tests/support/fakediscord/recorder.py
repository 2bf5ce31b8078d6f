"""The log of every REST call the bot made, for tests to assert on.

Requests are recorded with their decoded body (JSON, or multipart ``payload_json`` and the file parts) and the
answer the fake gave, including injected failures, so a test can tell "retried after a 429" from "sent twice".
Headers are never recorded: the Authorization header carries the bot token.
"""

from __future__ import annotations

import fnmatch
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .bodies import UploadedFile


@dataclass
class RecordedCall:
    seq: int
    method: str
    #: Path below the API prefix, e.g. ``/channels/123/messages``.
    path: str
    #: The matched route template, e.g. ``/channels/{channel_id}/messages`` (empty for unknown routes).
    route: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile] = field(default_factory=list)
    status: int = 0
    response: Any = None
    #: True when the answer was a failure injected with ``fail_next``.
    injected: bool = False
    at: float = field(default_factory=time.monotonic)

    def matches(self, method: str | None = None, path: str | re.Pattern[str] | None = None) -> bool:
        """``path`` is a glob on :attr:`path` (``/channels/*/messages``), a route template, or a compiled regex."""
        if method is not None and self.method != method.upper():
            return False
        if path is None:
            return True
        if isinstance(path, re.Pattern):
            return path.search(self.path) is not None
        return fnmatch.fnmatchcase(self.path, path) or path == self.route

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        # Deliberately short: bodies can be large, and nothing secret is ever printed.
        extra = f", {len(self.files)} files" if self.files else ""
        return f"<RecordedCall #{self.seq} {self.method} {self.path} -> {self.status}{extra}>"


class CallLog(list[RecordedCall]):
    """A list of :class:`RecordedCall` with filtering helpers."""

    def filter(self, method: str | None = None, path: str | re.Pattern[str] | None = None) -> list[RecordedCall]:
        return [c for c in self if c.matches(method, path)]

    def successful(self, method: str | None = None, path: str | re.Pattern[str] | None = None) -> list[RecordedCall]:
        return [c for c in self.filter(method, path) if c.ok]
