"""What a test holds after injecting an interaction: the ack, the original response, the followups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .entities import FakeMessage, FakeUser
from .interactions import Ack, InteractionRecord

if TYPE_CHECKING:
    from .server import FakeDiscord


class InteractionHandle:
    def __init__(self, fake: FakeDiscord, record: InteractionRecord) -> None:
        self._fake = fake
        self.record = record

    def __repr__(self) -> str:
        name = self.record.name or (self.record.payload.get("data") or {}).get("custom_id")
        return f"<InteractionHandle {self.id} {name!r} acks={[a.type for a in self.record.acks]}>"

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def token(self) -> str:
        return self.record.token

    @property
    def payload(self) -> dict[str, Any]:
        """The INTERACTION_CREATE payload as sent to the bot."""
        return self.record.payload

    # ------------------------------------------------------------------ acknowledgement
    @property
    def ack(self) -> Ack | None:
        return self.record.acks[0] if self.record.acks else None

    async def wait_ack(self, timeout: float = 5.0) -> Ack:
        """The callback (``.type``: 4 message, 5 deferred, 6 deferred update, 7 update, 9 modal) and its
        ``.elapsed_ms`` since the fake dispatched the interaction."""
        try:
            await asyncio.wait_for(self.record.acked.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"{self!r} was not acknowledged within {timeout}s") from None
        return self.record.acks[0]

    # ------------------------------------------------------------------ messages
    def original_response(self) -> FakeMessage | None:
        """The current original response (for component interactions: the message the component is on)."""
        message = self._fake.state.messages.get(self.record.original_message_id or 0)
        return None if message is None or message.deleted else message

    @property
    def followups(self) -> list[FakeMessage]:
        found = (self._fake.state.messages.get(i) for i in self.record.followup_ids)
        return [m for m in found if m is not None and not m.deleted]

    @property
    def messages(self) -> list[FakeMessage]:
        """Original response and followups, without duplicates (a followup may fill the deferred original)."""
        result: list[FakeMessage] = []
        for message in [self.original_response(), *self.followups]:
            if message is not None and all(m.id != message.id for m in result):
                result.append(message)
        return result

    async def wait_original(
        self, predicate: Callable[[FakeMessage], bool] | None = None, timeout: float = 5.0
    ) -> FakeMessage:
        """Wait until the original response exists, is no longer "thinking…", and satisfies ``predicate``."""

        def ready() -> FakeMessage | None:
            message = self.original_response()
            if message is None or message.loading:
                return None
            return message if predicate is None or predicate(message) else None

        return await self._fake.wait_for(ready, timeout)

    async def wait_followups(self, count: int = 1, timeout: float = 5.0) -> list[FakeMessage]:
        return await self._fake.wait_for(lambda: self.followups if len(self.followups) >= count else None, timeout)

    # ------------------------------------------------------------------ modals, autocomplete, expiry
    @property
    def modal(self) -> dict[str, Any] | None:
        return self.record.modal

    @property
    def autocomplete_choices(self) -> list[dict[str, Any]] | None:
        return self.record.autocomplete_choices

    async def submit_modal(self, values: dict[str, Any], *, user: FakeUser | None = None) -> InteractionHandle:
        return await self._fake.submit_modal(self, values, user=user)

    def expire(self) -> None:
        """Make the interaction token invalid now, as Discord does after 15 minutes."""
        self.record.token_expired = True
