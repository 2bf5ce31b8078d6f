"""The message limits Discord enforces server-side.

A fake that accepted anything would let a bot pass tests and then fail in production on a 2,001-character
message or a sixth button row, so these checks answer with the same 400/50035 Discord sends.
"""

from __future__ import annotations

from typing import Any

from . import errors
from .entities import walk_components

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_EMBED_TOTAL = 6000
MAX_FILES = 10
MAX_ROWS = 5
MAX_ROW_BUTTONS = 5
MAX_CUSTOM_ID = 100
MAX_BUTTON_LABEL = 80
IS_COMPONENTS_V2 = 1 << 15


def check_message_body(body: dict[str, Any], file_count: int) -> None:
    """Raise :class:`DiscordError` for a create/edit body Discord would refuse."""
    content = body.get("content")
    if content is not None and len(str(content)) > MAX_CONTENT:
        raise errors.invalid_form_body("content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT} or fewer in length.")
    if file_count > MAX_FILES:
        raise errors.invalid_form_body("files", "MAX_FILES", f"Must be {MAX_FILES} or fewer in length.")
    _check_embeds(body.get("embeds") or [])
    flags = int(body.get("flags") or 0)
    components = body.get("components") or []
    if flags & IS_COMPONENTS_V2:
        if body.get("content") or body.get("embeds"):
            raise errors.invalid_form_body(
                "content",
                "MESSAGE_CANNOT_USE_LEGACY_FIELDS_WITH_COMPONENTS_V2",
                "The 'content' and 'embeds' fields cannot be used when using MessageFlags.IS_COMPONENTS_V2",
            )
    else:
        _check_legacy_rows(components)
    _check_custom_ids(components)


def _check_embeds(embeds: list[dict[str, Any]]) -> None:
    if len(embeds) > MAX_EMBEDS:
        raise errors.invalid_form_body("embeds", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
    total = 0
    for index, embed in enumerate(embeds):
        for key, limit in (("title", 256), ("description", 4096)):
            value = embed.get(key) or ""
            if len(value) > limit:
                raise errors.invalid_form_body(
                    f"embeds.{index}.{key}", "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length."
                )
            total += len(value)
        for field in embed.get("fields") or []:
            total += len(field.get("name") or "") + len(field.get("value") or "")
    if total > MAX_EMBED_TOTAL:
        raise errors.invalid_form_body("embeds", "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def _check_legacy_rows(components: list[dict[str, Any]]) -> None:
    if len(components) > MAX_ROWS:
        raise errors.invalid_form_body("components", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_ROWS} or fewer in length.")
    for index, row in enumerate(components):
        if row.get("type") != 1:
            raise errors.invalid_form_body(
                f"components.{index}.type",
                "UNION_TYPE_CHOICES",
                'Value of field "type" must be one of (1,) without the IS_COMPONENTS_V2 flag.',
            )
        children = row.get("components") or []
        buttons = [c for c in children if c.get("type") == 2]
        if len(buttons) > MAX_ROW_BUTTONS or (buttons and len(buttons) != len(children)) or len(children) == 0:
            raise errors.invalid_form_body(
                f"components.{index}.components",
                "BASE_TYPE_MAX_LENGTH",
                "An action row holds 1 to 5 buttons or exactly one select menu.",
            )


def _check_custom_ids(components: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for component in walk_components(components):
        if component.get("type") == 2:
            label = component.get("label") or ""
            if len(label) > MAX_BUTTON_LABEL:
                raise errors.invalid_form_body(
                    "components.label", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_BUTTON_LABEL} or fewer in length."
                )
            if component.get("style") == 5:
                if not component.get("url") or "custom_id" in component:
                    raise errors.invalid_form_body("components.url", "BASE_TYPE_REQUIRED", "Link buttons need a url.")
                continue
            if component.get("style") != 6 and not component.get("custom_id"):
                raise errors.invalid_form_body("components.custom_id", "BASE_TYPE_REQUIRED", "This field is required")
        custom_id = component.get("custom_id")
        if custom_id is None:
            continue
        if len(custom_id) > MAX_CUSTOM_ID:
            raise errors.invalid_form_body(
                "components.custom_id", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CUSTOM_ID} or fewer in length."
            )
        if custom_id in seen:
            raise errors.invalid_form_body(
                "components.custom_id", "COMPONENT_CUSTOM_ID_DUPLICATED", "Component custom id cannot be duplicated"
            )
        seen.add(custom_id)
