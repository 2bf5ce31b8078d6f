"""The gateway websocket: HELLO, IDENTIFY → READY + GUILD_CREATE, heartbeats, RESUME and event dispatch.

Frames are plain JSON text (discord.py asks for zlib-stream but accepts text frames). Every connection has one
writer task fed by a queue, so events leave in the order the fake produced them and sequence numbers never
interleave; each session keeps a bounded buffer of sent events so RESUME can replay what a client missed.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from .state import FakeState

HELLO, HEARTBEAT, IDENTIFY, PRESENCE_UPDATE, VOICE_STATE, RESUME, RECONNECT = 10, 1, 2, 3, 4, 6, 7
REQUEST_GUILD_MEMBERS, INVALID_SESSION, HEARTBEAT_ACK, DISPATCH = 8, 9, 11, 0

GUILDS = 1 << 0
GUILD_MEMBERS = 1 << 1
GUILD_MESSAGES = 1 << 9
GUILD_MESSAGE_REACTIONS = 1 << 10
DIRECT_MESSAGES = 1 << 12

_EVENT_INTENTS: dict[str, tuple[int, int]] = {
    # event: (intent needed for guild events, intent needed for DM events)
    "GUILD_CREATE": (GUILDS, GUILDS),
    "CHANNEL_CREATE": (GUILDS, GUILDS),
    "CHANNEL_UPDATE": (GUILDS, GUILDS),
    "THREAD_CREATE": (GUILDS, GUILDS),
    "THREAD_UPDATE": (GUILDS, GUILDS),
    "GUILD_MEMBER_ADD": (GUILD_MEMBERS, GUILD_MEMBERS),
    "MESSAGE_CREATE": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_UPDATE": (GUILD_MESSAGES, DIRECT_MESSAGES),
    "MESSAGE_DELETE": (GUILD_MESSAGES, DIRECT_MESSAGES),
}

#: How many sent events a session keeps for RESUME.
REPLAY_BUFFER = 1000


@dataclass
class GatewaySession:
    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    buffer: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=REPLAY_BUFFER))
    connection: GatewayConnection | None = None
    resumes: int = 0

    def covers(self, guild_id: int | None) -> bool:
        """Whether this session's shard receives events of ``guild_id`` (Discord's rule; DMs go to shard 0)."""
        if not self.shard:
            return True
        shard_id, shard_count = self.shard
        return (0 if guild_id is None else (guild_id >> 22) % shard_count) == shard_id

    def wants(self, event: str, guild_id: int | None) -> bool:
        if not self.covers(guild_id):
            return False
        needed = _EVENT_INTENTS.get(event)
        if needed is None:
            return True
        return bool(self.intents & (needed[0] if guild_id is not None else needed[1]))

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        raw = json.dumps({"op": DISPATCH, "t": event, "s": self.seq, "d": data})
        self.buffer.append((self.seq, raw))
        if self.connection is not None:
            self.connection.send_raw(raw)


class GatewayConnection:
    """One websocket; frames go through a queue drained by a single writer task."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.session: GatewaySession | None = None
        self.heartbeats = 0
        self._queue: asyncio.Queue[str | tuple[str, int, str]] = asyncio.Queue()

    @property
    def open(self) -> bool:
        return not self.ws.closed

    def send(self, payload: dict[str, Any]) -> None:
        self.send_raw(json.dumps(payload))

    def send_raw(self, raw: str) -> None:
        self._queue.put_nowait(raw)

    def close(self, code: int, reason: str = "") -> None:
        """Close after everything already queued has been sent."""
        self._queue.put_nowait(("close", code, reason))

    async def run_writer(self) -> None:
        while True:
            item = await self._queue.get()
            if isinstance(item, tuple):
                _, code, reason = item
                await self.ws.close(code=code, message=reason.encode())
                return
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(item)
            except (ConnectionError, RuntimeError):
                return


class Gateway:
    def __init__(
        self,
        state: FakeState,
        token: str,
        *,
        heartbeat_interval_ms: int = 41_250,
        ws_url: Callable[[], str],
        on_change: Callable[[], None],
    ) -> None:
        self.state = state
        self._token = token
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self._ws_url = ws_url
        self._on_change = on_change
        self.sessions: dict[str, GatewaySession] = {}
        self.connections: set[GatewayConnection] = set()
        #: Every op code received, in order, for tests (``(op, data)``; tokens are removed).
        self.received: list[tuple[int, Any]] = []
        self.identify_count = 0
        self.close_codes: list[int] = []
        self._writers: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ queries
    @property
    def live_sessions(self) -> list[GatewaySession]:
        return [s for s in self.sessions.values() if s.connection is not None and s.connection.open]

    @property
    def heartbeats(self) -> int:
        return sum(c.heartbeats for c in self.connections)

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, event: str, data: dict[str, Any], guild_id: int | None = None) -> int:
        """Send ``event`` to every live session that asked for it; returns how many got it."""
        sent = 0
        for session in self.live_sessions:
            if session.wants(event, guild_id):
                session.dispatch(event, data)
                sent += 1
        return sent

    def request_reconnect(self) -> None:
        """Send op 7 RECONNECT to every connection, as Discord does before moving a client."""
        for connection in list(self.connections):
            connection.send({"op": RECONNECT, "d": None})

    def drop_connections(self, code: int = 4000) -> None:
        """Close every socket with ``code`` (4000 = resumable error; 4004 etc. are fatal for discord.py)."""
        for connection in list(self.connections):
            connection.close(code, "closed by the fake")

    async def shutdown(self) -> None:
        for connection in list(self.connections):
            connection.close(1001, "server shutting down")
        if self._writers:
            await asyncio.wait(self._writers, timeout=2.0)

    # ------------------------------------------------------------------ websocket handler
    async def handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(max_msg_size=0, autoping=True)
        await ws.prepare(request)
        connection = GatewayConnection(ws)
        self.connections.add(connection)
        writer = asyncio.create_task(connection.run_writer(), name="fakediscord-gateway-writer")
        self._writers.add(writer)
        writer.add_done_callback(self._writers.discard)
        connection.send({"op": HELLO, "d": {"heartbeat_interval": self.heartbeat_interval_ms}})
        # A client that stops heartbeating is a zombie; Discord drops it, and so does the fake (bounded loop).
        idle_timeout = self.heartbeat_interval_ms / 1000 * 1.5 + 5
        try:
            while not ws.closed:
                try:
                    msg = await ws.receive(timeout=idle_timeout)
                except TimeoutError:
                    connection.close(4009, "Session timed out")
                    break
                if msg.type is aiohttp.WSMsgType.TEXT:
                    if not self._on_frame(connection, msg.data):
                        break
                elif msg.type is aiohttp.WSMsgType.BINARY:
                    connection.close(4002, "Error while decoding payload")
                    break
                else:
                    break
        finally:
            if ws.close_code is not None:
                self.close_codes.append(ws.close_code)
            if connection.session is not None and connection.session.connection is connection:
                connection.session.connection = None
            self.connections.discard(connection)
            connection.close(1000)  # also wakes the writer if the client closed first
            try:
                await asyncio.wait_for(asyncio.shield(writer), timeout=2.0)
            except (TimeoutError, asyncio.CancelledError):
                writer.cancel()
            self._on_change()
        return ws

    def _on_frame(self, connection: GatewayConnection, raw: str) -> bool:
        """Handle one client frame; False ends the connection."""
        try:
            frame = json.loads(raw)
            op = int(frame["op"])
        except (ValueError, KeyError, TypeError):
            connection.close(4002, "Error while decoding payload")
            return False
        data = frame.get("d")
        self.received.append((op, _without_token(data)))
        if op == HEARTBEAT:
            connection.heartbeats += 1
            connection.send({"op": HEARTBEAT_ACK})
            return True
        if op == IDENTIFY:
            return self._identify(connection, data or {})
        if op == RESUME:
            return self._resume(connection, data or {})
        if op == REQUEST_GUILD_MEMBERS:
            self._members_chunk(connection, data or {})
            return True
        if op in (PRESENCE_UPDATE, VOICE_STATE):
            return True
        connection.close(4001, "Unknown opcode")
        return False

    def _identify(self, connection: GatewayConnection, data: dict[str, Any]) -> bool:
        if data.get("token") != self._token:
            connection.close(4004, "Authentication failed.")
            return False
        if connection.session is not None:
            connection.close(4005, "Already authenticated.")
            return False
        self.identify_count += 1
        session = GatewaySession(
            session_id=secrets.token_hex(16), intents=int(data.get("intents") or 0), shard=data.get("shard")
        )
        self.sessions[session.session_id] = session
        session.connection = connection
        connection.session = session
        guilds = [guild for guild in self._bot_guilds() if session.covers(guild.id)]
        ready: dict[str, Any] = {
            "v": 10,
            "user": {**self.state.bot.payload(), "verified": True, "mfa_enabled": False, "email": None},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self._ws_url(),
            "application": {"id": str(self.state.application_id), "flags": 0},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
            "_trace": ["fakediscord"],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        session.dispatch("READY", ready)
        if session.intents & GUILDS:
            for guild in guilds:
                session.dispatch("GUILD_CREATE", self.guild_create_payload(guild.id))
        self._on_change()
        return True

    def _resume(self, connection: GatewayConnection, data: dict[str, Any]) -> bool:
        if data.get("token") != self._token:
            connection.close(4004, "Authentication failed.")
            return False
        session = self.sessions.get(str(data.get("session_id")))
        last_seq = int(data.get("seq") or 0)
        replayable = session is not None and (not session.buffer or session.buffer[0][0] <= last_seq + 1)
        if session is None or not replayable or (session.connection is not None and session.connection.open):
            connection.send({"op": INVALID_SESSION, "d": False})
            return True
        session.connection = connection
        connection.session = session
        session.resumes += 1
        for seq, raw in list(session.buffer):
            if seq > last_seq:
                connection.send_raw(raw)
        session.dispatch("RESUMED", {"_trace": ["fakediscord"]})
        self._on_change()
        return True

    def _members_chunk(self, connection: GatewayConnection, data: dict[str, Any]) -> None:
        session = connection.session
        if session is None:
            return
        guild = self.state.guilds.get(int(data.get("guild_id") or 0))
        if guild is None:
            return
        wanted = {int(u) for u in data.get("user_ids") or []}
        query = data.get("query") or ""
        members = [
            m.payload()
            for m in guild.members.values()
            if (not wanted or m.user.id in wanted) and m.user.username.startswith(query)
        ]
        chunk: dict[str, Any] = {
            "guild_id": str(guild.id),
            "members": members,
            "chunk_index": 0,
            "chunk_count": 1,
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    # ------------------------------------------------------------------ payloads
    def _bot_guilds(self):
        return [g for g in self.state.guilds.values() if self.state.bot.id in g.members]

    def guild_create_payload(self, guild_id: int) -> dict[str, Any]:
        state = self.state
        guild = state.guilds[guild_id]
        channels = [state.channels[c].payload() for c in guild.channel_ids if not state.channels[c].deleted]
        threads = [
            c.payload()
            for c in state.channels.values()
            if c.is_thread and c.guild_id == guild.id and not c.deleted and not c.archived
        ]
        bot_member = guild.members[state.bot.id]
        return {
            **guild.payload(),
            "unavailable": False,
            "joined_at": bot_member.joined_at,
            "large": False,
            "member_count": len(guild.members),
            "members": [m.payload() for m in guild.members.values()],
            "channels": channels,
            "threads": threads,
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
        }


def _without_token(data: Any) -> Any:
    """Strip the token from IDENTIFY/RESUME before keeping the frame for tests to read."""
    if isinstance(data, dict) and "token" in data:
        return {**data, "token": "<redacted>"}
    return data
