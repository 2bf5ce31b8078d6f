"""What happens when the bot answers an interaction: callbacks and the interaction webhook.

The rules follow Discord: one callback per interaction, within ``ack_deadline`` seconds (3 s on Discord, else
10062 Unknown interaction); followups and ``@original`` edits only after that callback and while the token
lives (15 minutes on Discord, expire it early with ``InteractionHandle.expire()``). A deferred (type 5)
response is a "thinking…" placeholder; by default the first followup fills it in, as Discord does.
"""

from __future__ import annotations

import time
from typing import Any

from . import errors
from .bodies import UploadedFile
from .entities import EPHEMERAL, LOADING, FakeMessage
from .interactions import (
    APPLICATION_COMMAND,
    AUTOCOMPLETE,
    MESSAGE_COMPONENT,
    MODAL_SUBMIT,
    Ack,
    InteractionRecord,
    InteractionRegistry,
    elapsed_ms,
)
from .state import FakeState

PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
AUTOCOMPLETE_RESULT = 8
MODAL = 9

MAX_MODAL_TITLE = 45
MAX_MODAL_COMPONENTS = 5

_ALLOWED = {
    APPLICATION_COMMAND: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, MODAL},
    MESSAGE_COMPONENT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, MODAL},
    MODAL_SUBMIT: {CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE},
    AUTOCOMPLETE: {AUTOCOMPLETE_RESULT},
}


class InteractionResponder:
    def __init__(
        self,
        state: FakeState,
        registry: InteractionRegistry,
        *,
        ack_deadline: float | None = 3.0,
        followup_replaces_deferred: bool = True,
    ) -> None:
        self.state = state
        self.registry = registry
        self.ack_deadline = ack_deadline
        self.followup_replaces_deferred = followup_replaces_deferred

    # ------------------------------------------------------------------ POST /interactions/{id}/{token}/callback
    def callback(self, interaction_id: int, token: str, body: Any, files: list[UploadedFile]) -> dict[str, Any]:
        record = self.registry.by_id.get(interaction_id)
        if record is None or record.token != token:
            raise errors.unknown_interaction()
        if record.acks:
            raise errors.already_acknowledged()
        if self.ack_deadline is not None and record.dispatched_at is not None:
            if time.perf_counter() - record.dispatched_at > self.ack_deadline:
                raise errors.unknown_interaction()
        if not isinstance(body, dict) or "type" not in body:
            raise errors.invalid_form_body("type", "BASE_TYPE_REQUIRED", "This field is required")
        kind = int(body["type"])
        if kind not in _ALLOWED.get(record.type, set()):
            raise errors.DiscordError(400, 40043, f"Interaction response type {kind} is not valid for this interaction")
        data = body.get("data") or {}
        elapsed = elapsed_ms(record.dispatched_at)
        message = self._apply_callback(record, kind, data, files)
        record.acks.append(Ack(type=kind, elapsed_ms=elapsed, data=data or None))
        record.acked.set()
        self.state.on_change()
        interaction: dict[str, Any] = {
            "id": str(record.id),
            "type": record.type,
            "response_message_id": str(message.id) if message else None,
            "response_message_loading": kind == DEFERRED_CHANNEL_MESSAGE,
            "response_message_ephemeral": bool(message and message.ephemeral),
        }
        resource: dict[str, Any] = {"type": kind}
        if message is not None:
            resource["message"] = self.state.message_payload(message)
        return {"interaction": interaction, "resource": resource}

    def _apply_callback(
        self, record: InteractionRecord, kind: int, data: dict[str, Any], files: list[UploadedFile]
    ) -> FakeMessage | None:
        state = self.state
        common = dict(
            webhook_id=state.application_id,
            interaction_id=record.id,
            interaction_metadata=record.metadata(),
            size_limit=record.attachment_size_limit,
            message_type=20 if record.type == APPLICATION_COMMAND else 0,
            allow_ephemeral=True,
        )
        if kind == CHANNEL_MESSAGE:
            message = state.create_message(record.channel_id, state.bot, data, files, **common)
            record.original_message_id = message.id
            return message
        if kind == DEFERRED_CHANNEL_MESSAGE:
            flags = int(data.get("flags") or 0) & EPHEMERAL
            message = state.create_message(
                record.channel_id, state.bot, {"flags": flags}, [], extra_flags=LOADING, **common
            )
            record.original_message_id = message.id
            return message
        if kind in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            source = state.message(record.source_message_id or 0, allow_ephemeral=True)
            record.original_message_id = source.id
            if kind == UPDATE_MESSAGE:
                state.edit_message(source, data, files, size_limit=record.attachment_size_limit)
                return source
            return None
        if kind == AUTOCOMPLETE_RESULT:
            record.autocomplete_choices = list(data.get("choices") or [])
            return None
        if kind == MODAL:
            for key in ("custom_id", "title", "components"):
                if not data.get(key):
                    raise errors.invalid_form_body(f"data.{key}", "BASE_TYPE_REQUIRED", "This field is required")
            if len(data["title"]) > MAX_MODAL_TITLE:
                raise errors.invalid_form_body(
                    "data.title", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_MODAL_TITLE} or fewer in length."
                )
            if len(data["components"]) > MAX_MODAL_COMPONENTS:
                raise errors.invalid_form_body(
                    "data.components", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_MODAL_COMPONENTS} or fewer in length."
                )
            record.modal = data
            return None
        raise errors.DiscordError(400, 40043, f"Unsupported interaction response type {kind}")

    # ------------------------------------------------------------------ /webhooks/{application_id}/{token}
    def webhook_record(self, application_id: int, token: str) -> InteractionRecord:
        """The interaction behind a webhook token, or the error Discord gives for a bad/expired/unused one."""
        if application_id != self.state.application_id:
            raise errors.unknown_webhook()
        record = self.registry.by_token(token)
        if record is None or record.token_expired:
            raise errors.invalid_webhook_token()
        if not record.acks:
            raise errors.unknown_webhook()  # followups before the initial response are refused
        return record

    def followup(
        self,
        record: InteractionRecord,
        body: dict[str, Any],
        files: list[UploadedFile],
        *,
        thread_id: int | None = None,
    ) -> FakeMessage:
        state = self.state
        original = state.messages.get(record.original_message_id or 0)
        if self.followup_replaces_deferred and not record.followup_ids and original is not None and original.loading:
            if original.deleted:
                # Discord: a user deleted the "thinking…" message, the first followup then fails with 10008.
                raise errors.unknown_message()
            message = state.edit_message(original, body, files, size_limit=record.attachment_size_limit)
            record.followup_ids.append(message.id)
            return message
        channel_id = record.channel_id
        if thread_id is not None:
            thread = state.channel(thread_id)
            if not thread.is_thread or thread.parent_id != record.channel_id:
                raise errors.unknown_channel()
            channel_id = thread.id
        message = state.create_message(
            channel_id,
            state.bot,
            body,
            files,
            webhook_id=state.application_id,
            interaction_id=record.id,
            interaction_metadata=record.metadata(),
            size_limit=record.attachment_size_limit,
            allow_ephemeral=True,
        )
        record.followup_ids.append(message.id)
        return message

    def webhook_message(self, record: InteractionRecord, ref: str) -> FakeMessage:
        """``@original`` or a followup ID of this interaction; anything else is 10008 Unknown Message."""
        if ref == "@original":
            message_id = record.original_message_id
        else:
            try:
                message_id = int(ref)
            except ValueError:
                raise errors.unknown_message() from None
            if message_id != record.original_message_id and message_id not in record.followup_ids:
                raise errors.unknown_message()
        if message_id is None:
            raise errors.unknown_message()
        return self.state.message(message_id, allow_ephemeral=True)

    def edit(self, record: InteractionRecord, ref: str, body: dict[str, Any], files: list[UploadedFile]) -> FakeMessage:
        message = self.webhook_message(record, ref)
        return self.state.edit_message(message, body, files, size_limit=record.attachment_size_limit)

    def delete(self, record: InteractionRecord, ref: str) -> None:
        self.state.delete_message(self.webhook_message(record, ref))
