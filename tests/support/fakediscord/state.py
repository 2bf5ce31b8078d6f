"""The fake server's world and every change to it, independent of HTTP and websockets.

REST handlers and the test-side API both go through these methods, so a message created by the bot through
REST, by an interaction callback, or deleted by a "user" in a test all follow the same rules and emit the same
gateway events.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from . import errors, validation
from . import permissions as perms
from .bodies import UploadedFile
from .commands import CommandStore
from .entities import (
    DM,
    EPHEMERAL,
    HAS_THREAD,
    LOADING,
    PUBLIC_THREAD,
    TEXT,
    THREAD_TYPES,
    FakeAttachment,
    FakeChannel,
    FakeGuild,
    FakeMember,
    FakeMessage,
    FakeRole,
    FakeUser,
    iso_now,
    walk_components,
)
from .media import guess_content_type, image_size
from .snowflakes import SnowflakeFactory

#: Upload limit outside guilds (DMs), and the default for new guilds: 10 MiB.
DEFAULT_ATTACHMENT_LIMIT = 10 * 1024 * 1024

#: Message flags a sender may set; everything else is server-controlled.
_SETTABLE_FLAGS = (1 << 2) | (1 << 12) | validation.IS_COMPONENTS_V2

#: (event name, payload, guild ID or None for DMs) -> None
Emitter = Callable[[str, dict[str, Any], "int | None"], None]


class FakeState:
    def __init__(self, ids: SnowflakeFactory, bot: FakeUser, application_id: int, owner: FakeUser) -> None:
        self.ids = ids
        self.bot = bot
        self.application_id = application_id
        self.application_owner = owner
        self.users: dict[int, FakeUser] = {bot.id: bot, owner.id: owner}
        self.guilds: dict[int, FakeGuild] = {}
        self.channels: dict[int, FakeChannel] = {}
        self.messages: dict[int, FakeMessage] = {}
        self.attachments: dict[int, FakeAttachment] = {}
        self.commands = CommandStore(ids, application_id)
        self._dm_by_user: dict[int, int] = {}
        #: Base URL under which attachments are served; set by the server once it knows its port.
        self.cdn_base = "http://127.0.0.1"
        self.emit: Emitter = lambda event, data, guild_id: None
        self.on_change: Callable[[], None] = lambda: None

    # ----------------------------------------------------------------- world building
    def add_user(self, username: str, *, bot: bool = False, global_name: str | None = None) -> FakeUser:
        user = FakeUser(id=self.ids.next(), username=username, global_name=global_name, bot=bot)
        self.users[user.id] = user
        return user

    def add_guild(
        self, name: str, owner: FakeUser, *, attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT
    ) -> FakeGuild:
        guild = FakeGuild(id=self.ids.next(), name=name, owner_id=owner.id, attachment_size_limit=attachment_size_limit)
        guild.roles[guild.id] = FakeRole(id=guild.id, name="@everyone", permissions=perms.EVERYONE_DEFAULT)
        self.guilds[guild.id] = guild
        guild.members[owner.id] = FakeMember(user=owner, role_ids=[])
        return guild

    def add_role(self, guild: FakeGuild, name: str, permissions: int, *, managed: bool = False) -> FakeRole:
        role = FakeRole(
            id=self.ids.next(), name=name, permissions=permissions, position=len(guild.roles), managed=managed
        )
        guild.roles[role.id] = role
        return role

    def add_member(self, guild: FakeGuild, user: FakeUser, roles: list[FakeRole] | None = None) -> FakeMember:
        member = FakeMember(user=user, role_ids=[r.id for r in roles or []])
        guild.members[user.id] = member
        self.emit("GUILD_MEMBER_ADD", {**member.payload(), "guild_id": str(guild.id)}, guild.id)
        return member

    def add_text_channel(
        self, guild: FakeGuild, name: str, *, nsfw: bool = False, threads_allowed: bool = True, topic: str | None = None
    ) -> FakeChannel:
        channel = FakeChannel(
            id=self.ids.next(),
            type=TEXT,
            name=name,
            guild_id=guild.id,
            position=len(guild.channel_ids),
            nsfw=nsfw,
            topic=topic,
            threads_allowed=threads_allowed,
        )
        self.channels[channel.id] = channel
        guild.channel_ids.append(channel.id)
        self.emit("CHANNEL_CREATE", channel.payload(), guild.id)
        return channel

    def dm_channel(self, user: FakeUser) -> FakeChannel:
        """The DM channel between the bot and ``user``, created on first use like Discord does."""
        channel_id = self._dm_by_user.get(user.id)
        if channel_id is not None:
            return self.channels[channel_id]
        channel = FakeChannel(id=self.ids.next(), type=DM, recipients=[user])
        self.channels[channel.id] = channel
        self._dm_by_user[user.id] = channel.id
        return channel

    # ----------------------------------------------------------------- lookups
    def guild(self, guild_id: int) -> FakeGuild:
        try:
            return self.guilds[guild_id]
        except KeyError:
            raise errors.unknown_guild() from None

    def channel(self, channel_id: int) -> FakeChannel:
        channel = self.channels.get(channel_id)
        if channel is None or channel.deleted:
            raise errors.unknown_channel()
        return channel

    def user(self, user_id: int) -> FakeUser:
        try:
            return self.users[user_id]
        except KeyError:
            raise errors.unknown_user() from None

    def message(self, message_id: int, channel_id: int | None = None, *, allow_ephemeral: bool = False) -> FakeMessage:
        """A live message; deleted, foreign-channel and (unless allowed) ephemeral ones answer 10008."""
        message = self.messages.get(message_id)
        if (
            message is None
            or message.deleted
            or (channel_id is not None and message.channel_id != channel_id)
            or (message.ephemeral and not allow_ephemeral)
        ):
            raise errors.unknown_message()
        return message

    def messages_in(self, channel_id: int, *, include_ephemeral: bool = True) -> list[FakeMessage]:
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel_id and not m.deleted and (include_ephemeral or not m.ephemeral)
        ]

    def threads_of(self, channel_id: int) -> list[FakeChannel]:
        return [c for c in self.channels.values() if c.is_thread and c.parent_id == channel_id and not c.deleted]

    def attachment_limit(self, channel: FakeChannel) -> int:
        if channel.guild_id is None:
            return DEFAULT_ATTACHMENT_LIMIT
        return self.guilds[channel.guild_id].attachment_size_limit

    def message_payload(self, message: FakeMessage) -> dict[str, Any]:
        data = message.payload()
        if message.thread_id is not None:
            thread = self.channels.get(message.thread_id)
            if thread is not None and not thread.deleted:
                data["thread"] = thread.payload()
        return data

    # ----------------------------------------------------------------- messages
    def create_message(
        self,
        channel_id: int,
        author: FakeUser,
        body: dict[str, Any],
        files: list[UploadedFile] | None = None,
        *,
        webhook_id: int | None = None,
        interaction_id: int | None = None,
        interaction_metadata: dict[str, Any] | None = None,
        size_limit: int | None = None,
        message_type: int = 0,
        allow_ephemeral: bool = False,
        extra_flags: int = 0,
        system_reference: dict[str, Any] | None = None,
    ) -> FakeMessage:
        channel = self.channel(channel_id)
        files = files or []
        body = body or {}
        validation.check_message_body(body, len(files))
        limit = size_limit if size_limit is not None else self.attachment_limit(channel)
        attachments = self._attachments_for(channel, body.get("attachments"), files, [], limit)
        has_payload = any(body.get(k) for k in ("content", "embeds", "components", "sticker_ids", "poll"))
        if not has_payload and not attachments and not extra_flags & LOADING:
            raise errors.empty_message()
        flags = int(body.get("flags") or 0) & (_SETTABLE_FLAGS | (EPHEMERAL if allow_ephemeral else 0))
        reference = body.get("message_reference")
        if reference and message_type == 0 and reference.get("message_id"):
            try:
                self.message(int(reference["message_id"]), int(reference.get("channel_id") or channel_id))
                message_type = 19
            except errors.DiscordError:
                if reference.get("fail_if_not_exists", True):
                    raise
                reference = None  # Discord sends the reply as a plain message
        message = FakeMessage(
            id=self.ids.next(),
            channel_id=channel.id,
            guild_id=channel.guild_id,
            author=author,
            content=str(body.get("content") or ""),
            embeds=list(body.get("embeds") or []),
            components=self._with_component_ids(body.get("components") or []),
            attachments=attachments,
            flags=flags | extra_flags,
            type=message_type,
            webhook_id=webhook_id,
            interaction_metadata=interaction_metadata,
            message_reference=reference or system_reference,
            nonce=body.get("nonce"),
            interaction_id=interaction_id,
        )
        self.messages[message.id] = message
        if not message.ephemeral:
            channel.last_message_id = message.id
            if channel.is_thread:
                channel.message_count += 1
            self.emit("MESSAGE_CREATE", self._event_payload(message), channel.guild_id)
        self.on_change()
        return message

    def edit_message(
        self,
        message: FakeMessage,
        body: dict[str, Any],
        files: list[UploadedFile] | None = None,
        *,
        size_limit: int | None = None,
    ) -> FakeMessage:
        files = files or []
        body = body or {}
        channel = self.channel(message.channel_id)
        validation.check_message_body(body, len(files))
        limit = size_limit if size_limit is not None else self.attachment_limit(channel)
        attachments = self._attachments_for(
            channel, body.get("attachments") if "attachments" in body else None, files, message.attachments, limit
        )
        content = str(body["content"] or "") if "content" in body else message.content
        embeds = list(body["embeds"] or []) if "embeds" in body else message.embeds
        components = self._with_component_ids(body["components"] or []) if "components" in body else message.components
        if not (content or embeds or components or attachments):
            raise errors.empty_message()
        was_loading = message.loading
        message.edits.append(message.snapshot())
        message.content, message.embeds, message.components = content, embeds, components
        if "flags" in body and body["flags"] is not None:
            kept = message.flags & ~_SETTABLE_FLAGS
            message.flags = kept | (int(body["flags"]) & _SETTABLE_FLAGS)
        message.attachments = attachments
        message.flags &= ~LOADING
        if not was_loading:
            message.edited_timestamp = iso_now()
        if not message.ephemeral:
            self.emit("MESSAGE_UPDATE", self._event_payload(message), message.guild_id)
        self.on_change()
        return message

    def delete_message(self, message: FakeMessage) -> None:
        message.deleted = True
        if not message.ephemeral:
            data = {"id": str(message.id), "channel_id": str(message.channel_id)}
            if message.guild_id is not None:
                data["guild_id"] = str(message.guild_id)
            self.emit("MESSAGE_DELETE", data, message.guild_id)
        self.on_change()

    def add_reaction(self, message: FakeMessage, emoji: str, user: FakeUser) -> None:
        message.reactions.setdefault(emoji, set()).add(user.id)
        self.on_change()

    def remove_reaction(self, message: FakeMessage, emoji: str, user: FakeUser) -> None:
        message.reactions.get(emoji, set()).discard(user.id)
        self.on_change()

    # ----------------------------------------------------------------- threads
    def create_thread(
        self,
        parent_id: int,
        creator: FakeUser,
        name: str,
        *,
        message_id: int | None = None,
        type: int = PUBLIC_THREAD,
        auto_archive_duration: int = 1440,
    ) -> FakeChannel:
        parent = self.channel(parent_id)
        if parent.is_dm or parent.is_thread:
            raise errors.wrong_channel_type()
        if not parent.threads_allowed:
            raise errors.missing_permissions()
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise errors.invalid_form_body("name", "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        if type not in THREAD_TYPES:
            raise errors.invalid_form_body("type", "BASE_TYPE_CHOICES", f"Value must be one of {THREAD_TYPES}.")
        starter: FakeMessage | None = None
        if message_id is not None:
            starter = self.message(message_id, parent.id)
            if starter.thread_id is not None:
                raise errors.DiscordError(400, 160004, "A thread has already been created for this message")
        thread = FakeChannel(
            id=starter.id if starter else self.ids.next(),  # Discord reuses the starter message's ID
            type=type,
            name=name,
            guild_id=parent.guild_id,
            parent_id=parent.id,
            nsfw=parent.nsfw,
            owner_id=creator.id,
            auto_archive_duration=auto_archive_duration,
            member_ids={creator.id},
        )
        self.channels[thread.id] = thread
        self.emit("THREAD_CREATE", {**thread.payload(), "newly_created": True}, thread.guild_id)
        if starter is not None:
            starter.thread_id = thread.id
            starter.flags |= HAS_THREAD
            self.emit("MESSAGE_UPDATE", self._event_payload(starter), parent.guild_id)
        elif type == PUBLIC_THREAD:
            # Discord announces a thread started without a message with a system message in the parent.
            self.create_message(
                parent.id,
                creator,
                {"content": name},
                message_type=18,
                system_reference={"channel_id": str(thread.id), "guild_id": str(parent.guild_id)},
            )
        self.on_change()
        return thread

    def update_channel(self, channel: FakeChannel, body: dict[str, Any]) -> FakeChannel:
        for key in ("name", "topic", "nsfw", "archived", "locked", "auto_archive_duration"):
            if key in body and body[key] is not None:
                setattr(channel, key, body[key])
        event = "THREAD_UPDATE" if channel.is_thread else "CHANNEL_UPDATE"
        self.emit(event, channel.payload(), channel.guild_id)
        self.on_change()
        return channel

    # ----------------------------------------------------------------- helpers
    def _event_payload(self, message: FakeMessage) -> dict[str, Any]:
        data = self.message_payload(message)
        if message.guild_id is not None:
            guild = self.guilds.get(message.guild_id)
            member = guild.members.get(message.author.id) if guild else None
            if member is not None:
                member_data = member.payload()
                member_data.pop("user")
                data["member"] = member_data
        return data

    def _attachments_for(
        self,
        channel: FakeChannel,
        entries: list[dict[str, Any]] | None,
        files: list[UploadedFile],
        existing: list[FakeAttachment],
        limit: int,
    ) -> list[FakeAttachment]:
        """Resolve the ``attachments`` list of a body against uploaded parts and the message's current files."""
        for upload in files:
            if len(upload.data) > limit:
                raise errors.entity_too_large()
        by_upload_index = {f.index: f for f in files}
        used: set[int] = set()
        result: list[FakeAttachment] = []
        if entries is None:
            result.extend(existing)
            entries = []
        kept = {a.id: a for a in existing}
        for position, entry in enumerate(entries):
            try:
                entry_id = int(entry.get("id"))
            except (TypeError, ValueError):
                raise errors.invalid_form_body(f"attachments.{position}.id", "BASE_TYPE_REQUIRED", "Bad id") from None
            if entry_id in kept:
                attachment = kept[entry_id]
                if "description" in entry:
                    attachment.description = entry["description"]
                result.append(attachment)
            elif entry_id in by_upload_index:
                used.add(entry_id)
                upload = by_upload_index[entry_id]
                result.append(self._store_attachment(channel, upload, entry.get("filename"), entry.get("description")))
            else:
                raise errors.invalid_form_body(
                    f"attachments.{position}.id", "ATTACHMENT_NOT_FOUND", "Unknown attachment or file part"
                )
        for upload in files:
            if upload.index not in used:
                result.append(self._store_attachment(channel, upload, None, None))
        return result

    def _store_attachment(
        self, channel: FakeChannel, upload: UploadedFile, filename: str | None, description: str | None
    ) -> FakeAttachment:
        name = filename or upload.filename
        size = image_size(upload.data)
        attachment = FakeAttachment(
            id=self.ids.next(),
            filename=name,
            data=upload.data,
            content_type=guess_content_type(name),
            description=description,
            width=size[0] if size else None,
            height=size[1] if size else None,
            upload_content_type=upload.content_type,
        )
        attachment.url = f"{self.cdn_base}/attachments/{channel.id}/{attachment.id}/{name}"
        self.attachments[attachment.id] = attachment
        return attachment

    def store_user_upload(self, channel: FakeChannel, filename: str, data: bytes) -> FakeAttachment:
        """An attachment a *user* uploaded (slash-command attachment option), served like the bot's own."""
        return self._store_attachment(
            channel,
            UploadedFile(field_name="files[0]", index=0, filename=filename, data=data, content_type=None),
            None,
            None,
        )

    def _with_component_ids(self, components: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Discord numbers components that were sent without an ``id``; mirror that."""
        components = copy.deepcopy(components)
        used = {c["id"] for c in walk_components(components) if isinstance(c.get("id"), int)}
        next_id = 1
        for component in walk_components(components):
            if "id" not in component:
                while next_id in used:
                    next_id += 1
                component["id"] = next_id
                used.add(next_id)
        return components
