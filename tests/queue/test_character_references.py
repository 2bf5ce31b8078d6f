"""Characters with a reference picture in the store, on both backends: reference-only characters beside trained
ones, a trained character given a reference, their checks, and the reference blob kept while a character uses it."""

from __future__ import annotations

import pytest

from storyloom.errors import InvalidInput
from storyloom.queue import CharacterExists, CharacterNotFound, JobStore, NewCharacter
from tests.support.clock import Clock

DAY = 86400.0


def reference_only(name: str, digest: str, **changes) -> NewCharacter:
    values = {"identifier": "", "class_name": "", "lora_path": "", "reference_digest": digest}
    return NewCharacter(**{"name": name, **values, **changes})


def test_reference_characters_live_beside_trained_ones(database: str) -> None:
    with JobStore.open(database) as store:
        digest = store.put_blob(b"a child's drawing")
        pip = store.add_character(
            reference_only(
                "Pip", digest, guild_id=7, trained_by=42, description=" a  red  dragon ", reference_weight=0.8
            )
        )
        assert (pip.has_reference, pip.has_lora, pip.reference_digest, pip.reference_weight) == (
            True,
            False,
            digest,
            0.8,
        )
        assert (pip.identifier, pip.class_name, pip.lora_path, pip.lora_digest, pip.token) == ("", "", "", None, "")
        assert pip.description == "a red dragon"
        assert pip.weight(0.6) == 0.8

        toy = store.add_character(reference_only("Toy", digest, class_name="Teddy Bear", guild_id=7))
        assert (toy.class_name, toy.token, toy.reference_weight, toy.weight(0.6)) == (
            "teddy bear",
            "teddy bear",
            None,
            0.6,
        )

        mittens = store.add_character(
            NewCharacter(name="Mittens", identifier="bhna", class_name="cat", lora_path="x", guild_id=7)
        )
        assert (mittens.has_lora, mittens.has_reference, mittens.reference_weight) == (True, False, None)
        assert [c.name for c in store.list_characters(guild_id=7)] == ["Mittens", "Pip", "Toy"]
        assert store.character("pip", guild_id=7) == pip

        # one name per guild, whatever kind of character holds it
        with pytest.raises(CharacterExists):
            store.add_character(reference_only("MITTENS", digest, guild_id=7))
        with pytest.raises(CharacterExists):
            store.add_character(
                NewCharacter(name="pip", identifier="ohwx", class_name="dog", lora_path="y", guild_id=7)
            )


def test_a_trained_character_gets_a_reference_picture(database: str) -> None:
    with JobStore.open(database) as store:
        store.add_character(
            NewCharacter(
                name="Mittens", identifier="bhna", class_name="cat", lora_path="x", guild_id=7, preview=b"grid"
            )
        )
        digest = store.put_blob(b"a photo of the cat")
        both = store.set_character_reference("mittens", digest, guild_id=7, weight=0.5)
        assert (both.has_lora, both.has_reference, both.reference_weight, both.preview) == (True, True, 0.5, b"grid")
        assert store.character("Mittens", guild_id=7) == both
        again = store.set_character_reference("Mittens", digest, guild_id=7, preview=b"new")
        assert (again.reference_weight, again.preview) == (None, b"new")

        with pytest.raises(CharacterNotFound, match="'Mittens' is unknown"):
            store.set_character_reference("Mittens", digest, guild_id=8)
        store.add_character(NewCharacter(name="Rex", identifier="zqx", class_name="dog", lora_path="z"))
        with pytest.raises(InvalidInput, match="registered on the command line"):
            store.set_character_reference("Rex", digest, guild_id=7)
        with pytest.raises(InvalidInput, match="from 0 to 1"):
            store.set_character_reference("Mittens", digest, guild_id=7, weight=1.5)
        with pytest.raises(InvalidInput, match="64 hex digits"):
            store.set_character_reference("Mittens", "not a digest", guild_id=7)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"reference_digest": None}, "LoRA file or a reference picture"),
        ({"reference_weight": -0.1}, "from 0 to 1"),
        ({"reference_weight": 2}, "from 0 to 1"),
        ({"description": "x" * 301}, "longer than 300 characters"),
        ({"class_name": "red!"}, "plain noun"),
        ({"identifier": "bhna"}, "no token"),
        ({"name": "  "}, "name is empty"),
    ],
)
def test_a_bad_reference_character_is_refused(changes: dict, message: str) -> None:
    with JobStore.open(":memory:") as store, pytest.raises(InvalidInput, match=message):
        store.add_character(reference_only(changes.pop("name", "Pip"), "a" * 64, **changes))


def test_a_reference_picture_is_kept_while_a_character_uses_it_and_freed_after(database: str) -> None:
    clock = Clock()
    with JobStore.open(database, clock=clock) as store:
        drawing = store.put_blob(b"a drawing")
        photo = store.put_blob(b"a photo")
        store.add_character(reference_only("Pip", drawing, guild_id=7))
        store.add_character(NewCharacter(name="Mittens", identifier="bhna", class_name="cat", lora_path="x"))
        store.set_character_reference("Mittens", photo)
        clock.now += 2 * DAY
        assert store.purge_blobs(older_than_days=1) == 0
        store.delete_character("Pip", guild_id=7)
        assert store.purge_blobs(older_than_days=1) == 1
        assert store.blob(drawing) is None and store.blob(photo) == b"a photo"


def test_a_name_being_trained_is_reserved_for_reference_characters_too(database: str) -> None:
    with JobStore.open(database) as store:
        photos = store.put_blob(b"photos")
        store.enqueue(
            "train_subject",
            {"name": "Biscuit", "identifier": "ohwx", "class_name": "dog", "photos": photos},
            user_id=1,
            guild_id=7,
        )
        with pytest.raises(CharacterExists, match="already being trained"):
            store.add_character(reference_only("biscuit", "a" * 64, guild_id=7))
        assert store.add_character(reference_only("Biscuit", "a" * 64, guild_id=8)).name == "Biscuit"
