"""What a story is once written: plain, JSON-serialisable data saved as ``story.json`` in the book.

The plan is everything a later job needs (a page job, a redraw, a continuation, the book renderer),
so it holds no model objects. Page seeds derive from one base seed, so every page is reproducible
and a redraw changes exactly one page's seed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from storyloom.errors import InvalidInput

PLAN_FILE = "story.json"


@dataclass(frozen=True)
class Character:
    """A character trained into the image model: ``identifier`` + ``class_name`` (``bhna`` + ``cat``)
    is what Stable Diffusion learned; ``name`` is what the story calls them."""

    name: str
    identifier: str
    class_name: str
    description: str = ""

    @property
    def token(self) -> str:
        """The words that summon the trained look in a prompt, e.g. ``bhna cat``."""
        return f"{self.identifier} {self.class_name}".strip()


# Looks a character up by name; raises InvalidInput (listing the known names) when it is unknown.
CharacterLookup = Callable[[str], Character]


def character_lookup(characters: Mapping[str, Character] | None = None) -> CharacterLookup:
    """A lookup over a fixed mapping (the registry of trained characters plugs in the same way)."""
    known = {name.lower(): character for name, character in (characters or {}).items()}

    def lookup(name: str) -> Character:
        found = known.get(name.strip().lower())
        if found is None:
            names = ", ".join(sorted(character.name for character in known.values()))
            listing = f"known characters: {names}" if names else "no characters are registered yet"
            raise InvalidInput(f"character {name!r} is unknown; {listing}")
        return found

    return lookup


class _Plain(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CastMember(_Plain):
    """One main character with the single visual description used on every page."""

    name: str
    description: str
    token: str = ""  # trained identifier + class (``bhna cat``) for registered characters

    @classmethod
    def from_character(cls, character: Character) -> CastMember:
        """A registered character keeps its trained look: its token and its own description."""
        description = character.description or (f"a {character.class_name}" if character.class_name else "")
        # A character known from a reference picture was never trained: no token, its name and description.
        token = character.token if character.identifier else ""
        return cls(name=character.name, description=description or "a storybook character", token=token)

    def prompt_text(self) -> str:
        if self.token:
            # Emphasis (AUTOMATIC1111 syntax) keeps the trained character from being drowned by the scene.
            return f"(({self.token})), {self.description}".rstrip(", ")
        return f"{self.name}, {self.description}"


class PagePlan(_Plain):
    number: int  # 1-based, across all chapters
    chapter: int
    text: str
    scene: str
    characters: list[str] = Field(default_factory=list)
    positions: dict[str, str] = Field(default_factory=dict)  # name -> left/center/right where several appear
    prompt: str
    negative_prompt: str
    seed: int
    source: Literal["model", "fallback"] = "fallback"

    @property
    def image_name(self) -> str:
        return f"page-{self.number:02d}.png"


class ChapterPlan(_Plain):
    number: int
    title: str
    summary: str
    text: str
    synopsis: str = ""


class StoryPlan(_Plain):
    """A whole book: title, cast, style, seeds, chapters and pages."""

    version: int = 1
    title: str
    summary: str
    language: str = "en"
    direction: Literal["ltr", "rtl"] = "ltr"
    style: str
    base_seed: int
    character: str = ""  # the first registered character (as plans had before ``characters``)
    characters: list[str] = Field(default_factory=list)  # every registered character, up to three
    cast: list[CastMember] = Field(default_factory=list)
    chapters: list[ChapterPlan] = Field(default_factory=list)
    pages: list[PagePlan] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def page(self, index: int) -> PagePlan:
        """Page ``index`` (0-based) or a clear error."""
        if not 0 <= index < len(self.pages):
            raise InvalidInput(f"page {index + 1} does not exist; this story has {len(self.pages)} pages")
        return self.pages[index]

    @property
    def synopsis(self) -> str:
        return " ".join(chapter.synopsis for chapter in self.chapters if chapter.synopsis)

    def save(self, book_dir: Path | str) -> Path:
        """Write ``story.json`` atomically (a crash never leaves half a plan)."""
        directory = Path(book_dir)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / PLAN_FILE
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".story-", suffix=".json")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(self.model_dump_json(indent=2))
        os.replace(temporary, target)
        return target

    @classmethod
    def load(cls, book_dir: Path | str) -> StoryPlan:
        path = Path(book_dir) / PLAN_FILE
        if not path.is_file():
            raise InvalidInput(f"{book_dir} is not a story book (no {PLAN_FILE})")
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InvalidInput(f"{path} is damaged and cannot be read ({type(exc).__name__})") from None
