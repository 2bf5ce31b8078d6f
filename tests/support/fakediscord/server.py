"""``FakeDiscord``: the server tests start, and the API they drive it with.

``async with FakeDiscord() as fake:`` listens on a random loopback port, points this process's discord.py at
it (unless ``patch_discord=False``), and stops everything on exit. The fake plays both Discord and its users:
tests inject slash commands and button clicks, delete messages, inject failures, and read back the REST calls
and the resulting messages.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from . import routes_channels, routes_interactions, routes_misc
from .entities import TEXT, FakeChannel, FakeGuild, FakeMember, FakeMessage, FakeRole, FakeUser
from .factories import World, build_default_world, build_state
from .faults import FaultInjector, FaultRule
from .gateway import Gateway
from .handles import InteractionHandle
from .interactions import InteractionBuilder, InteractionRecord, InteractionRegistry, UploadLike
from .patching import point_discord_at, subprocess_env, write_sitecustomize, ws_url_for
from .recorder import CallLog, RecordedCall
from .responses import InteractionResponder
from .rest import RestContext, make_middleware
from .snowflakes import SnowflakeFactory
from .state import DEFAULT_ATTACHMENT_LIMIT

T = TypeVar("T")
ChannelRef = FakeChannel | int
MessageRef = FakeMessage | int


def _make_token(bot_id: int) -> str:
    """A token shaped like a real bot token (base64 ID, timestamp, HMAC) but random per fake."""
    head = base64.b64encode(str(bot_id).encode()).decode().rstrip("=")
    return f"{head}.{secrets.token_urlsafe(4)}.{secrets.token_urlsafe(27)}"


class FakeDiscord:
    def __init__(
        self,
        *,
        bot_name: str = "storyloom",
        attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT,
        ack_deadline: float | None = 3.0,
        followup_replaces_deferred: bool = True,
        heartbeat_interval_ms: int = 41_250,
        patch_discord: bool = True,
    ) -> None:
        self.ids = SnowflakeFactory()
        self.state = build_state(self.ids, bot_name=bot_name)
        self.world: World = build_default_world(self.state, attachment_size_limit=attachment_size_limit)
        self.token = _make_token(self.state.bot.id)
        self.calls = CallLog()
        self.faults = FaultInjector()
        self.registry = InteractionRegistry()
        self.responder = InteractionResponder(
            self.state, self.registry, ack_deadline=ack_deadline, followup_replaces_deferred=followup_replaces_deferred
        )
        self._builder = InteractionBuilder(self.state)
        self.gateway = Gateway(
            self.state,
            self.token,
            heartbeat_interval_ms=heartbeat_interval_ms,
            ws_url=lambda: self.ws_url,
            on_change=self._changed,
        )
        self.state.emit = self.gateway.dispatch
        self.state.on_change = self._changed
        self._ctx = RestContext(
            state=self.state,
            registry=self.registry,
            responder=self.responder,
            faults=self.faults,
            calls=self.calls,
            token=self.token,
            ws_url=lambda: self.ws_url,
            on_change=self._changed,
        )
        self._patch_discord = patch_discord
        self._waiters: set[asyncio.Future[None]] = set()
        self._runner: web.AppRunner | None = None
        self._exit = ExitStack()
        self.url = ""

    def __repr__(self) -> str:  # never show the token
        sessions = len(self.gateway.live_sessions)
        return f"<FakeDiscord {self.url or 'stopped'} sessions={sessions} calls={len(self.calls)}>"

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> FakeDiscord:
        app = web.Application(middlewares=[make_middleware(self._ctx)], client_max_size=64 * 1024 * 1024)
        routes_misc.add_routes(app, self._ctx)
        routes_channels.add_routes(app, self._ctx)
        routes_interactions.add_routes(app, self._ctx)
        app.router.add_get("/", self.gateway.handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        self.state.cdn_base = self.url
        if self._patch_discord:
            self._exit.enter_context(point_discord_at(self.url))
        return self

    async def stop(self) -> None:
        try:
            await self.gateway.shutdown()
            if self._runner is not None:
                await self._runner.cleanup()
        finally:
            self._runner = None
            self._exit.close()
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.cancel()

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def ws_url(self) -> str:
        return ws_url_for(self.url)

    # ------------------------------------------------------------------ the default world
    @property
    def bot_user(self) -> FakeUser:
        return self.state.bot

    @property
    def application_id(self) -> int:
        return self.state.application_id

    @property
    def guild(self) -> FakeGuild:
        return self.world.guild

    @property
    def owner(self) -> FakeUser:
        return self.world.owner

    @property
    def manager(self) -> FakeUser:
        return self.world.manager

    @property
    def member(self) -> FakeUser:
        return self.world.member

    @property
    def text_channel(self) -> FakeChannel:
        return self.world.text_channel

    @property
    def nsfw_channel(self) -> FakeChannel:
        return self.world.nsfw_channel

    @property
    def no_threads_channel(self) -> FakeChannel:
        return self.world.no_threads_channel

    @property
    def dm_channel(self) -> FakeChannel:
        return self.world.dm_channel

    # ------------------------------------------------------------------ factories
    def add_user(
        self, username: str, *, guild: FakeGuild | None = None, roles: list[FakeRole] | None = None
    ) -> FakeUser:
        """A new user, by default also a member of the default guild."""
        user = self.state.add_user(username)
        self.state.add_member(guild or self.guild, user, roles)
        return user

    def add_role(self, name: str, permissions: int, *, guild: FakeGuild | None = None) -> FakeRole:
        return self.state.add_role(guild or self.guild, name, permissions)

    def add_member(
        self, user: FakeUser, *, guild: FakeGuild | None = None, roles: list[FakeRole] | None = None
    ) -> FakeMember:
        return self.state.add_member(guild or self.guild, user, roles)

    def add_text_channel(
        self, name: str, *, guild: FakeGuild | None = None, nsfw: bool = False, threads_allowed: bool = True
    ) -> FakeChannel:
        return self.state.add_text_channel(guild or self.guild, name, nsfw=nsfw, threads_allowed=threads_allowed)

    def add_guild(
        self, name: str, *, owner: FakeUser | None = None, attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT
    ) -> FakeGuild:
        """A second guild with the bot in it and a #general channel; connected bots get GUILD_CREATE."""
        guild = self.state.add_guild(name, owner or self.owner, attachment_size_limit=attachment_size_limit)
        bot_role = self.state.add_role(guild, self.bot_user.username, self.world.bot_role.permissions, managed=True)
        self.state.add_member(guild, self.bot_user, [bot_role])
        self.state.add_text_channel(guild, "general")
        joined = self.gateway.guild_create_payload(guild.id)
        joined.pop("unavailable")  # a guild the bot just joined, not one coming back: discord.py fires on_guild_join
        self.gateway.dispatch("GUILD_CREATE", joined, guild.id)
        return guild

    def dm_with(self, user: FakeUser) -> FakeChannel:
        return self.state.dm_channel(user)

    def set_attachment_size_limit(self, limit: int, *, guild: FakeGuild | None = None) -> None:
        """Per-guild upload limit: enforced on uploads (413) and sent as interactions' ``attachment_size_limit``."""
        (guild or self.guild).attachment_size_limit = limit

    def disallow_threads(self, channel: ChannelRef) -> None:
        """Thread creation in ``channel`` will answer 403 50013 Missing Permissions."""
        self.channel(channel).threads_allowed = False

    # ------------------------------------------------------------------ lookups
    def channel(self, ref: ChannelRef) -> FakeChannel:
        return ref if isinstance(ref, FakeChannel) else self.state.channel(int(ref))

    def message(self, ref: MessageRef) -> FakeMessage:
        """A message by ID (deleted ones too, so tests can inspect what was removed)."""
        return ref if isinstance(ref, FakeMessage) else self.state.messages[int(ref)]

    def messages_in(self, channel: ChannelRef, *, include_ephemeral: bool = True) -> list[FakeMessage]:
        """Current (not deleted) messages in creation order, edits applied; ``.edits`` holds older versions."""
        channel_id = channel.id if isinstance(channel, FakeChannel) else int(channel)
        return self.state.messages_in(channel_id, include_ephemeral=include_ephemeral)

    def threads_of(self, channel: ChannelRef) -> list[FakeChannel]:
        channel_id = channel.id if isinstance(channel, FakeChannel) else int(channel)
        return self.state.threads_of(channel_id)

    @property
    def commands(self) -> list[dict[str, Any]]:
        """Every application command the bot registered (global and guild)."""
        return self.state.commands.all()

    def command(self, name: str, *, guild: FakeGuild | None = None) -> dict[str, Any] | None:
        return self.state.commands.find(name, guild.id if guild else self.guild.id)

    @property
    def unhandled(self) -> list[RecordedCall]:
        """REST calls to routes the fake does not implement (answered 404/405 and logged as warnings)."""
        return self._ctx.unhandled

    @property
    def interactions(self) -> list[InteractionHandle]:
        return [InteractionHandle(self, r) for r in self.registry]

    # ------------------------------------------------------------------ connection state
    @property
    def connected(self) -> bool:
        """True while at least one identified (or resumed) gateway session has an open socket."""
        return bool(self.gateway.live_sessions)

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until a bot identified and was sent READY and its guilds.

        discord.py fires ``on_ready`` ``guild_ready_timeout`` seconds later; await ``bot.wait_until_ready()``
        for that."""
        await self.wait_for(lambda: self.connected, timeout, what="a bot to connect and identify")

    def request_reconnect(self) -> None:
        """Send op 7 RECONNECT; discord.py reconnects and RESUMEs."""
        self.gateway.request_reconnect()

    def drop_connections(self, code: int = 4000) -> None:
        """Close gateway sockets with ``code`` (4000: resumable; 4004: authentication failed, fatal)."""
        self.gateway.drop_connections(code)

    # ------------------------------------------------------------------ injecting user actions
    async def invoke_command(
        self,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        user: FakeUser | None = None,
        channel: ChannelRef | None = None,
        guild: FakeGuild | None = None,
        attachments: list[UploadLike] | None = None,
        attachment_size_limit: int | None = None,
        locale: str = "en-US",
        validate: bool = True,
    ) -> InteractionHandle:
        """Run ``/name`` as ``user`` (default: the ordinary member) in ``channel`` (default: #general).

        ``name`` may include subcommands (``"story new"``). Option values are Python values; attachment options
        take ``Upload(filename, data)``, ``(filename, data)`` or bytes, and ``attachments=[...]`` fills
        attachment options not given by name. ``validate=False`` skips the checks the Discord client does
        (required options, choices, ranges, lengths)."""
        target = self._pick_channel(channel, guild)
        record = self._builder.application_command(
            name,
            dict(options or {}),
            user=user or self._default_user(target),
            channel=target,
            attachments=attachments,
            size_limit=attachment_size_limit,
            locale=locale,
            validate=validate,
        )
        return await self._dispatch(record)

    async def click_button(
        self,
        message: MessageRef,
        custom_id: str,
        *,
        user: FakeUser | None = None,
        values: list[str] | None = None,
        attachment_size_limit: int | None = None,
    ) -> InteractionHandle:
        """Press the component ``custom_id`` on ``message`` (``values`` for select menus)."""
        target = self.message(message)
        if target.deleted:
            raise LookupError(f"message {target.id} was deleted; nobody can click it")
        channel = self.state.channel(target.channel_id)
        record = self._builder.component(
            target,
            custom_id,
            user=user or self._default_user(channel),
            values=values,
            size_limit=attachment_size_limit,
        )
        return await self._dispatch(record)

    use_component = click_button

    async def submit_modal(
        self, handle: InteractionHandle, values: dict[str, Any], *, user: FakeUser | None = None
    ) -> InteractionHandle:
        """Submit the modal the bot opened in answer to ``handle``; ``values`` maps custom IDs to text (text
        inputs) or to lists of uploads (file uploads: ``Upload(filename, data)``, ``(filename, data)`` or bytes).
        Too many or too few files for a field raise ``ValueError``, as the Discord client would not send them."""
        record = self._builder.modal_submit(handle.record, values, user=user or handle.record.user)
        return await self._dispatch(record)

    async def _dispatch(self, record: InteractionRecord) -> InteractionHandle:
        if not self.gateway.live_sessions:
            raise RuntimeError("no bot is connected to the fake gateway")
        self.registry.add(record)
        record.dispatched_at = time.perf_counter()
        self.gateway.dispatch("INTERACTION_CREATE", record.payload, record.guild_id)
        await asyncio.sleep(0)
        return InteractionHandle(self, record)

    def _pick_channel(self, channel: ChannelRef | None, guild: FakeGuild | None) -> FakeChannel:
        if channel is not None:
            return self.channel(channel)
        if guild is not None:
            return next(self.state.channels[c] for c in guild.channel_ids if self.state.channels[c].type == TEXT)
        return self.text_channel

    def _default_user(self, channel: FakeChannel) -> FakeUser:
        if channel.is_dm:
            return channel.recipients[0]
        return self.member

    # ------------------------------------------------------------------ acting as users / Discord
    def delete_message(self, channel: ChannelRef, message: MessageRef | None = None) -> None:
        """Delete a message as a user or moderator would; the bot then gets 404 10008 for it.

        Accepts ``(channel, message)`` or just a ``FakeMessage``."""
        if message is None:
            target = self.message(channel)  # type: ignore[arg-type]
        else:
            target = self.message(message)
            if target.channel_id != self.channel(channel).id:
                raise LookupError(f"message {target.id} is not in channel {self.channel(channel).id}")
        self.state.delete_message(target)

    def fail_next(
        self,
        method: str,
        path: str | re.Pattern[str],
        status: int = 429,
        *,
        retry_after: float = 0.05,
        code: int = 0,
        message: str | None = None,
        times: int = 1,
        is_global: bool = False,
    ) -> FaultRule:
        """Answer the next ``times`` calls matching ``method`` (or ``"*"``) and ``path`` with ``status``.

        ``path`` is a glob on the API path (``/channels/*/messages``), a route template
        (``/channels/{channel_id}/messages``) or a compiled regex. 429s carry ``retry_after`` seconds and the
        ``Via`` header discord.py needs to treat them as rate limits."""
        return self.faults.add(
            FaultRule(
                method=method.upper(),
                path=path,
                status=status,
                retry_after=retry_after,
                code=code,
                message=message,
                is_global=is_global,
                remaining=times,
            )
        )

    def delay_next(self, method: str, path: str | re.Pattern[str], seconds: float, *, times: int = 1) -> FaultRule:
        """Answer the next matching calls normally, but only after ``seconds``."""
        return self.faults.add(FaultRule(method=method.upper(), path=path, delay=seconds, remaining=times))

    # ------------------------------------------------------------------ waiting
    def _changed(self) -> None:
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_for(self, predicate: Callable[[], T], timeout: float = 5.0, *, what: str | None = None) -> T:
        """Re-check ``predicate()`` after every change (REST call, message, gateway event) until it returns
        something truthy, and return that; TimeoutError after ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            result = predicate()
            if result:
                return result
            remaining = deadline - loop.time()
            if remaining <= 0:
                recent = ", ".join(repr(c) for c in self.calls[-5:]) or "none"
                raise TimeoutError(
                    f"waited {timeout}s for {what or getattr(predicate, '__name__', 'condition')}; last calls: {recent}"
                )
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.add(waiter)
            try:
                await asyncio.wait_for(waiter, min(remaining, 0.25))
            except TimeoutError:
                pass
            finally:
                self._waiters.discard(waiter)

    async def wait_for_call(
        self,
        method: str | None = None,
        path: str | re.Pattern[str] | None = None,
        *,
        count: int = 1,
        ok: bool | None = None,
        timeout: float = 5.0,
    ) -> list[RecordedCall]:
        """Wait until at least ``count`` recorded calls match (``ok=True``: only 2xx answers)."""

        def matching() -> list[RecordedCall] | None:
            found = [c for c in self.calls.filter(method, path) if ok is None or c.ok == ok]
            return found if len(found) >= count else None

        return await self.wait_for(matching, timeout, what=f"{count}x {method or '*'} {path or '*'}")

    async def wait_for_message(
        self, channel: ChannelRef, predicate: Callable[[FakeMessage], bool] | None = None, *, timeout: float = 5.0
    ) -> FakeMessage:
        """The first current message in ``channel`` satisfying ``predicate`` (any message if None)."""

        def find() -> FakeMessage | None:
            return next((m for m in self.messages_in(channel) if predicate is None or predicate(m)), None)

        return await self.wait_for(find, timeout, what=f"a message in channel {self.channel(channel).id}")

    # ------------------------------------------------------------------ secrets and child processes
    def token_leaks(self) -> list[str]:
        """Where the bot token shows up in anything the bot sent (bodies, files, messages); should be empty."""
        needle = self.token
        leaks = []
        for call in self.calls:
            if call.json is not None and needle in json.dumps(call.json):
                leaks.append(f"{call.method} {call.path} body")
            for upload in call.files:
                if needle.encode() in upload.data:
                    leaks.append(f"{call.method} {call.path} file {upload.filename}")
        for message in self.state.messages.values():
            if needle in message.content or needle in json.dumps(message.embeds):
                leaks.append(f"message {message.id}")
        return leaks

    def write_sitecustomize(self, directory: str | os.PathLike[str]) -> Path:
        """Write a ``sitecustomize.py`` that points a child process's discord.py at ``FAKE_DISCORD_URL``."""
        return write_sitecustomize(directory)

    def subprocess_env(
        self, directory: str | os.PathLike[str], *, base: dict[str, str] | None = None
    ) -> dict[str, str]:
        """Environment for a child bot process: sitecustomize on PYTHONPATH, FAKE_DISCORD_URL, DISCORD_TOKEN."""
        path = write_sitecustomize(directory)
        env = subprocess_env(self.url, path, base=base)
        env["DISCORD_TOKEN"] = self.token
        return env
