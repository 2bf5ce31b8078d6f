"""Injected failures: "answer the next matching call with a 429/500/…", once or a few times.

Rules are consumed in the order they were added, so a test can script "first post 429, second post 500" and
then check the bot still delivered everything exactly once.
"""

from __future__ import annotations

import fnmatch
import math
import re
from dataclasses import dataclass
from typing import Any

_DEFAULT_MESSAGES = {
    400: "400: Bad Request",
    403: "Missing Permissions",
    404: "404: Not Found",
    429: "You are being rate limited.",
    500: "500: Internal Server Error",
    502: "502: Bad Gateway",
    503: "503: Service Unavailable",
}


@dataclass
class FaultRule:
    method: str
    path: str | re.Pattern[str]
    status: int | None = None
    retry_after: float = 0.05
    code: int = 0
    message: str | None = None
    is_global: bool = False
    delay: float = 0.0
    remaining: int = 1

    def matches(self, method: str, path: str, route: str) -> bool:
        if self.method != "*" and self.method != method:
            return False
        if isinstance(self.path, re.Pattern):
            return self.path.search(path) is not None
        return fnmatch.fnmatchcase(path, self.path) or self.path == route

    def error_response(self) -> tuple[int, dict[str, Any], dict[str, str]]:
        """Status, JSON body and extra headers of the injected answer (``status`` must be set)."""
        assert self.status is not None
        message = self.message or _DEFAULT_MESSAGES.get(self.status, f"{self.status}: Error")
        if self.status == 429:
            # discord.py needs both the JSON body and a Via header, or it assumes a Cloudflare ban.
            body = {"message": message, "retry_after": self.retry_after, "global": self.is_global}
            if self.code:
                body["code"] = self.code
            headers = {
                "Via": "1.1 google",
                "Retry-After": str(max(1, math.ceil(self.retry_after))),
                "X-RateLimit-Scope": "global" if self.is_global else "user",
            }
            if self.is_global:
                headers["X-RateLimit-Global"] = "true"
            return 429, body, headers
        return self.status, {"code": self.code, "message": message}, {}


class FaultInjector:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> FaultRule:
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str, route: str) -> FaultRule | None:
        """The first live rule matching this call, consuming one of its uses."""
        for rule in self.rules:
            if rule.remaining > 0 and rule.matches(method, path, route):
                rule.remaining -= 1
                if rule.remaining == 0:
                    self.rules.remove(rule)
                return rule
        return None

    @property
    def pending(self) -> list[FaultRule]:
        return list(self.rules)
