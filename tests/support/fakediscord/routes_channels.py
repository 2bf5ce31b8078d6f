"""Channels, messages, threads, reactions and typing: what a bot does with its own token by channel ID."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from aiohttp import web

from . import errors
from .entities import PUBLIC_THREAD, iso_now
from .rest import API_PREFIX, RestContext, body_of, snowflake_param


def add_routes(app: web.Application, ctx: RestContext) -> None:
    state = ctx.state
    r = app.router

    def channel_of(request: web.Request):
        return state.channel(snowflake_param(request, "channel_id"))

    def message_of(request: web.Request):
        channel = channel_of(request)
        return state.message(snowflake_param(request, "message_id"), channel.id)

    async def get_channel(request: web.Request) -> Any:
        return channel_of(request).payload()

    async def patch_channel(request: web.Request) -> Any:
        return state.update_channel(channel_of(request), body_of(request).json or {}).payload()

    async def list_messages(request: web.Request) -> Any:
        channel = channel_of(request)
        query = request.query
        limit = max(1, min(100, int(query.get("limit", 50))))
        messages = sorted(state.messages_in(channel.id, include_ephemeral=False), key=lambda m: m.id)
        if "before" in query:
            messages = [m for m in messages if m.id < int(query["before"])]
            messages = messages[-limit:]
        elif "after" in query:
            messages = [m for m in messages if m.id > int(query["after"])][:limit]
        elif "around" in query:
            around = int(query["around"])
            older = [m for m in messages if m.id <= around][-(limit - limit // 2) :]
            newer = [m for m in messages if m.id > around][: limit // 2]
            messages = older + newer
        else:
            messages = messages[-limit:]
        return [state.message_payload(m) for m in reversed(messages)]  # newest first, like Discord

    async def create_message(request: web.Request) -> Any:
        channel = channel_of(request)
        if channel.is_thread and channel.archived:
            if channel.locked:  # only moderators may post in (or reopen) a locked thread
                raise errors.thread_archived()
            channel.archived = False  # a message reopens an archived thread that is not locked
        body = body_of(request)
        message = state.create_message(channel.id, state.bot, body.json or {}, body.files)
        return state.message_payload(message)

    async def get_message(request: web.Request) -> Any:
        return state.message_payload(message_of(request))

    async def edit_message(request: web.Request) -> Any:
        message = message_of(request)
        if message.author.id != state.bot.id:
            raise errors.DiscordError(403, 50005, "Cannot edit a message authored by another user")
        body = body_of(request)
        return state.message_payload(state.edit_message(message, body.json or {}, body.files))

    async def delete_message(request: web.Request) -> Any:
        state.delete_message(message_of(request))
        return None

    async def thread_from_message(request: web.Request) -> Any:
        channel = channel_of(request)
        data = body_of(request).json or {}
        thread = state.create_thread(
            channel.id,
            state.bot,
            data.get("name"),
            message_id=snowflake_param(request, "message_id"),
            auto_archive_duration=int(data.get("auto_archive_duration") or 1440),
        )
        return thread.payload()

    async def thread_without_message(request: web.Request) -> Any:
        channel = channel_of(request)
        data = body_of(request).json or {}
        thread = state.create_thread(
            channel.id,
            state.bot,
            data.get("name"),
            type=int(data.get("type") or PUBLIC_THREAD),
            auto_archive_duration=int(data.get("auto_archive_duration") or 1440),
        )
        return thread.payload()

    def thread_of(request: web.Request):
        channel = channel_of(request)
        if not channel.is_thread:
            raise errors.wrong_channel_type()
        return channel

    def member_id(request: web.Request) -> int:
        raw = request.match_info["user_id"]
        return state.bot.id if raw == "@me" else snowflake_param(request, "user_id")

    async def join_thread(request: web.Request) -> Any:
        thread = thread_of(request)
        thread.member_ids.add(state.user(member_id(request)).id)
        ctx.on_change()
        return None

    async def leave_thread(request: web.Request) -> Any:
        thread_of(request).member_ids.discard(member_id(request))
        ctx.on_change()
        return None

    def thread_member(thread, user_id: int) -> dict[str, Any]:
        return {"id": str(thread.id), "user_id": str(user_id), "join_timestamp": iso_now(), "flags": 0}

    async def get_thread_member(request: web.Request) -> Any:
        thread = thread_of(request)
        user_id = member_id(request)
        if user_id not in thread.member_ids:
            raise errors.unknown_member()
        return thread_member(thread, user_id)

    async def list_thread_members(request: web.Request) -> Any:
        thread = thread_of(request)
        return [thread_member(thread, u) for u in sorted(thread.member_ids)]

    async def typing(request: web.Request) -> Any:
        channel_of(request)
        return None

    def emoji_of(request: web.Request) -> str:
        return unquote(request.match_info["emoji"])

    async def add_reaction(request: web.Request) -> Any:
        state.add_reaction(message_of(request), emoji_of(request), state.bot)
        return None

    async def remove_reaction(request: web.Request) -> Any:
        state.remove_reaction(message_of(request), emoji_of(request), state.bot)
        return None

    p = f"{API_PREFIX}/channels/{{channel_id}}"
    r.add_get(p, get_channel)
    r.add_patch(p, patch_channel)
    r.add_get(f"{p}/messages", list_messages)
    r.add_post(f"{p}/messages", create_message)
    r.add_get(f"{p}/messages/{{message_id}}", get_message)
    r.add_patch(f"{p}/messages/{{message_id}}", edit_message)
    r.add_delete(f"{p}/messages/{{message_id}}", delete_message)
    r.add_post(f"{p}/messages/{{message_id}}/threads", thread_from_message)
    r.add_post(f"{p}/threads", thread_without_message)
    r.add_get(f"{p}/thread-members", list_thread_members)
    r.add_get(f"{p}/thread-members/{{user_id}}", get_thread_member)
    r.add_put(f"{p}/thread-members/{{user_id}}", join_thread)
    r.add_delete(f"{p}/thread-members/{{user_id}}", leave_thread)
    r.add_post(f"{p}/typing", typing)
    r.add_put(f"{p}/messages/{{message_id}}/reactions/{{emoji}}/@me", add_reaction)
    r.add_delete(f"{p}/messages/{{message_id}}/reactions/{{emoji}}/@me", remove_reaction)
