"""Registered application commands (what ``tree.sync()`` uploaded).

Remembering the synced schema lets the fake build interactions the way the Discord client does: only for
commands that exist, with typed options, and with choices and ranges enforced before anything reaches the bot.
"""

from __future__ import annotations

import copy
from typing import Any

from . import errors
from .snowflakes import SnowflakeFactory


class CommandStore:
    def __init__(self, ids: SnowflakeFactory, application_id: int) -> None:
        self._ids = ids
        self._application_id = application_id
        # (guild_id or None) -> name/type key -> command payload
        self._scopes: dict[int | None, dict[tuple[str, int], dict[str, Any]]] = {}
        #: How many times each scope was bulk-overwritten (``tree.sync()`` calls), keyed by guild ID or None.
        self.sync_count: dict[int | None, int] = {}

    def bulk_overwrite(self, guild_id: int | None, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """PUT semantics: the given list replaces the scope; unchanged names keep their IDs."""
        if not isinstance(commands, list):
            raise errors.invalid_form_body("_", "BASE_TYPE_ARRAY", "Expected a list of commands.")
        old = self._scopes.get(guild_id, {})
        new: dict[tuple[str, int], dict[str, Any]] = {}
        for body in commands:
            command = self._normalise(body, guild_id, old)
            key = (command["name"], command["type"])
            if key in new:
                raise errors.invalid_form_body("_", "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Duplicate name {key[0]}")
            new[key] = command
        self._scopes[guild_id] = new
        self.sync_count[guild_id] = self.sync_count.get(guild_id, 0) + 1
        return [copy.deepcopy(c) for c in new.values()]

    def upsert(self, guild_id: int | None, body: dict[str, Any]) -> dict[str, Any]:
        scope = self._scopes.setdefault(guild_id, {})
        command = self._normalise(body, guild_id, scope)
        scope[(command["name"], command["type"])] = command
        return copy.deepcopy(command)

    def edit(self, guild_id: int | None, command_id: int, body: dict[str, Any]) -> dict[str, Any]:
        command = self.get(guild_id, command_id)
        merged = {**command, **body}
        scope = self._scopes[guild_id]
        scope.pop((command["name"], command["type"]))
        updated = self._normalise(merged, guild_id, {})
        updated["id"] = command["id"]
        scope[(updated["name"], updated["type"])] = updated
        return copy.deepcopy(updated)

    def delete(self, guild_id: int | None, command_id: int) -> None:
        command = self.get(guild_id, command_id)
        self._scopes[guild_id].pop((command["name"], command["type"]))

    def get(self, guild_id: int | None, command_id: int) -> dict[str, Any]:
        for command in self._scopes.get(guild_id, {}).values():
            if int(command["id"]) == command_id:
                return command
        raise errors.unknown_command()

    def list(self, guild_id: int | None) -> list[dict[str, Any]]:
        return [copy.deepcopy(c) for c in self._scopes.get(guild_id, {}).values()]

    def all(self) -> list[dict[str, Any]]:
        """Every registered command, global and guild, as Discord stores them."""
        return [copy.deepcopy(c) for scope in self._scopes.values() for c in scope.values()]

    def find(self, name: str, guild_id: int | None, type: int = 1) -> dict[str, Any] | None:
        """The command a user in ``guild_id`` sees under ``name``: guild commands shadow global ones."""
        if guild_id is not None:
            command = self._scopes.get(guild_id, {}).get((name, type))
            if command is not None:
                return command
        return self._scopes.get(None, {}).get((name, type))

    def _normalise(
        self, body: dict[str, Any], guild_id: int | None, previous: dict[tuple[str, int], dict[str, Any]]
    ) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name) <= 32:
            raise errors.invalid_form_body("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 32 in length.")
        type_ = int(body.get("type", 1))
        if type_ == 1 and not 1 <= len(body.get("description") or "") <= 100:
            raise errors.invalid_form_body(
                "description", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length."
            )
        before = previous.get((name, type_))
        command = copy.deepcopy(body)
        command.update(
            id=before["id"] if before else self._ids.next_str(),
            application_id=str(self._application_id),
            version=self._ids.next_str(),
            type=type_,
            description=body.get("description", ""),
            default_member_permissions=body.get("default_member_permissions"),
            nsfw=bool(body.get("nsfw", False)),
        )
        command.setdefault("contexts", None)
        command.setdefault("integration_types", [0])
        if guild_id is not None:
            command["guild_id"] = str(guild_id)
        else:
            command.pop("guild_id", None)
        return command
