"""Building INTERACTION_CREATE payloads the way the Discord client would, and remembering each interaction.

Slash commands are built from the schema the bot synced (unknown commands or options are refused, required
options, choices and ranges are enforced unless ``validate=False``), so a test cannot accidentally send the bot
something real Discord never would.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .entities import DM, FakeAttachment, FakeChannel, FakeMessage, FakeRole, FakeUser
from .state import FakeState

# Interaction types
APPLICATION_COMMAND = 2
MESSAGE_COMPONENT = 3
AUTOCOMPLETE = 4
MODAL_SUBMIT = 5

# Modal component types
FILE_UPLOAD = 19

# Option types
SUB_COMMAND, SUB_COMMAND_GROUP, STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(
    1, 12
)


@dataclass(frozen=True)
class Upload:
    """A file a user attaches to a slash command (an ``attachment`` option)."""

    filename: str
    data: bytes


UploadLike = Upload | FakeAttachment | tuple | bytes


@dataclass(frozen=True)
class Ack:
    """One callback the bot sent for an interaction."""

    type: int
    #: Milliseconds from the moment the fake sent INTERACTION_CREATE to the moment the callback arrived.
    elapsed_ms: float
    data: dict[str, Any] | None


@dataclass
class InteractionRecord:
    id: int
    token: str
    type: int
    payload: dict[str, Any]
    channel_id: int
    guild_id: int | None
    user: FakeUser
    attachment_size_limit: int
    source_message_id: int | None = None
    dispatched_at: float | None = None
    acks: list[Ack] = field(default_factory=list)
    original_message_id: int | None = None
    followup_ids: list[int] = field(default_factory=list)
    modal: dict[str, Any] | None = None
    autocomplete_choices: list[dict[str, Any]] | None = None
    token_expired: bool = False
    acked: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def name(self) -> str | None:
        return (self.payload.get("data") or {}).get("name")

    def metadata(self) -> dict[str, Any]:
        """``interaction_metadata`` attached to messages this interaction produced."""
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "user": self.user.payload(),
            "authorizing_integration_owners": self.payload.get("authorizing_integration_owners", {}),
        }
        if self.name:
            data["name"] = self.name
        if self.source_message_id is not None:
            data["interacted_message_id"] = str(self.source_message_id)
        return data


class InteractionRegistry:
    def __init__(self) -> None:
        self.by_id: dict[int, InteractionRecord] = {}
        self._by_token: dict[str, InteractionRecord] = {}

    def add(self, record: InteractionRecord) -> InteractionRecord:
        self.by_id[record.id] = record
        self._by_token[record.token] = record
        return record

    def by_token(self, token: str) -> InteractionRecord | None:
        return self._by_token.get(token)

    def __iter__(self):
        return iter(self.by_id.values())


def new_token() -> str:
    return "aW50ZXJhY3Rpb24" + secrets.token_urlsafe(48)


class InteractionBuilder:
    """Turns test intentions ("user X runs /imagine prompt:cat in #general") into interaction records."""

    def __init__(self, state: FakeState) -> None:
        self.state = state

    # ------------------------------------------------------------------ common envelope
    def _envelope(
        self,
        type_: int,
        data: dict[str, Any],
        user: FakeUser,
        channel: FakeChannel,
        size_limit: int | None,
        locale: str,
    ) -> InteractionRecord:
        state = self.state
        interaction_id = state.ids.next()
        token = new_token()
        limit = size_limit if size_limit is not None else state.attachment_limit(channel)
        payload: dict[str, Any] = {
            "id": str(interaction_id),
            "application_id": str(state.application_id),
            "type": type_,
            "data": data,
            "token": token,
            "version": 1,
            "channel_id": str(channel.id),
            "locale": locale,
            "entitlements": [],
            "entitlement_sku_ids": [],
            "attachment_size_limit": limit,
        }
        if channel.guild_id is not None:
            guild = state.guild(channel.guild_id)
            member = guild.members.get(user.id)
            if member is None:
                raise ValueError(f"{user.username} is not a member of {guild.name}")
            user_perms = guild.permissions_of(user.id)
            payload.update(
                guild_id=str(guild.id),
                guild={"id": str(guild.id), "locale": guild.locale, "features": []},
                guild_locale=guild.locale,
                member=member.payload(permissions=user_perms),
                app_permissions=str(guild.permissions_of(state.bot.id)),
                channel={**channel.payload(), "permissions": str(user_perms)},
                authorizing_integration_owners={"0": str(guild.id)},
                context=0,
            )
        else:
            if channel.type != DM:
                raise ValueError("interactions outside guilds come from DM channels")
            payload.update(
                user=user.payload(),
                channel=channel.payload(),
                app_permissions=str(0),
                authorizing_integration_owners={"0": "0"},
                context=1,
            )
        return InteractionRecord(
            id=interaction_id,
            token=token,
            type=type_,
            payload=payload,
            channel_id=channel.id,
            guild_id=channel.guild_id,
            user=user,
            attachment_size_limit=limit,
        )

    # ------------------------------------------------------------------ slash commands
    def application_command(
        self,
        name: str,
        options: dict[str, Any],
        *,
        user: FakeUser,
        channel: FakeChannel,
        attachments: list[UploadLike] | None = None,
        size_limit: int | None = None,
        locale: str = "en-US",
        validate: bool = True,
    ) -> InteractionRecord:
        """``name`` may name a subcommand path: ``"story new"`` or ``"admin jobs cancel"``."""
        root, *path = name.split()
        command = self.state.commands.find(root, channel.guild_id)
        if command is None:
            known = sorted({c["name"] for c in self.state.commands.all()})
            raise LookupError(f"/{root} was never synced to Discord (registered: {known})")
        resolved: dict[str, dict[str, Any]] = {}
        schema: list[dict[str, Any]] = command.get("options") or []
        leaf_schema, wrap = self._walk_subcommands(schema, path, root)
        leaf_options = self._options(leaf_schema, dict(options), list(attachments or []), channel, resolved, validate)
        data: dict[str, Any] = {"id": command["id"], "name": root, "type": command.get("type", 1)}
        if "guild_id" in command:
            data["guild_id"] = command["guild_id"]
        data["options"] = wrap(leaf_options)
        if resolved:
            data["resolved"] = resolved
        return self._envelope(APPLICATION_COMMAND, data, user, channel, size_limit, locale)

    def _walk_subcommands(self, schema: list[dict[str, Any]], path: list[str], root: str):
        wrappers: list[dict[str, Any]] = []
        for part in path:
            nested = (SUB_COMMAND, SUB_COMMAND_GROUP)
            sub = next((o for o in schema if o["name"] == part and o.get("type") in nested), None)
            if sub is None:
                raise LookupError(f"/{root} has no subcommand {part!r}")
            wrappers.append({"name": part, "type": sub["type"]})
            schema = sub.get("options") or []
        if any(o.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
            raise LookupError(f"/{root}: name a subcommand, e.g. '{root} {schema[0]['name']}'")

        def wrap(leaf: list[dict[str, Any]]) -> list[dict[str, Any]]:
            inner = leaf
            for wrapper in reversed(wrappers):
                inner = [{**wrapper, "options": inner}]
            return inner

        return schema, wrap

    def _options(
        self,
        schema: list[dict[str, Any]],
        values: dict[str, Any],
        uploads: list[UploadLike],
        channel: FakeChannel,
        resolved: dict[str, dict[str, Any]],
        validate: bool,
    ) -> list[dict[str, Any]]:
        by_name = {o["name"]: o for o in schema}
        unknown = set(values) - set(by_name)
        if unknown and validate:
            raise ValueError(f"unknown options {sorted(unknown)}; the command has {sorted(by_name)}")
        for option in schema:  # attachments=[...] fill attachment options not given by name, in order
            if option.get("type") == ATTACHMENT and option["name"] not in values and uploads:
                values[option["name"]] = uploads.pop(0)
        result = []
        for option in schema:
            if option["name"] not in values:
                if option.get("required") and validate:
                    raise ValueError(f"option {option['name']!r} is required")
                continue
            value = values[option["name"]]
            result.append(
                {
                    "name": option["name"],
                    "type": option["type"],
                    "value": self._option_value(option, value, channel, resolved, validate),
                }
            )
        for name in unknown:  # validate=False: pass through as strings, like a raw API client could
            result.append({"name": name, "type": STRING, "value": values[name]})
        return result

    def _option_value(
        self,
        option: dict[str, Any],
        value: Any,
        channel: FakeChannel,
        resolved: dict[str, dict[str, Any]],
        validate: bool,
    ) -> Any:
        kind = option["type"]
        name = option["name"]
        if kind == STRING:
            text = str(value)
            if validate:
                _check_length(name, text, option)
                _check_choices(name, text, option)
            return text
        if kind in (INTEGER, NUMBER):
            number = int(value) if kind == INTEGER and validate else value
            if validate:
                _check_range(name, float(number), option)
                _check_choices(name, number, option)
            return number
        if kind == BOOLEAN:
            return bool(value)
        if kind == ATTACHMENT:
            attachment = self._upload(value, channel)
            resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.payload()
            return str(attachment.id)
        if kind in (USER, MENTIONABLE) and isinstance(value, FakeUser):
            self._resolve_user(value, channel, resolved)
            return str(value.id)
        if kind in (ROLE, MENTIONABLE) and isinstance(value, FakeRole):
            resolved.setdefault("roles", {})[str(value.id)] = value.payload()
            return str(value.id)
        if kind == CHANNEL and isinstance(value, FakeChannel):
            data = {**value.payload(), "permissions": str(0)}
            resolved.setdefault("channels", {})[str(value.id)] = data
            return str(value.id)
        if validate:
            raise ValueError(f"option {name!r} (type {kind}) cannot take {value!r}")
        return value

    def _resolve_user(self, user: FakeUser, channel: FakeChannel, resolved: dict[str, dict[str, Any]]) -> None:
        resolved.setdefault("users", {})[str(user.id)] = user.payload()
        if channel.guild_id is not None:
            guild = self.state.guild(channel.guild_id)
            member = guild.members.get(user.id)
            if member is not None:
                data = member.payload(permissions=guild.permissions_of(user.id))
                data.pop("user")
                resolved.setdefault("members", {})[str(user.id)] = data

    def _upload(self, value: UploadLike, channel: FakeChannel) -> FakeAttachment:
        if isinstance(value, FakeAttachment):
            return value
        if isinstance(value, Upload):
            filename, data = value.filename, value.data
        elif isinstance(value, tuple):
            filename, data = value
        elif isinstance(value, (bytes, bytearray)):
            filename, data = "upload.png", bytes(value)
        else:
            raise ValueError(f"not an upload: {value!r}")
        return self.state.store_user_upload(channel, filename, data)

    # ------------------------------------------------------------------ components and modals
    def component(
        self,
        message: FakeMessage,
        custom_id: str,
        *,
        user: FakeUser,
        values: list[str] | None = None,
        locale: str = "en-US",
        size_limit: int | None = None,
    ) -> InteractionRecord:
        component = message.find_component(custom_id)
        if component is None:
            raise LookupError(f"message {message.id} has no component {custom_id!r} (has {message.custom_ids()})")
        if component.get("disabled"):
            raise ValueError(f"component {custom_id!r} is disabled; Discord would not let a user press it")
        channel = self.state.channel(message.channel_id)
        data: dict[str, Any] = {"custom_id": custom_id, "component_type": component["type"]}
        if "id" in component:
            data["id"] = component["id"]
        if component["type"] != 2:
            data["values"] = list(values or [])
        record = self._envelope(MESSAGE_COMPONENT, data, user, channel, size_limit, locale)
        record.payload["message"] = self.state.message_payload(message)
        record.source_message_id = message.id
        return record

    def modal_submit(
        self, parent: InteractionRecord, values: dict[str, Any], *, user: FakeUser, locale: str = "en-US"
    ) -> InteractionRecord:
        """``values`` maps custom IDs: text for text inputs, option values for selects, uploads (like
        ``application_command(attachments=...)`` takes) for file uploads."""
        modal = parent.modal
        if modal is None:
            raise LookupError("the bot did not answer this interaction with a modal")
        channel = self.state.channel(parent.channel_id)
        attachments: dict[str, dict[str, Any]] = {}

        def upload(value: UploadLike) -> str:
            attachment = self._upload(value, channel)
            attachments[str(attachment.id)] = attachment.payload()
            return str(attachment.id)

        components = _modal_answers(modal.get("components") or [], values, upload)
        data: dict[str, Any] = {"custom_id": modal["custom_id"], "components": components}
        if attachments:
            data["resolved"] = {"attachments": attachments}
        record = self._envelope(MODAL_SUBMIT, data, user, channel, parent.attachment_size_limit, locale)
        if parent.source_message_id is not None:
            message = self.state.messages.get(parent.source_message_id)
            if message is not None:
                record.payload["message"] = self.state.message_payload(message)
                record.source_message_id = message.id
        return record


def _modal_answers(
    components: list[dict[str, Any]], values: dict[str, Any], upload: Callable[[UploadLike], str]
) -> list[dict[str, Any]]:
    """Mirror the modal's layout (rows or labels) with the inputs filled in."""
    answers = []
    for component in components:
        kind = component.get("type")
        if kind == 1:
            answers.append({"type": 1, "components": _modal_answers(component.get("components") or [], values, upload)})
        elif kind == 18:
            inner = _modal_answers([component["component"]], values, upload)
            answers.append({"type": 18, "id": component.get("id", 0), "component": inner[0]})
        elif kind == 4:
            custom_id = component["custom_id"]
            answers.append({"type": 4, "custom_id": custom_id, "value": values.get(custom_id, "")})
        elif kind == FILE_UPLOAD:
            custom_id = component["custom_id"]
            files = list(values.get(custom_id) or [])
            _check_file_count(component, len(files))
            answers.append({"type": kind, "custom_id": custom_id, "values": [upload(f) for f in files]})
        elif "custom_id" in component:  # selects inside labels answer with a list of values
            custom_id = component["custom_id"]
            answers.append({"type": kind, "custom_id": custom_id, "values": values.get(custom_id, [])})
        else:
            answers.append({"type": kind, "id": component.get("id", 0)})
    return answers


def _check_file_count(component: dict[str, Any], count: int) -> None:
    """What the Discord client enforces before it lets a user submit a file upload field."""
    custom_id = component["custom_id"]
    low = component.get("min_values") if component.get("min_values") is not None else 1
    high = component.get("max_values") if component.get("max_values") is not None else 1
    if count > high:
        raise ValueError(f"file upload {custom_id!r} takes at most {high} files; Discord would refuse {count}")
    required = component.get("required", True)
    if (required and count < max(low, 1)) or (not required and 0 < count < low):
        raise ValueError(f"file upload {custom_id!r} needs at least {low} files; Discord would refuse {count}")


def _check_length(name: str, text: str, option: dict[str, Any]) -> None:
    low = option.get("min_length", 0)
    high = option.get("max_length", 6000)
    if not low <= len(text) <= high:
        raise ValueError(f"option {name!r} must be {low}..{high} characters; Discord would refuse {len(text)}")


def _check_range(name: str, number: float, option: dict[str, Any]) -> None:
    low = option.get("min_value")
    high = option.get("max_value")
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"option {name!r} must be within [{low}, {high}]; Discord would refuse {number}")


def _check_choices(name: str, value: Any, option: dict[str, Any]) -> None:
    choices = option.get("choices")
    if choices and value not in [c["value"] for c in choices]:
        raise ValueError(f"option {name!r} must be one of {[c['value'] for c in choices]}")


def elapsed_ms(since: float | None) -> float:
    return 0.0 if since is None else (time.perf_counter() - since) * 1000.0
