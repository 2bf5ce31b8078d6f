"""The bot's background rounds that repeat on a timer until the bot stops (live progress, store maintenance)."""

from __future__ import annotations

import asyncio
import logging

from storyloom.errors import StoryloomError

logger = logging.getLogger(__name__)


class PeriodicLoop:
    """``run`` calls ``run_once`` every ``interval`` seconds until ``stop``; a round in hand always finishes (it is
    never cancelled halfway through a store call). An ``expected`` error (a busy or full store, say) is one warning
    line; anything else is logged with its traceback; either way the next round comes."""

    expected: tuple[type[Exception], ...] = (StoryloomError,)
    skipped = "round skipped"  # the warning's words before the error's message
    failed = "round failed"

    def __init__(self, interval: float) -> None:
        self._interval = interval
        self._stop = asyncio.Event()

    def stop(self) -> None:
        """Return from ``run`` after the round in hand."""
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except self.expected as exc:
                logger.warning("%s: %s", self.skipped, exc)
            except Exception:
                logger.exception(self.failed)
            try:
                await asyncio.wait_for(self._stop.wait(), self._interval)
            except TimeoutError:
                pass

    async def run_once(self) -> object:
        raise NotImplementedError
