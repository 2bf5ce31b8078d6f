"""The default world every test starts from: one guild with the people and channels bot tests need.

* ``owner`` (owns the guild), ``manager`` (a role with MANAGE_GUILD), ``member`` (ordinary user)
* ``text_channel`` (#general, not age-restricted), ``nsfw_channel`` (#after-dark, age-restricted),
  ``no_threads_channel`` (#announcements, where thread creation is refused with 403 Missing Permissions)
* ``dm_channel``: the DM between the bot and ``member``
"""

from __future__ import annotations

from dataclasses import dataclass

from . import permissions as perms
from .entities import FakeChannel, FakeGuild, FakeRole, FakeUser
from .snowflakes import SnowflakeFactory
from .state import DEFAULT_ATTACHMENT_LIMIT, FakeState


@dataclass
class World:
    bot: FakeUser
    owner: FakeUser
    manager: FakeUser
    member: FakeUser
    guild: FakeGuild
    bot_role: FakeRole
    manager_role: FakeRole
    text_channel: FakeChannel
    nsfw_channel: FakeChannel
    no_threads_channel: FakeChannel
    dm_channel: FakeChannel


def build_state(ids: SnowflakeFactory, *, bot_name: str = "storyloom") -> FakeState:
    """An empty world holding only the bot account and its application."""
    bot = FakeUser(id=ids.next(), username=bot_name, bot=True)
    app_owner = FakeUser(id=ids.next(), username="app-owner")
    return FakeState(ids, bot=bot, application_id=bot.id, owner=app_owner)


def build_default_world(state: FakeState, *, attachment_size_limit: int = DEFAULT_ATTACHMENT_LIMIT) -> World:
    owner = state.add_user("olivia-owner", global_name="Olivia")
    manager = state.add_user("max-manager", global_name="Max")
    member = state.add_user("mia-member", global_name="Mia")
    guild = state.add_guild("Storyloom Test Server", owner, attachment_size_limit=attachment_size_limit)
    manager_role = state.add_role(guild, "Managers", perms.EVERYONE_DEFAULT | perms.MANAGE_GUILD)
    bot_role = state.add_role(guild, state.bot.username, perms.BOT_DEFAULT, managed=True)
    state.add_member(guild, manager, [manager_role])
    state.add_member(guild, member)
    state.add_member(guild, state.bot, [bot_role])
    text = state.add_text_channel(guild, "general", nsfw=False)
    nsfw = state.add_text_channel(guild, "after-dark", nsfw=True)
    no_threads = state.add_text_channel(guild, "announcements", threads_allowed=False)
    return World(
        bot=state.bot,
        owner=owner,
        manager=manager,
        member=member,
        guild=guild,
        bot_role=bot_role,
        manager_role=manager_role,
        text_channel=text,
        nsfw_channel=nsfw,
        no_threads_channel=no_threads,
        dm_channel=state.dm_channel(member),
    )
