"""Discord's JSON error answers.

discord.py turns these into ``NotFound``/``Forbidden``/``HTTPException`` with ``.code`` set, which is what bot
code branches on (for example ``code == 10008`` for a message a user deleted).
"""

from __future__ import annotations

from typing import Any


class DiscordError(Exception):
    """Raised inside a route handler to answer with Discord's error shape ``{"code", "message"}``."""

    def __init__(self, status: int, code: int, message: str, errors: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            data["errors"] = self.errors
        return data


def unauthorized() -> DiscordError:
    return DiscordError(401, 0, "401: Unauthorized")


def not_found_route() -> DiscordError:
    return DiscordError(404, 0, "404: Not Found")


def unknown_channel() -> DiscordError:
    return DiscordError(404, 10003, "Unknown Channel")


def unknown_guild() -> DiscordError:
    return DiscordError(404, 10004, "Unknown Guild")


def unknown_member() -> DiscordError:
    return DiscordError(404, 10007, "Unknown Member")


def unknown_message() -> DiscordError:
    return DiscordError(404, 10008, "Unknown Message")


def unknown_user() -> DiscordError:
    return DiscordError(404, 10013, "Unknown User")


def unknown_webhook() -> DiscordError:
    return DiscordError(404, 10015, "Unknown Webhook")


def unknown_command() -> DiscordError:
    return DiscordError(404, 10063, "Unknown application command")


def unknown_interaction() -> DiscordError:
    return DiscordError(404, 10062, "Unknown interaction")


def already_acknowledged() -> DiscordError:
    return DiscordError(400, 40060, "Interaction has already been acknowledged.")


def invalid_webhook_token() -> DiscordError:
    return DiscordError(401, 50027, "Invalid Webhook Token")


def missing_permissions() -> DiscordError:
    return DiscordError(403, 50013, "Missing Permissions")


def thread_archived() -> DiscordError:
    return DiscordError(400, 50083, "Thread is archived")


def wrong_channel_type() -> DiscordError:
    return DiscordError(400, 50024, "Cannot execute action on this channel type")


def empty_message() -> DiscordError:
    return DiscordError(400, 50006, "Cannot send an empty message")


def entity_too_large() -> DiscordError:
    return DiscordError(413, 40005, "Request entity too large")


def invalid_form_body(path: str, code: str, message: str) -> DiscordError:
    """50035 with a nested ``errors`` tree, as Discord reports a bad field (``path`` is dotted, e.g. ``content``)."""
    tree: dict[str, Any] = {"_errors": [{"code": code, "message": message}]}
    for part in reversed(path.split(".")):
        tree = {part: tree}
    return DiscordError(400, 50035, "Invalid Form Body", tree)
