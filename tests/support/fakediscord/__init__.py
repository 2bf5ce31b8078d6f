"""A fake Discord (REST API v10 + gateway) on 127.0.0.1 that the unmodified discord.py client talks to.

Used by the end-to-end tests: real HTTP, real multipart uploads, a real websocket, no mocks. Start it with
``async with FakeDiscord() as fake:``; see ``server.FakeDiscord`` for the test-side API.
"""

from .entities import FakeAttachment, FakeChannel, FakeGuild, FakeMember, FakeMessage, FakeRole, FakeUser
from .factories import World
from .handles import InteractionHandle
from .interactions import Ack, Upload
from .patching import point_discord_at, subprocess_env, write_sitecustomize
from .recorder import RecordedCall
from .server import FakeDiscord
from .snowflakes import DISCORD_EPOCH_MS, SnowflakeFactory, snowflake_time_ms

__all__ = [
    "Ack",
    "DISCORD_EPOCH_MS",
    "FakeAttachment",
    "FakeChannel",
    "FakeDiscord",
    "FakeGuild",
    "FakeMember",
    "FakeMessage",
    "FakeRole",
    "FakeUser",
    "InteractionHandle",
    "RecordedCall",
    "SnowflakeFactory",
    "Upload",
    "World",
    "point_discord_at",
    "snowflake_time_ms",
    "subprocess_env",
    "write_sitecustomize",
]
