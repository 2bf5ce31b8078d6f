"""The bot tests' store: the async store on a bot-only config in tmp_path (``fake`` is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storyloom.queue.async_store import AsyncJobStore
from tests.support.bot import bot_config, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncJobStore]:
    opened = await open_store(bot_config(tmp_path))
    yield opened
    await opened.close()
