"""Time-based snowflake IDs, the way Discord mints them.

discord.py derives timestamps from IDs (``created_at``, and an interaction's ``expires_at``), so IDs must encode
the real current time or the client believes an interaction expired long ago.
"""

from __future__ import annotations

import time
from collections.abc import Callable

DISCORD_EPOCH_MS = 1_420_070_400_000  # 2015-01-01T00:00:00Z


def snowflake_time_ms(snowflake: int | str) -> int:
    """Unix time in milliseconds encoded in ``snowflake``."""
    return (int(snowflake) >> 22) + DISCORD_EPOCH_MS


class SnowflakeFactory:
    """Mints unique, increasing snowflakes for the current time.

    The low 22 bits carry a counter so that many IDs minted within the same millisecond stay unique and ordered.
    """

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or time.time
        self._last = 0

    def next(self) -> int:
        """A new snowflake, strictly greater than every one minted before."""
        candidate = (int(self._clock() * 1000) - DISCORD_EPOCH_MS) << 22
        if candidate <= self._last:
            candidate = self._last + 1
        self._last = candidate
        return candidate

    def next_str(self) -> str:
        """A new snowflake as Discord sends it on the wire: a decimal string."""
        return str(self.next())
