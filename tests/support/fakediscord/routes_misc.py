"""Identity, gateway discovery, application commands, guilds, users and the attachment CDN."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from . import errors
from .rest import API_PREFIX, RestContext, body_of, snowflake_param


def add_routes(app: web.Application, ctx: RestContext) -> None:
    state = ctx.state
    r = app.router

    def bot_user() -> dict[str, Any]:
        return {**state.bot.payload(), "verified": True, "mfa_enabled": False, "email": None, "locale": "en-US"}

    def check_app(request: web.Request) -> None:
        if snowflake_param(request, "application_id") != state.application_id:
            raise errors.DiscordError(403, 50001, "Missing Access")

    def scope(request: web.Request) -> int | None:
        if "guild_id" not in request.match_info:
            return None
        guild_id = snowflake_param(request, "guild_id")
        state.guild(guild_id)
        return guild_id

    async def get_me(request: web.Request) -> Any:
        return bot_user()

    async def get_user(request: web.Request) -> Any:
        return state.user(snowflake_param(request, "user_id")).payload()

    async def open_dm(request: web.Request) -> Any:
        recipient = state.user(int((body_of(request).json or {}).get("recipient_id") or 0))
        return state.dm_channel(recipient).payload()

    async def app_info(request: web.Request) -> Any:
        return {
            "id": str(state.application_id),
            "name": state.bot.username,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": state.application_owner.payload(),
            "verify_key": "0" * 64,
            "team": None,
            "flags": 0,
            "bot": state.bot.payload(),
            "interactions_endpoint_url": None,
            "redirect_uris": [],
            "tags": [],
            "integration_types_config": {"0": {}},
        }

    async def gateway(request: web.Request) -> Any:
        return {"url": ctx.ws_url()}

    async def gateway_bot(request: web.Request) -> Any:
        return {
            "url": ctx.ws_url(),
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1},
        }

    # ----------------------------------------------------------------- application commands
    async def list_commands(request: web.Request) -> Any:
        check_app(request)
        return state.commands.list(scope(request))

    async def put_commands(request: web.Request) -> Any:
        check_app(request)
        return state.commands.bulk_overwrite(scope(request), body_of(request).json or [])

    async def post_command(request: web.Request) -> Any:
        check_app(request)
        return state.commands.upsert(scope(request), body_of(request).json or {})

    async def get_command(request: web.Request) -> Any:
        check_app(request)
        return state.commands.get(scope(request), snowflake_param(request, "command_id"))

    async def patch_command(request: web.Request) -> Any:
        check_app(request)
        return state.commands.edit(scope(request), snowflake_param(request, "command_id"), body_of(request).json or {})

    async def delete_command(request: web.Request) -> Any:
        check_app(request)
        state.commands.delete(scope(request), snowflake_param(request, "command_id"))
        return None

    async def command_permissions(request: web.Request) -> Any:
        check_app(request)
        scope(request)
        return []

    # ----------------------------------------------------------------- guilds
    async def get_guild(request: web.Request) -> Any:
        guild = state.guild(snowflake_param(request, "guild_id"))
        data = guild.payload()
        data["approximate_member_count"] = len(guild.members)
        data["approximate_presence_count"] = len(guild.members)
        return data

    async def guild_channels(request: web.Request) -> Any:
        guild = state.guild(snowflake_param(request, "guild_id"))
        return [state.channels[c].payload() for c in guild.channel_ids if not state.channels[c].deleted]

    async def guild_roles(request: web.Request) -> Any:
        return [r.payload() for r in state.guild(snowflake_param(request, "guild_id")).roles.values()]

    async def guild_member(request: web.Request) -> Any:
        guild = state.guild(snowflake_param(request, "guild_id"))
        member = guild.members.get(snowflake_param(request, "user_id"))
        if member is None:
            raise errors.unknown_member()
        return member.payload()

    async def active_threads(request: web.Request) -> Any:
        guild_id = snowflake_param(request, "guild_id")
        state.guild(guild_id)
        threads = [
            c.payload()
            for c in state.channels.values()
            if c.is_thread and c.guild_id == guild_id and not c.deleted and not c.archived
        ]
        return {"threads": threads, "members": []}

    # ----------------------------------------------------------------- CDN
    async def attachment(request: web.Request) -> web.StreamResponse:
        try:
            stored = state.attachments.get(int(request.match_info["attachment_id"]))
        except ValueError:
            stored = None
        if stored is None or stored.filename != request.match_info["filename"]:
            raise web.HTTPNotFound()
        stored.downloads += 1
        content_type = (stored.content_type or "application/octet-stream").split(";")[0]
        return web.Response(body=stored.data, content_type=content_type)

    p = API_PREFIX
    r.add_get(f"{p}/users/@me", get_me)
    r.add_post(f"{p}/users/@me/channels", open_dm)
    r.add_get(f"{p}/users/{{user_id}}", get_user)
    r.add_get(f"{p}/oauth2/applications/@me", app_info)
    r.add_get(f"{p}/applications/@me", app_info)
    r.add_get(f"{p}/gateway", gateway)
    r.add_get(f"{p}/gateway/bot", gateway_bot)
    for base in (f"{p}/applications/{{application_id}}", f"{p}/applications/{{application_id}}/guilds/{{guild_id}}"):
        r.add_get(f"{base}/commands", list_commands)
        r.add_put(f"{base}/commands", put_commands)
        r.add_post(f"{base}/commands", post_command)
        r.add_get(f"{base}/commands/{{command_id:\\d+}}", get_command)
        r.add_patch(f"{base}/commands/{{command_id:\\d+}}", patch_command)
        r.add_delete(f"{base}/commands/{{command_id:\\d+}}", delete_command)
    r.add_get(f"{p}/applications/{{application_id}}/guilds/{{guild_id}}/commands/permissions", command_permissions)
    r.add_get(f"{p}/guilds/{{guild_id}}", get_guild)
    r.add_get(f"{p}/guilds/{{guild_id}}/channels", guild_channels)
    r.add_get(f"{p}/guilds/{{guild_id}}/roles", guild_roles)
    r.add_get(f"{p}/guilds/{{guild_id}}/members/{{user_id}}", guild_member)
    r.add_get(f"{p}/guilds/{{guild_id}}/threads/active", active_threads)
    r.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", attachment)
