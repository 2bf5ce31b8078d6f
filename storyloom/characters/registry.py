"""The characters registry as the rest of storyloom uses it, over the store's ``add/character/list/delete``
methods: checks of a training request, the story engine's lookup, where a character's LoRA lives, and removing
its files. Torch-free, so the bot can use every function here.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from storyloom.domain.paths import from_data_dir, slug
from storyloom.domain.story.plan import Character, CharacterLookup
from storyloom.errors import InvalidInput
from storyloom.queue.character import CharacterRecord, check_class_name, check_identifier, check_name

CHARACTERS_DIR = "characters"


@dataclass(frozen=True)
class CharacterRequest:
    """A checked request to train a character; ``warnings`` are worth showing but do not stop it."""

    name: str
    identifier: str
    class_name: str
    description: str = ""
    warnings: tuple[str, ...] = ()


def check_character_request(name: str, identifier: str, class_name: str, description: str = "") -> CharacterRequest:
    """Cleaned values, or ``InvalidInput`` naming the bad one; a common word as token only warns."""
    name = check_name(name)
    identifier = check_identifier(identifier)
    class_name = check_class_name(class_name)
    if identifier in class_name.split():
        raise InvalidInput(f"the token {identifier!r} must differ from the class {class_name!r}")
    description = " ".join(description.split())
    return CharacterRequest(name, identifier, class_name, description, tuple(identifier_warnings(identifier)))


def identifier_warnings(identifier: str) -> list[str]:
    if identifier.lower() in common_words():
        return [
            f"the token {identifier!r} is a common English word: the model already knows a meaning for it, and "
            "that meaning will blend into the character; a made-up word such as bhna or ohwx works better"
        ]
    return []


def common_words() -> frozenset[str]:
    text = resources.files(__package__).joinpath("common_words.txt").read_text(encoding="utf-8")
    return frozenset(word for line in text.splitlines() if not line.startswith("#") for word in line.split())


def story_character(record: CharacterRecord) -> Character:
    """The story engine's view of a registered character."""
    return Character(
        name=record.name, identifier=record.identifier, class_name=record.class_name, description=record.description
    )


def registry_lookup(find: Callable[[str], CharacterRecord]) -> CharacterLookup:
    """A ``CharacterLookup`` over ``find`` (e.g. ``lambda name: store.character(name, guild_id=...)``), which
    raises ``CharacterNotFound`` listing the known names."""
    return lambda name: story_character(find(name))


def lora_file(record: CharacterRecord, data_dir: Path) -> Path:
    return from_data_dir(record.lora_path, data_dir)


def adapter_name(record: CharacterRecord) -> str:
    """The LoRA's adapter name in the pipeline: unique per character, valid as a module attribute."""
    return f"character_{record.id}"


def job_output_dir(data_dir: Path, name: str, job_id: int) -> Path:
    """Where a training job writes its character: one directory per job, so two jobs never share files and a
    job that is resumed after a crash finds its own checkpoint."""
    return data_dir / CHARACTERS_DIR / f"{slug(name, fallback='character')}-job{job_id}"


def remove_character_files(record: CharacterRecord, data_dir: Path) -> bool:
    """Delete the directory of a (just unregistered) character's LoRA, if it lies under ``<data_dir>/characters``.
    Files anywhere else were put there by hand and are left alone. Returns whether anything was removed."""
    root = (data_dir / CHARACTERS_DIR).expanduser().resolve()
    directory = lora_file(record, data_dir).resolve().parent
    if directory == root or root not in directory.parents or not directory.is_dir():
        return False
    shutil.rmtree(directory)
    return True
