"""Planning the pictures: a cast sheet made once per story and one scene per page.

The model is asked for JSON (title, characters with one fixed look each, a scene per page). The
answer is repaired, validated item by item (one bad page does not sink the others) and retried once
with another seed when nothing usable came back; whatever is still missing is built deterministically
from the page text, so a plan always comes out, even from a model that writes garbage.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storyloom.domain.story.cast import fallback_positions, fallback_scene, first_mention, guess_cast, mentioned
from storyloom.domain.story.plan import CastMember
from storyloom.domain.story.safety import SafetyScreen
from storyloom.domain.story.scenes import MAX_PAGE_CHARACTERS, MAX_SCENE_CHARS, place_characters
from storyloom.domain.story.text import looks_like_text, shorten
from storyloom.errors import InvalidInput
from storyloom.models.runtime.step_progress import CancelCheck
from storyloom.models.story.json_reply import parse_json_object
from storyloom.models.story.prompts import CastHint, plan_request
from storyloom.models.story.writer import LanguageModel

logger = logging.getLogger(__name__)

MAX_CAST = 4
MAX_DESCRIPTION_CHARS = 160
# Answer budget of the JSON plan: title and cast, plus a scene of at most 30 words per page.
_PLAN_TOKENS = 100
_PLAN_TOKENS_PER_PAGE = 60


class _SceneJSON(BaseModel):
    model_config = ConfigDict(extra="ignore")
    page: int
    scene: str = Field(validation_alias=AliasChoices("scene", "description", "illustration", "picture"))
    characters: list[str] = Field(default_factory=list, validation_alias=AliasChoices("characters", "cast", "who"))
    positions: dict[str, str] = Field(default_factory=dict)  # name -> left/center/right, as the model placed them

    @model_validator(mode="before")
    @classmethod
    def _positions_from_characters(cls, value: Any) -> Any:
        """``"characters": [{"name": "Pip", "position": "left"}]`` places them as the model says."""
        if not isinstance(value, dict):
            return value
        found = value.get("positions")
        positions = {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}
        for key in ("characters", "cast", "who"):
            items = value.get(key)
            if isinstance(items, list):
                for item in items:
                    if isinstance(item, dict) and isinstance(item.get("position") or item.get("where"), str):
                        positions.setdefault(str(item.get("name", "")), str(item.get("position") or item["where"]))
        return {**value, "positions": positions}

    @field_validator("characters", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [str(item.get("name", "")) if isinstance(item, dict) else str(item) for item in value]
        return value


class _CastJSON(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    description: str = Field(validation_alias=AliasChoices("description", "look", "appearance"))


@dataclass(frozen=True)
class PlannedPage:
    text: str
    scene: str
    characters: list[str]
    source: str  # "model" or "fallback"
    positions: dict[str, str] = field(default_factory=dict)  # name -> left/center/right when several appear


@dataclass(frozen=True)
class ScenePlan:
    """The planner's answer: a title suggestion, the cast sheet and a scene for every page."""

    title: str | None
    cast: list[CastMember]
    pages: list[PlannedPage]
    attempts: int
    notes: list[str] = field(default_factory=list)


class StoryPlanner:
    """Turns page texts into scenes and a cast sheet with the language model, falling back to the text."""

    def __init__(
        self, lm: LanguageModel, *, temperature: float, screen: SafetyScreen | None = None, retries: int = 1
    ) -> None:
        self.lm = lm
        self.temperature = temperature
        self.screen = screen or SafetyScreen()
        self.retries = retries

    def __call__(
        self,
        pages: list[str],
        *,
        known_cast: list[CastMember] | None = None,
        summary: str = "",
        seed: int = 0,
        should_cancel: CancelCheck | None = None,
    ) -> ScenePlan:
        known_cast = list(known_cast or [])
        data, attempts = self._ask(pages, known_cast, seed, should_cancel)
        title, model_cast, scenes = self._read(data, len(pages))
        notes: list[str] = []
        cast = _merge_cast(known_cast, model_cast or guess_cast("\n".join(pages), summary))
        if not model_cast:
            notes.append("cast sheet built from the text (the model gave none)")
        planned: list[PlannedPage] = []
        for number, text in enumerate(pages, start=1):
            scene = scenes.get(number)
            if scene is not None:
                shown = {name.lower() for name in scene.characters}
                names = [m.name for m in cast if m.name.lower() in shown or mentioned(m.name, text)]
                names = _on_one_page(names, scene.characters, text)
                positions = place_characters(names, scene.positions) if scene.positions else None
                planned.append(
                    PlannedPage(text, scene.scene, names, "model", positions or fallback_positions(names, text))
                )
                continue
            names = _on_one_page([member.name for member in cast if mentioned(member.name, text)], [], text)
            if not names and cast:
                names = [cast[0].name]  # a picture-book page shows its hero unless the text says who else
            scene_text = fallback_scene(text, summary)
            planned.append(PlannedPage(text, scene_text, names, "fallback", fallback_positions(names, text)))
        missing = sum(1 for page in planned if page.source == "fallback")
        if missing:
            notes.append(f"{missing} of {len(pages)} scenes built from the page text")
        return ScenePlan(title, cast, planned, attempts, notes)

    def _ask(
        self, pages: list[str], known_cast: list[CastMember], seed: int, should_cancel: CancelCheck | None
    ) -> tuple[dict[str, Any] | None, int]:
        hints = [CastHint(member.name, member.description) for member in known_cast]
        budget = _PLAN_TOKENS + _PLAN_TOKENS_PER_PAGE * len(pages)
        request = plan_request(pages, known_cast=hints, max_new_tokens=budget, temperature=self.temperature)
        attempts = 0
        for attempt in range(1 + self.retries):
            if should_cancel is not None and should_cancel():
                break
            attempts += 1
            try:
                answer = self.lm.generate(request, seed=seed + attempt, should_cancel=should_cancel).text
            except InvalidInput as exc:  # the story is too long for one planning prompt: plan from the text
                logger.info("scene planning skipped: %s", exc)
                return None, attempts
            data = parse_json_object(answer)
            if data is not None and self._read(data, len(pages))[2]:
                return data, attempts
            logger.info("scene plan attempt %d gave no usable JSON", attempts)
        return None, attempts

    def _read(
        self, data: dict[str, Any] | None, count: int
    ) -> tuple[str | None, list[CastMember], dict[int, _SceneJSON]]:
        """Title, cast and scenes by page number: every item validated on its own; bad ones dropped."""
        if not data:
            return None, [], {}
        title = data.get("title")
        title = shorten(title, 80) if isinstance(title, str) and self._usable(title, min_letters=2) else None
        cast: list[CastMember] = []
        for item in _items(data, "characters", "cast"):
            try:
                entry = _CastJSON.model_validate(item)
            except ValidationError:
                continue
            name = shorten(entry.name, 40)
            if self._usable(name, min_letters=1) and self._usable(entry.description):
                cast.append(CastMember(name=name, description=shorten(entry.description, MAX_DESCRIPTION_CHARS)))
        scenes: dict[int, _SceneJSON] = {}
        for item in _items(data, "pages", "scenes"):
            try:
                scene = _SceneJSON.model_validate(item)
            except ValidationError:
                continue
            if 1 <= scene.page <= count and scene.page not in scenes and self._usable(scene.scene, min_letters=8):
                scenes[scene.page] = scene.model_copy(update={"scene": shorten(scene.scene, MAX_SCENE_CHARS)})
        return title, cast[:MAX_CAST], scenes

    def _usable(self, text: str, *, min_letters: int = 3) -> bool:
        return looks_like_text(text, min_letters=min_letters) and self.screen.check(text).allowed


def _on_one_page(names: list[str], shown: list[str], text: str) -> list[str]:
    """At most three characters share a picture: those the plan shows first, then the earliest mentioned."""
    if len(names) <= MAX_PAGE_CHARACTERS:
        return names
    order = {name.lower(): index for index, name in enumerate(shown)}
    ranked = sorted(names, key=lambda name: (order.get(name.lower(), len(order)), first_mention(name, text)))
    kept = set(ranked[:MAX_PAGE_CHARACTERS])
    return [name for name in names if name in kept]


def _items(data: dict[str, Any], *keys: str) -> list[Any]:
    for key in keys:
        value = data.get(key)
        if isinstance(value, list):
            return value
    return []


def _merge_cast(known: list[CastMember], new: list[CastMember]) -> list[CastMember]:
    """Known (registered or earlier-chapter) characters keep their look; new names are added after."""
    merged = list(known)
    names = {member.name.lower() for member in merged}
    for member in new:
        if member.name.lower() not in names and len(merged) < MAX_CAST + len(known):
            merged.append(member)
            names.add(member.name.lower())
    return merged
