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
    """Replaces secrets (the bot token) in log records, whatever logged them."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        text = message + (record.exc_text or "")
        if any(secret in text for secret in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, "<redacted>")
                if record.exc_text:
                    record.exc_text = record.exc_text.replace(secret, "<redacted>")
            record.msg, record.args = message, None
        return True


def install_redaction(token: str, logger_: logging.Logger | None = None) -> RedactSecrets:
    """Put ``RedactSecrets`` on every handler of ``logger_`` (the root logger by default)."""
    redact = RedactSecrets([token])
    for handler in (logger_ or logging.getLogger()).handlers:
        handler.addFilter(redact)
    return redact
