"""The things a Discord server holds (users, guilds, channels, messages) and their wire payloads.

Kept as plain dataclasses so tests can read them directly (``message.content``, ``attachment.data``); the
``payload`` methods produce the JSON shapes discord.py 2.7 parses (see ``discord/types/``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import permissions as perms
from .snowflakes import snowflake_time_ms

# Channel types (discord.enums.ChannelType)
TEXT = 0
DM = 1
PUBLIC_THREAD = 11
PRIVATE_THREAD = 12
THREAD_TYPES = (10, PUBLIC_THREAD, PRIVATE_THREAD)

# Message flags
EPHEMERAL = 1 << 6
LOADING = 1 << 7
HAS_THREAD = 1 << 5


def iso_from_snowflake(snowflake: int) -> str:
    """ISO-8601 timestamp of a snowflake, the format Discord uses for ``timestamp`` fields."""
    return datetime.fromtimestamp(snowflake_time_ms(snowflake) / 1000, tz=UTC).isoformat()


def iso_now() -> str:
    return datetime.now(tz=UTC).isoformat()


@dataclass
class FakeUser:
    id: int
    username: str
    global_name: str | None = None
    bot: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "username": self.username,
            "discriminator": "0",
            "global_name": self.global_name,
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


@dataclass
class FakeRole:
    id: int
    name: str
    permissions: int
    position: int = 0
    managed: bool = False

    def payload(self) -> dict[str, Any]:
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False,
            "managed": self.managed,
            "mentionable": False,
            "flags": 0,
            "icon": None,
            "unicode_emoji": None,
        }


@dataclass
class FakeMember:
    user: FakeUser
    role_ids: list[int]
    joined_at: str = field(default_factory=iso_now)
    nick: str | None = None

    def payload(self, permissions: int | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "user": self.user.payload(),
            "roles": [str(r) for r in self.role_ids],
            "joined_at": self.joined_at,
            "nick": self.nick,
            "avatar": None,
            "banner": None,
            "deaf": False,
            "mute": False,
            "flags": 0,
            "pending": False,
            "premium_since": None,
            "communication_disabled_until": None,
        }
        if permissions is not None:
            data["permissions"] = str(permissions)
        return data


@dataclass
class FakeChannel:
    """A guild text channel, a thread or a DM channel (``type`` tells which)."""

    id: int
    type: int
    name: str | None = None
    guild_id: int | None = None
    position: int = 0
    nsfw: bool = False
    topic: str | None = None
    parent_id: int | None = None
    #: False makes thread creation in this channel answer 403 Missing Permissions.
    threads_allowed: bool = True
    recipients: list[FakeUser] = field(default_factory=list)
    # Thread-only fields.
    owner_id: int | None = None
    archived: bool = False
    locked: bool = False
    auto_archive_duration: int = 1440
    message_count: int = 0
    member_ids: set[int] = field(default_factory=set)
    last_message_id: int | None = None
    deleted: bool = False

    @property
    def is_thread(self) -> bool:
        return self.type in THREAD_TYPES

    @property
    def is_dm(self) -> bool:
        return self.type == DM

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def payload(self) -> dict[str, Any]:
        last = str(self.last_message_id) if self.last_message_id else None
        if self.is_dm:
            return {
                "id": str(self.id),
                "type": DM,
                "last_message_id": last,
                "recipients": [u.payload() for u in self.recipients],
                "flags": 0,
            }
        data: dict[str, Any] = {
            "id": str(self.id),
            "type": self.type,
            "guild_id": str(self.guild_id),
            "name": self.name,
            "position": self.position,
            "nsfw": self.nsfw,
            "topic": self.topic,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "last_message_id": last,
            "rate_limit_per_user": 0,
            "permission_overwrites": [],
            "flags": 0,
        }
        if self.is_thread:
            data.pop("position")
            data.pop("topic")
            data.pop("permission_overwrites")
            data.update(
                owner_id=str(self.owner_id),
                message_count=self.message_count,
                total_message_sent=self.message_count,
                member_count=len(self.member_ids),
                thread_metadata={
                    "archived": self.archived,
                    "locked": self.locked,
                    "auto_archive_duration": self.auto_archive_duration,
                    "archive_timestamp": iso_from_snowflake(self.id),
                    "create_timestamp": iso_from_snowflake(self.id),
                    "invitable": True,
                },
            )
        else:
            data["default_auto_archive_duration"] = 1440
        return data


@dataclass
class FakeGuild:
    id: int
    name: str
    owner_id: int
    roles: dict[int, FakeRole] = field(default_factory=dict)
    members: dict[int, FakeMember] = field(default_factory=dict)
    channel_ids: list[int] = field(default_factory=list)
    #: Upload limit in bytes per file; also sent as ``attachment_size_limit`` in interactions from this guild.
    attachment_size_limit: int = 10 * 1024 * 1024
    locale: str = "en-US"

    def permissions_of(self, user_id: int) -> int:
        """Guild-level permissions of a member (channel overwrites are not modelled)."""
        if user_id == self.owner_id:
            return perms.ALL
        member = self.members.get(user_id)
        if member is None:
            return 0
        everyone = self.roles[self.id].permissions
        return perms.effective([everyone, *(self.roles[r].permissions for r in member.role_ids if r in self.roles)])

    def payload(self) -> dict[str, Any]:
        """The REST shape (``GET /guilds/{id}``); GUILD_CREATE adds channels, members and threads."""
        return {
            "id": str(self.id),
            "name": self.name,
            "icon": None,
            "splash": None,
            "discovery_splash": None,
            "owner_id": str(self.owner_id),
            "afk_channel_id": None,
            "afk_timeout": 300,
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "roles": [r.payload() for r in self.roles.values()],
            "emojis": [],
            "stickers": [],
            "features": [],
            "mfa_level": 0,
            "system_channel_id": None,
            "system_channel_flags": 0,
            "rules_channel_id": None,
            "vanity_url_code": None,
            "description": None,
            "banner": None,
            "premium_tier": 0,
            "premium_subscription_count": 0,
            "preferred_locale": self.locale,
            "public_updates_channel_id": None,
            "nsfw_level": 0,
            "premium_progress_bar_enabled": False,
        }


@dataclass
class FakeAttachment:
    id: int
    filename: str
    data: bytes = field(repr=False)
    content_type: str | None
    description: str | None = None
    width: int | None = None
    height: int | None = None
    #: Content type of the multipart part it arrived in (discord.py always sends application/octet-stream).
    upload_content_type: str | None = None
    url: str = ""
    #: How often its URL was fetched: a test can tell that the bot refused a file without downloading it.
    downloads: int = 0

    @property
    def size(self) -> int:
        return len(self.data)

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "filename": self.filename,
            "size": self.size,
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
            "flags": 0,
        }
        if self.description is not None:
            data["description"] = self.description
        if self.width is not None:
            data["width"] = self.width
            data["height"] = self.height
        return data


def walk_components(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every component in a message, depth first, through rows, sections, containers and labels."""
    for component in components:
        yield component
        yield from walk_components(component.get("components") or [])
        for key in ("accessory", "component"):
            child = component.get(key)
            if isinstance(child, dict):
                yield from walk_components([child])


@dataclass
class FakeMessage:
    """A message as the server currently holds it; ``edits`` keeps every earlier version's payload."""

    id: int
    channel_id: int
    guild_id: int | None
    author: FakeUser
    content: str = ""
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[FakeAttachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    webhook_id: int | None = None
    interaction_metadata: dict[str, Any] | None = None
    message_reference: dict[str, Any] | None = None
    nonce: str | int | None = None
    edited_timestamp: str | None = None
    deleted: bool = False
    thread_id: int | None = None
    edits: list[dict[str, Any]] = field(default_factory=list)
    reactions: dict[str, set[int]] = field(default_factory=dict)
    #: The interaction this message answers (original response or followup), if any.
    interaction_id: int | None = None

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        """True while this is a deferred "thinking…" placeholder nobody has filled in yet."""
        return bool(self.flags & LOADING)

    @property
    def jump_url(self) -> str:
        return f"https://discord.com/channels/{self.guild_id or '@me'}/{self.channel_id}/{self.id}"

    def walk_components(self) -> Iterator[dict[str, Any]]:
        return walk_components(self.components)

    def buttons(self) -> list[dict[str, Any]]:
        """Every button (component type 2) in display order."""
        return [c for c in self.walk_components() if c.get("type") == 2]

    def custom_ids(self) -> list[str]:
        """Custom IDs of every interactive component, in display order."""
        return [c["custom_id"] for c in self.walk_components() if "custom_id" in c]

    def find_component(self, custom_id: str) -> dict[str, Any] | None:
        return next((c for c in self.walk_components() if c.get("custom_id") == custom_id), None)

    def snapshot(self) -> dict[str, Any]:
        """The editable part of the message, kept in ``edits`` before each change."""
        return {
            "content": self.content,
            "embeds": copy.deepcopy(self.embeds),
            "components": copy.deepcopy(self.components),
            "attachments": [a.filename for a in self.attachments],
            "flags": self.flags,
            "edited_timestamp": self.edited_timestamp,
        }

    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": str(self.id),
            "channel_id": str(self.channel_id),
            "author": self.author.payload(),
            "content": self.content,
            "timestamp": iso_from_snowflake(self.id),
            "edited_timestamp": self.edited_timestamp,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [a.payload() for a in self.attachments],
            "embeds": copy.deepcopy(self.embeds),
            "components": copy.deepcopy(self.components),
            "reactions": [
                {
                    "emoji": {"id": None, "name": name},
                    "count": len(users),
                    "me": True,
                    "burst_colors": [],
                    "count_details": {"burst": 0, "normal": len(users)},
                    "me_burst": False,
                    "burst_count": 0,
                }
                for name, users in self.reactions.items()
                if users
            ],
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
        }
        if self.guild_id is not None:
            data["guild_id"] = str(self.guild_id)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if self.interaction_metadata is not None:
            data["interaction_metadata"] = copy.deepcopy(self.interaction_metadata)
        if self.message_reference is not None:
            data["message_reference"] = dict(self.message_reference)
        if self.nonce is not None:
            data["nonce"] = self.nonce
        return data
