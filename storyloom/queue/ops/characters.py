"""The characters registry: add, find, list and delete characters (trained, from a reference picture, or both).

Adding is also a step of a training job's completion (``insert_character``), so a character is registered in
the same transaction that marks its training job succeeded: there is never a registered character without a
finished job, nor a succeeded job whose character is missing.
"""

from __future__ import annotations

from typing import NoReturn

from storyloom.errors import InvalidInput
from storyloom.queue import sql
from storyloom.queue.character import CharacterExists, CharacterNotFound, CharacterRecord, NewCharacter, name_key
from storyloom.queue.operation import Steps, one, query, reads, writes
from storyloom.queue.ops.training import check_name_free


@writes
def add_character(new: NewCharacter, now: float) -> Steps[CharacterRecord]:
    """Register ``new`` on its own: its name must be free of characters and of trainings waiting or running where
    it would be seen (serialized with enqueues, which reserve trainings' names)."""
    yield from query(sql.SERIALIZE_ENQUEUE, {"key": sql.ENQUEUE_LOCK_KEY})
    yield from check_name_free(new.name, new.guild_id)
    return (yield from insert_character(new, now))


def insert_character(new: NewCharacter, now: float) -> Steps[CharacterRecord]:
    """Insert ``new`` (already checked); ``CharacterExists`` when its name is taken where it would be seen."""
    taken = yield from one(sql.SELECT_VISIBLE_CHARACTER, {"name_key": name_key(new.name), "guild_id": new.guild_id})
    if taken is not None:  # the guild's own name, or one registered from the command line (seen everywhere)
        raise CharacterExists(f"a character named {taken['name']!r} already exists; choose another name")
    row = yield from one(sql.INSERT_CHARACTER, new.row(now))
    assert row is not None
    return CharacterRecord.from_row(row)


@reads
def find_character(name: str, guild_id: int | None) -> Steps[CharacterRecord | None]:
    row = yield from one(sql.SELECT_VISIBLE_CHARACTER, {"name_key": name_key(name), "guild_id": guild_id})
    return None if row is None else CharacterRecord.from_row(row)


@reads
def get_character(name: str, guild_id: int | None) -> Steps[CharacterRecord]:
    """The character, or ``CharacterNotFound`` naming the ones that do exist here."""
    row = yield from one(sql.SELECT_VISIBLE_CHARACTER, {"name_key": name_key(name), "guild_id": guild_id})
    if row is not None:
        return CharacterRecord.from_row(row)
    rows = yield from query(sql.LIST_CHARACTERS, {"guild_id": guild_id, "all_guilds": False})
    raise CharacterNotFound(_unknown_message(name, [r["name"] for r in rows]))


@reads
def list_characters(guild_id: int | None, all_guilds: bool) -> Steps[list[CharacterRecord]]:
    rows = yield from query(sql.LIST_CHARACTERS, {"guild_id": guild_id, "all_guilds": all_guilds})
    return [CharacterRecord.from_row(row) for row in rows]


@writes
def delete_character(name: str, guild_id: int | None) -> Steps[CharacterRecord]:
    """Remove the character of exactly this scope (a guild cannot delete the command line's characters)."""
    row = yield from one(sql.DELETE_CHARACTER, {"name_key": name_key(name), "guild_id": guild_id})
    if row is not None:
        return CharacterRecord.from_row(row)
    return (yield from _not_in_scope(name, guild_id, "delete"))


@writes
def set_character_reference(
    name: str, guild_id: int | None, digest: str, weight: float | None, preview: bytes | None
) -> Steps[CharacterRecord]:
    """Give the character of exactly this scope a (new) reference picture, already stored as blob ``digest``."""
    row = yield from one(
        sql.SET_CHARACTER_REFERENCE,
        {
            "name_key": name_key(name),
            "guild_id": guild_id,
            "reference_digest": digest,
            "reference_weight": weight,
            "preview": preview,
        },
    )
    if row is not None:
        return CharacterRecord.from_row(row)
    return (yield from _not_in_scope(name, guild_id, "change"))


def _not_in_scope(name: str, guild_id: int | None, verb: str) -> Steps[NoReturn]:
    """Why a character of this scope could not be changed: it is the command line's (``verb`` it there), or there
    is none of that name (listing the scope's own)."""
    seen = yield from one(sql.SELECT_VISIBLE_CHARACTER, {"name_key": name_key(name), "guild_id": guild_id})
    if seen is not None:
        raise InvalidInput(f"character {seen['name']!r} was registered on the command line; {verb} it there")
    rows = yield from query(sql.LIST_CHARACTERS, {"guild_id": guild_id, "all_guilds": False})
    raise CharacterNotFound(_unknown_message(name, [r["name"] for r in rows if r["guild_id"] == guild_id]))


def _unknown_message(name: str, known: list[str]) -> str:
    listing = (
        f"known characters: {', '.join(sorted(known, key=str.casefold))}"
        if known
        else "no characters are registered yet"
    )
    return f"character {name!r} is unknown; {listing}"
