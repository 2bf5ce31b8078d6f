"""Characters as plain values: what the registry stores about a trained DreamBooth LoRA and a reference picture
(drawn through IP-Adapter, no training; a trained character may have one too), and the structural checks every
writer of the registry gets (the bot, the CLI and a training job's completion alike).

A character belongs to the guild it was trained in (``guild_id``), so one server's pet never shows up in
another's; characters registered from the command line have no guild and are usable everywhere.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from storyloom.errors import InvalidInput
from storyloom.queue.blobs import check_digest
from storyloom.queue.operation import Row

MAX_NAME_CHARS = 32
MAX_DESCRIPTION_CHARS = 300
MAX_PREVIEW_BYTES = 2 * 1024 * 1024
LOCAL_USER = 0  # ``trained_by`` of characters registered from the command line

# A name is what the story calls the character: a word or a few, starting with a letter or digit.
_NAME_RE = re.compile(r"^[^\W_][\w' -]*$")
# The identifier is the rare token the image model learns (``bhna``): lower-case letters and digits.
_IDENTIFIER_RE = re.compile(r"^[a-z][a-z0-9]{1,15}$")
# The class is a plain noun phrase the model already knows (``cat``, ``teddy bear``).
_CLASS_RE = re.compile(r"^[a-z]+(?:[ -][a-z]+){0,3}$")


class CharacterNotFound(InvalidInput):
    """No character of that name is visible here."""


class CharacterExists(InvalidInput):
    """A character of that name is already registered here."""


def name_key(name: str) -> str:
    """How names are compared: case-folded, inner spaces collapsed (``Mr  Paws`` is ``mr paws``)."""
    return " ".join(name.split()).casefold()


def check_name(name: Any) -> str:
    """The cleaned name, or ``InvalidInput`` saying what a name may be."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("the character's name is empty")
    cleaned = " ".join(name.split())
    if len(cleaned) > MAX_NAME_CHARS or not _NAME_RE.match(cleaned):
        raise InvalidInput(
            f"character name {name!r} is not allowed: use 1-{MAX_NAME_CHARS} letters, digits, spaces, ' or -, "
            "starting with a letter or digit"
        )
    return cleaned


def check_identifier(identifier: Any) -> str:
    if not isinstance(identifier, str) or not _IDENTIFIER_RE.match(identifier.strip()):
        raise InvalidInput(
            f"token {identifier!r} is not allowed: use 2-16 lower-case letters and digits starting with a letter, "
            "ideally a made-up word such as bhna or ohwx"
        )
    return identifier.strip()


def check_reference_weight(weight: Any) -> float:
    """How strongly a character's reference picture guides a picture: 0 (not at all) to 1 (as strongly as it can)."""
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= float(weight) <= 1.0:
        raise InvalidInput(f"the reference weight {weight!r} is not allowed: use a number from 0 to 1")
    return float(weight)


def check_description(description: Any) -> str:
    """The description with its spaces collapsed, or ``InvalidInput`` when it is too long."""
    cleaned = " ".join(description.split()) if isinstance(description, str) else ""
    if len(cleaned) > MAX_DESCRIPTION_CHARS:
        raise InvalidInput(f"the description is longer than {MAX_DESCRIPTION_CHARS} characters ({len(cleaned)})")
    return cleaned


def check_class_name(class_name: Any) -> str:
    cleaned = " ".join(class_name.lower().split()) if isinstance(class_name, str) else ""
    if not _CLASS_RE.match(cleaned) or len(cleaned) > MAX_NAME_CHARS:
        raise InvalidInput(
            f"class {class_name!r} is not allowed: use a plain noun the image model knows, such as cat, dog or "
            "teddy bear (letters only, at most four words)"
        )
    return cleaned


@dataclass(frozen=True)
class NewCharacter:
    """A character to register, once its LoRA file or its reference picture is stored. A reference-only character
    has an empty ``identifier`` and ``lora_path``; its ``class_name`` is a plain word only if the user gave one."""

    name: str
    identifier: str
    class_name: str
    lora_path: str
    lora_digest: str | None = None  # the LoRA file in the store's blobs, readable from every host
    reference_digest: str | None = None  # the reference picture in the store's blobs
    reference_weight: float | None = None  # None: the configured ``characters.reference_weight``
    trained_by: int = LOCAL_USER
    guild_id: int | None = None
    description: str = ""
    preview: bytes | None = None
    job_id: int | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def checked(self) -> NewCharacter:
        """The same character with its text cleaned, or ``InvalidInput`` naming the bad value."""
        if self.lora_path.strip():
            identifier = check_identifier(self.identifier)
            class_name = check_class_name(self.class_name)
            if identifier in class_name.split():
                raise InvalidInput(f"the token {identifier!r} must differ from the class {class_name!r}")
        elif self.reference_digest is None:
            raise InvalidInput("a character needs the path of its LoRA file or a reference picture")
        elif self.identifier or self.lora_digest is not None:
            raise InvalidInput("a character without a LoRA file has no token and no stored LoRA")
        else:
            identifier = ""
            class_name = check_class_name(self.class_name) if self.class_name.strip() else ""
        description = check_description(self.description)
        if self.reference_digest is not None:
            check_digest(self.reference_digest)
        weight = None if self.reference_weight is None else check_reference_weight(self.reference_weight)
        if self.preview is not None and len(self.preview) > MAX_PREVIEW_BYTES:
            raise InvalidInput(f"the preview image is larger than {MAX_PREVIEW_BYTES // 1024 // 1024} MiB")
        return replace(
            self,
            name=check_name(self.name),
            identifier=identifier,
            class_name=class_name,
            description=description,
            reference_weight=weight,
        )

    def row(self, now: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "name_key": name_key(self.name),
            "identifier": self.identifier,
            "class_name": self.class_name,
            "description": self.description,
            "lora_path": self.lora_path,
            "lora_digest": self.lora_digest,
            "reference_digest": self.reference_digest,
            "reference_weight": self.reference_weight,
            "preview": self.preview,
            "trained_by": self.trained_by,
            "guild_id": self.guild_id,
            "job_id": self.job_id,
            "metadata": json.dumps(dict(self.metadata), ensure_ascii=False, sort_keys=True),
            "now": now,
        }


@dataclass(frozen=True)
class CharacterRecord:
    """A registered character: trained (a LoRA; ``token``, e.g. ``bhna cat``, summons its look in a prompt), from a
    reference picture (``reference_digest``, no token), or both."""

    id: int
    name: str
    identifier: str
    class_name: str
    description: str
    lora_path: str
    lora_digest: str | None
    preview: bytes | None
    trained_by: int
    guild_id: int | None
    job_id: int | None
    metadata: Mapping[str, Any]
    created_at: float
    reference_digest: str | None = None
    reference_weight: float | None = None  # None: the configured ``characters.reference_weight``

    @property
    def has_lora(self) -> bool:
        return bool(self.lora_path)

    @property
    def has_reference(self) -> bool:
        return self.reference_digest is not None

    @property
    def token(self) -> str:
        """What a prompt names the character by: the trained ``identifier class`` (``bhna cat``); for a
        reference-only character its plain word, if it has one (else empty)."""
        return f"{self.identifier} {self.class_name}".strip()

    def weight(self, default: float) -> float:
        """The IP-Adapter scale of its reference picture: its own, else ``default`` (the configured one)."""
        return default if self.reference_weight is None else self.reference_weight

    @classmethod
    def from_row(cls, row: Row) -> CharacterRecord:
        preview = row["preview"]
        return cls(
            id=row["id"],
            name=row["name"],
            identifier=row["identifier"],
            class_name=row["class_name"],
            description=row["description"],
            lora_path=row["lora_path"],
            lora_digest=row["lora_digest"],
            preview=None if preview is None else bytes(preview),
            trained_by=row["trained_by"],
            guild_id=row["guild_id"],
            job_id=row["job_id"],
            metadata=MappingProxyType(json.loads(row["metadata"])),
            created_at=row["created_at"],
            reference_digest=row["reference_digest"],
            reference_weight=row["reference_weight"],
        )
