"""Permission bits used by the fake guilds.

Only the bits a bot cares about are named; the values are Discord's. Members' effective permissions are sent in
interaction payloads (``member.permissions``, ``app_permissions``) so command checks such as "managers may cancel
any job" can be exercised.
"""

from __future__ import annotations

ADMINISTRATOR = 1 << 3
MANAGE_CHANNELS = 1 << 4
MANAGE_GUILD = 1 << 5
ADD_REACTIONS = 1 << 6
VIEW_CHANNEL = 1 << 10
SEND_MESSAGES = 1 << 11
MANAGE_MESSAGES = 1 << 13
EMBED_LINKS = 1 << 14
ATTACH_FILES = 1 << 15
READ_MESSAGE_HISTORY = 1 << 16
USE_APPLICATION_COMMANDS = 1 << 31
MANAGE_THREADS = 1 << 34
CREATE_PUBLIC_THREADS = 1 << 35
CREATE_PRIVATE_THREADS = 1 << 36
SEND_MESSAGES_IN_THREADS = 1 << 38

#: Every bit Discord defines today (and a few spare), what an administrator effectively has.
ALL = (1 << 52) - 1

#: What ``@everyone`` may do in a freshly created community server.
EVERYONE_DEFAULT = (
    VIEW_CHANNEL
    | SEND_MESSAGES
    | ADD_REACTIONS
    | EMBED_LINKS
    | ATTACH_FILES
    | READ_MESSAGE_HISTORY
    | USE_APPLICATION_COMMANDS
    | CREATE_PUBLIC_THREADS
    | SEND_MESSAGES_IN_THREADS
)

#: What the bot's managed role is granted by the usual invite link for a story bot.
BOT_DEFAULT = EVERYONE_DEFAULT | MANAGE_MESSAGES | MANAGE_THREADS | CREATE_PRIVATE_THREADS


def effective(role_permissions: list[int]) -> int:
    """Combine role permissions the way Discord does at guild level: OR them, administrators get everything."""
    combined = 0
    for value in role_permissions:
        combined |= value
    return ALL if combined & ADMINISTRATOR else combined
