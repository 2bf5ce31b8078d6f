"""The planner with a scripted language model: valid, malformed and garbage JSON, retries and fallbacks."""

from __future__ import annotations

import json

from storyloom.domain.story.plan import CastMember
from storyloom.domain.story.scenes import compose_prompt
from storyloom.domain.story.styles import get_style, style_presets
from storyloom.models.story.planner import StoryPlanner
from storyloom.models.story.testing import ScriptedLanguageModel

PAGES = [
    "Bhna the cat lived by the sea. She loved watching boats.",
    "One day Pip the dog knocked on the door. They went into the forest.",
    "At the top of the hill they found a garden and a kind dragon.",
]
GOOD = {
    "title": "Bhna and the Dragon",
    "characters": [
        {"name": "Bhna", "description": "a small orange cat with a blue scarf"},
        {"name": "Pip", "description": "a fluffy white puppy with a red collar"},
    ],
    "pages": [
        {"page": 1, "scene": "a small cat at a window looking at sailing boats", "characters": ["Bhna"]},
        {"page": 2, "scene": "a puppy at a wooden door, a forest path behind", "characters": ["Pip", "Bhna"]},
        {"page": 3, "scene": "a sunny garden on a hill with a friendly dragon", "characters": ["Bhna", "Pip"]},
    ],
}


def _planner(*answers: str) -> tuple[StoryPlanner, ScriptedLanguageModel]:
    lm = ScriptedLanguageModel(answers)
    return StoryPlanner(lm, temperature=0.3), lm


def test_valid_json_gives_model_scenes_and_a_cast_sheet():
    planner, lm = _planner(json.dumps(GOOD))
    plan = planner(PAGES, seed=5)
    assert plan.attempts == 1 and plan.title == "Bhna and the Dragon"
    assert [member.name for member in plan.cast] == ["Bhna", "Pip"]
    assert [page.source for page in plan.pages] == ["model"] * 3
    assert plan.pages[1].characters == ["Bhna", "Pip"]
    request = lm.requests[0]
    assert request.chat and not request.use_adapter and request.temperature == 0.3
    assert "Page 3: At the top of the hill" in request.prompt


def test_malformed_json_is_repaired_without_a_retry():
    malformed = "Here you go!\n```json\n" + json.dumps(GOOD).replace('"', "'").replace("]}", ",]}") + "\n```"
    planner, lm = _planner(malformed)
    plan = planner(PAGES, seed=5)
    assert plan.attempts == 1 and len(lm.requests) == 1
    assert [page.source for page in plan.pages] == ["model"] * 3


def test_garbage_then_valid_json_is_retried_with_another_seed():
    planner, lm = _planner('[{"end\x1c storyrenhr Whe te ust', json.dumps(GOOD))
    plan = planner(PAGES, seed=5)
    assert plan.attempts == 2 and lm.seeds == [5, 6]
    assert all(page.source == "model" for page in plan.pages)


def test_garbage_twice_falls_back_to_the_page_text():
    planner, lm = _planner("garbage", "{not: json at all")
    plan = planner(PAGES, summary="Bhna the cat meets Pip the dog", seed=1)
    assert plan.attempts == 2
    assert [page.source for page in plan.pages] == ["fallback"] * 3
    assert plan.pages[0].scene == "Bhna the cat lived by the sea."
    assert {member.name for member in plan.cast} >= {"Bhna", "Pip"}
    assert "Pip" in plan.pages[1].characters
    assert any("built from the page text" in note for note in plan.notes)


def test_fallback_is_deterministic():
    first = _planner("garbage")[0](PAGES, seed=1)
    second = _planner("other garbage")[0](PAGES, seed=9)
    assert first == second


def test_partial_answers_mix_model_and_fallback_pages():
    pages = [GOOD["pages"][0], {"page": 2, "scene": "!!"}, {"page": 7, "scene": "out of range scene here"}]
    partial = dict(GOOD, pages=pages)
    planner, _ = _planner(json.dumps(partial))
    plan = planner(PAGES, seed=1)
    assert [page.source for page in plan.pages] == ["model", "fallback", "fallback"]


def test_unsafe_scene_from_the_model_is_not_used():
    bad = json.loads(json.dumps(GOOD))
    bad["pages"][2]["scene"] = "the dragon kills the dog, blood everywhere"
    planner, _ = _planner(json.dumps(bad))
    plan = planner(PAGES, seed=1)
    assert plan.pages[2].source == "fallback"
    assert "blood" not in plan.pages[2].scene


def test_registered_character_keeps_its_look_and_appears_where_named():
    known = CastMember(name="Bhna", description="a fluffy grey kitten", token="bhna cat")
    planner, lm = _planner(json.dumps(GOOD))
    plan = planner(PAGES, known_cast=[known], seed=1)
    assert plan.cast[0] == known  # the model's description of Bhna does not replace the trained one
    assert "a fluffy grey kitten" in lm.requests[0].prompt
    style = get_style("watercolor")
    by_name = {member.name: member for member in plan.cast}
    prompts = [compose_prompt(style, page.scene, [by_name[name] for name in page.characters]) for page in plan.pages]
    assert all("((bhna cat))" in prompt for prompt in prompts)


def test_prompts_carry_style_and_no_prompt_syntax_from_the_story():
    style = get_style("crayon")
    member = CastMember(name="Pip (the dog)", description="a puppy [small] BREAK")
    prompt = compose_prompt(style, "Pip (happy) at the [door] {x}", [member])
    assert prompt.startswith(style.prefix) and prompt.endswith(style.suffix)
    assert not set("()[]{}") & set(prompt)
    assert "BREAK" not in prompt
    assert "a puppy small break" in prompt


def test_every_style_has_its_own_negative_prompt():
    presets = style_presets()
    assert len(presets) >= 4
    negatives = {preset.negative_prompt for preset in presets.values()}
    assert len(negatives) == len(presets)
    assert all("nsfw" in negative and "text" in negative for negative in negatives)


def test_the_model_places_characters_and_a_lone_character_stands_nowhere_in_particular():
    placed = json.loads(json.dumps(GOOD))
    placed["pages"][1]["characters"] = [{"name": "Pip", "position": "right"}, {"name": "Bhna", "position": "left"}]
    placed["pages"][2]["characters"] = [{"name": "Bhna", "position": "middle"}, {"name": "Pip", "position": "middle"}]
    planner, lm = _planner(json.dumps(placed))
    plan = planner(PAGES, seed=5)
    assert plan.pages[0].characters == ["Bhna"] and plan.pages[0].positions == {}
    assert plan.pages[1].positions == {"Bhna": "left", "Pip": "right"}
    assert plan.pages[2].positions == {"Bhna": "center", "Pip": "left"}  # one place per character
    assert "position: left, center or right" in lm.requests[0].prompt


def test_the_fallback_places_characters_in_the_order_the_page_mentions_them():
    planner, _ = _planner("no JSON here", "still none")
    pages = ["Bhna the cat naps.", "Pip barks at Bhna, and Mo the owl hoots at Pip and Bhna.", "Bhna and Pip."]
    cast = [CastMember(name=name, description=f"{name} look") for name in ("Bhna", "Mo", "Pip")]
    plan = planner(pages, known_cast=cast, seed=1)
    assert [page.source for page in plan.pages] == ["fallback"] * 3
    assert plan.pages[0].positions == {}
    assert plan.pages[1].characters == ["Bhna", "Mo", "Pip"]
    assert plan.pages[1].positions == {"Pip": "left", "Bhna": "center", "Mo": "right"}
    assert plan.pages[2].positions == {"Bhna": "left", "Pip": "right"}


def test_a_page_prompt_says_where_each_of_several_characters_stands():
    style = get_style("watercolor")
    pip = CastMember(name="Pip", description="a white puppy")
    bhna = CastMember(name="Bhna", description="an orange cat")
    alone = compose_prompt(style, "a garden", [bhna])
    assert alone == compose_prompt(style, "a garden", [bhna], {}) and "on the left" not in alone
    both = compose_prompt(style, "a garden", [bhna, pip], {"Bhna": "right", "Pip": "left"})
    assert "Bhna, an orange cat on the right; Pip, a white puppy on the left" in both
