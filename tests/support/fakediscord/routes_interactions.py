"""Interaction callbacks and the interaction webhook (followups, ``@original``), authenticated by token."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .rest import API_PREFIX, RestContext, body_of, snowflake_param


def add_routes(app: web.Application, ctx: RestContext) -> None:
    state = ctx.state
    responder = ctx.responder
    r = app.router

    def record_of(request: web.Request):
        return responder.webhook_record(snowflake_param(request, "application_id"), request.match_info["token"])

    async def callback(request: web.Request) -> Any:
        body = body_of(request)
        result = responder.callback(
            snowflake_param(request, "interaction_id"), request.match_info["token"], body.json, body.files
        )
        # Without ?with_response=true Discord answers 204; discord.py always asks for the resource.
        return result if request.query.get("with_response") in ("1", "true", "True") else None

    async def followup(request: web.Request) -> Any:
        record = record_of(request)
        body = body_of(request)
        thread_id = int(request.query["thread_id"]) if request.query.get("thread_id") else None
        message = responder.followup(record, body.json or {}, body.files, thread_id=thread_id)
        wait = request.query.get("wait", "false").lower() in ("1", "true")
        return state.message_payload(message) if wait else None

    async def get_message(request: web.Request) -> Any:
        return state.message_payload(responder.webhook_message(record_of(request), request.match_info["message"]))

    async def edit_message(request: web.Request) -> Any:
        body = body_of(request)
        message = responder.edit(record_of(request), request.match_info["message"], body.json or {}, body.files)
        return state.message_payload(message)

    async def delete_message(request: web.Request) -> Any:
        responder.delete(record_of(request), request.match_info["message"])
        return None

    r.add_post(f"{API_PREFIX}/interactions/{{interaction_id}}/{{token}}/callback", callback)
    w = f"{API_PREFIX}/webhooks/{{application_id}}/{{token}}"
    r.add_post(w, followup)
    r.add_get(f"{w}/messages/{{message}}", get_message)
    r.add_patch(f"{w}/messages/{{message}}", edit_message)
    r.add_delete(f"{w}/messages/{{message}}", delete_message)
