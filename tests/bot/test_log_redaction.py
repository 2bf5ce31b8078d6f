"""The bot token never reaches a log line: not in messages, not in tracebacks, not in stack traces, whatever
formatter a handler uses."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from storyloom.bot.errors import install_redaction

TOKEN = "MTIzNDU2Nzg5.GhIjKl.secret-token-of-the-bot"


@pytest.fixture
def logged() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing to a buffer with an ordinary formatter, redaction installed as the bot does."""
    logger = logging.getLogger("storyloom.tests.redaction")
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.propagate = False
    install_redaction(TOKEN, logger)
    try:
        yield logger, buffer
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def fail_with_the_token() -> None:
    raise RuntimeError(f"Discord said no to Bot {TOKEN}")


def test_a_logged_exception_containing_the_token_is_redacted(logged) -> None:
    logger, buffer = logged
    try:
        fail_with_the_token()
    except RuntimeError:
        logger.exception("posting failed")
    try:
        fail_with_the_token()
    except RuntimeError as exc:
        logger.error("again: %s", exc, exc_info=True, stack_info=True)
    text = buffer.getvalue()
    assert TOKEN not in text
    assert text.count("Traceback (most recent call last)") == 2 and "fail_with_the_token" in text  # still useful
    assert text.count("Discord said no to Bot <redacted>") >= 3 and "Stack (most recent call last)" in text


def test_every_formatted_line_is_redacted_even_when_the_record_is_built_by_hand(logged) -> None:
    logger, buffer = logged
    record = logger.makeRecord(logger.name, logging.WARNING, __file__, 1, "%s", (f"token={TOKEN}",), None)
    record.exc_text = f"a traceback someone formatted earlier, with {TOKEN}"
    logger.handle(record)
    assert TOKEN not in buffer.getvalue() and "<redacted>" in buffer.getvalue()
