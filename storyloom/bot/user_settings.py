"""A user's defaults for /imagine and /story (negative prompt, aspect ratio, story style), kept in the store.

Defaults fill only what a command leaves out; an explicit option always wins. They are validated when saved
(``/settings``), so applying them later cannot fail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from storyloom.queue.async_store import AsyncJobStore

FIELDS = ("negative_prompt", "aspect_ratio", "style", "voice", "speed", "remix")
REMIX_ON = "on"


@dataclass(frozen=True)
class UserDefaults:
    negative_prompt: str = ""
    aspect_ratio: str = ""
    style: str = ""
    voice: str = ""  # the narration voice of 🔊, 🎧, 🎬 and /story narrate:True
    speed: str = ""  # and how fast it reads ("0.8"; checked when saved)
    remix: str = ""  # "on": V1–V4, 🔄, Vary and ✅ Redraw open a form to change the prompt first

    @property
    def remixing(self) -> bool:
        return self.remix == REMIX_ON

    @property
    def pace(self) -> float | None:
        """The narration speed, or None for the server's."""
        try:
            return float(self.speed) if self.speed else None
        except ValueError:
            return None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> UserDefaults:
        return cls(**{name: str(values.get(name) or "") for name in FIELDS})

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    @property
    def empty(self) -> bool:
        return not any(self.as_dict().values())


class UserSettings:
    """Reads and writes a user's defaults through the store (``user_settings`` / ``save_user_settings``)."""

    def __init__(self, store: AsyncJobStore) -> None:
        self._store = store

    async def get(self, user_id: int) -> UserDefaults:
        return UserDefaults.from_mapping(await self._store.user_settings(user_id))

    async def save(self, user_id: int, defaults: UserDefaults) -> UserDefaults:
        return UserDefaults.from_mapping(await self._store.save_user_settings(user_id, defaults.as_dict()))
