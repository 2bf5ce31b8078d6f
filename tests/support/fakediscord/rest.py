"""The REST side: one middleware that does what every Discord endpoint does, then small route modules.

The middleware authenticates (``Authorization: Bot <token>``, except on interaction-token routes), applies
injected faults, records the call, and turns handler results into Discord-shaped JSON. JSON answers carry
``Content-Type: application/json`` exactly: discord.py only decodes JSON on that exact header.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import errors
from .bodies import ParsedBody, parse_body
from .faults import FaultInjector
from .interactions import InteractionRegistry
from .recorder import CallLog, RecordedCall
from .responses import InteractionResponder
from .state import FakeState

_log = logging.getLogger("fakediscord")

API_PREFIX = r"/api/v{version:\d+}"
_PREFIX_RE = re.compile(r"^/api/v\d+")
_PREFIX_TEMPLATE = "/api/v{version}"

#: Routes authenticated by the interaction token in the path instead of the bot token.
_TOKEN_ROUTES = ("/webhooks/{application_id}/{token}", "/interactions/{interaction_id}/{token}/callback")
_PUBLIC_ROUTES = ("/gateway",)

Handler = Callable[[web.Request], Awaitable[Any]]

# aiohttp >= 3.12 prefers typed request keys; older versions take plain strings.
_BODY_KEY: Any = web.RequestKey("fakediscord.body", ParsedBody) if hasattr(web, "RequestKey") else "fakediscord.body"


@dataclass
class Reply:
    """A non-200 answer from a handler (handlers may also return plain JSON data, or None for 204)."""

    status: int
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class RestContext:
    """Everything route handlers need; one per fake server."""

    state: FakeState
    registry: InteractionRegistry
    responder: InteractionResponder
    faults: FaultInjector
    calls: CallLog
    token: str
    ws_url: Callable[[], str]
    on_change: Callable[[], None]
    #: Calls to routes the fake does not implement, so a bot engineer sees what is missing.
    unhandled: list[RecordedCall] = field(default_factory=list)


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> web.Response:
    if status == 204 or data is None:
        return web.Response(status=204 if status < 300 else status, headers=headers)
    return web.Response(
        status=status,
        body=json.dumps(data).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )


def body_of(request: web.Request) -> ParsedBody:
    return request[_BODY_KEY]


def snowflake_param(request: web.Request, name: str) -> int:
    """A path snowflake; Discord answers malformed ones with 404 like an unknown resource."""
    try:
        return int(request.match_info[name])
    except ValueError:
        raise errors.not_found_route() from None


def make_middleware(ctx: RestContext):
    @web.middleware
    async def discord_api(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith("/api/"):
            return await handler(request)
        api_path = _PREFIX_RE.sub("", request.path) or "/"
        route = _route_template(request)
        call = RecordedCall(
            seq=len(ctx.calls) + 1,
            method=request.method,
            path=api_path,
            route=route,
            query=dict(request.query),
            json=None,
        )
        ctx.calls.append(call)
        extra_headers: dict[str, str] = {}
        try:
            body = await parse_body(request)
            call.json, call.files = body.json, body.files
            request[_BODY_KEY] = body
            if route not in _PUBLIC_ROUTES and not route.startswith(_TOKEN_ROUTES) and route:
                if request.headers.get("Authorization") != f"Bot {ctx.token}":
                    raise errors.unauthorized()
            rule = ctx.faults.take(request.method, api_path, route)
            if rule is not None and rule.delay:
                await asyncio.sleep(rule.delay)
            if rule is not None and rule.status is not None:
                status, data, extra_headers = rule.error_response()
                call.injected = True
            else:
                result = await handler(request)
                if isinstance(result, Reply):
                    status, data, extra_headers = result.status, result.data, result.headers
                else:
                    status, data = (200, result) if result is not None else (204, None)
        except errors.DiscordError as exc:
            status, data = exc.status, exc.body()
        except web.HTTPMethodNotAllowed:
            status, data = 405, {"message": "405: Method Not Allowed", "code": 0}
            ctx.unhandled.append(call)
        except web.HTTPNotFound:
            status, data = 404, {"message": "404: Not Found", "code": 0}
            ctx.unhandled.append(call)
        call.status, call.response = status, data
        if call in ctx.unhandled:
            _log.warning("fake Discord does not implement %s %s (answered %s)", call.method, call.path, status)
        ctx.on_change()
        return json_response(status, data, extra_headers)

    return discord_api


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return ""
    canonical = resource.canonical
    return canonical[len(_PREFIX_TEMPLATE) :] if canonical.startswith(_PREFIX_TEMPLATE) else canonical
