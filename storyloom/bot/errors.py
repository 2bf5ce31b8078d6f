"""One way to fail in front of a user: a short line (with the job ID when there is one), the rest in the log.

``StoryloomError`` messages are written to be shown as they are; anything else is a bug, logged with its
traceback and shown as a generic line. The bot token never reaches the log: nothing here formats it, and
``RedactSecrets`` scrubs it from every record as a second line of defence.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import discord
from discord import app_commands

from storyloom.errors import StoryloomError

logger = logging.getLogger(__name__)

MAX_LINE = 300


class JobFailure(StoryloomError):
    """A user-facing error about a particular job."""

    def __init__(self, message: str, job_id: int | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


def user_line(error: BaseException, job_id: int | None = None) -> str:
    """The one line a user sees for ``error``."""
    job_id = job_id if job_id is not None else getattr(error, "job_id", None)
    if isinstance(error, StoryloomError):
        text = " ".join(str(error).split()) or type(error).__name__
    else:
        text = "something went wrong on our side; it has been logged"
    if len(text) > MAX_LINE:
        text = text[: MAX_LINE - 1] + "…"
    return f"⚠️ {text}" + (f" (job {job_id})" if job_id else "")


def unwrap(error: BaseException) -> BaseException:
    """The exception a command raised, without discord.py's wrapper."""
    while isinstance(error, app_commands.CommandInvokeError):
        error = error.original
    return error


async def report(interaction: discord.Interaction, error: BaseException, *, job_id: int | None = None) -> None:
    """Log ``error`` and tell the user in one line; never raises."""
    error = unwrap(error)
    where = _describe(interaction)
    if isinstance(error, (StoryloomError, app_commands.CheckFailure, app_commands.TransformerError)):
        logger.info("%s refused: %s", where, error)
        line = user_line(error, job_id) if isinstance(error, StoryloomError) else f"⚠️ {error}"
    else:
        logger.error("%s failed", where, exc_info=(type(error), error, error.__traceback__))
        line = user_line(error, job_id)
    try:
        if interaction.response.is_done():
            await interaction.followup.send(line, ephemeral=True)
        else:
            await interaction.response.send_message(line, ephemeral=True)
    except discord.HTTPException as exc:
        logger.warning("could not tell the user about the failure of %s (%s)", where, exc.status)


def _describe(interaction: discord.Interaction) -> str:
    command = interaction.command.qualified_name if interaction.command else None
    custom_id = (interaction.data or {}).get("custom_id") if interaction.data else None
    what = f"/{command}" if command else f"button {custom_id}" if custom_id else "interaction"
    return f"{what} by user {interaction.user.id}"


class StoryloomTree(app_commands.CommandTree):
    """The command tree with the bot's single ``on_error``."""

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        await report(interaction, error)


class RedactSecrets(logging.Filter):
    """Replaces secrets (the bot token) in log records, whatever logged them: the message, the traceback and
    the stack. ``exc_text`` is only filled when a handler formats the record, so the traceback is formatted and
    scrubbed here; ``RedactingFormatter`` scrubs each handler's finished line as well."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "<redacted>")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            message = str(record.msg)
        if any(secret in message for secret in self._secrets):
            record.msg, record.args = self.redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class RedactingFormatter(logging.Formatter):
    """Wraps a handler's formatter and scrubs the secrets from every line it produces."""

    def __init__(self, inner: logging.Formatter | None, redact: RedactSecrets) -> None:
        super().__init__()
        self._inner = inner or logging.Formatter()
        self._redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self._redact.redact(self._inner.format(record))


_TRACEBACKS = logging.Formatter()


def install_redaction(token: str, logger_: logging.Logger | None = None) -> RedactSecrets:
    """Scrub ``token`` from every record and every formatted line of each handler of ``logger_`` (the root
    logger by default)."""
    redact = RedactSecrets([token])
    for handler in (logger_ or logging.getLogger()).handlers:
        handler.addFilter(redact)
        if not isinstance(handler.formatter, RedactingFormatter):
            handler.setFormatter(RedactingFormatter(handler.formatter, redact))
    return redact
