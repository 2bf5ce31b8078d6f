"""A story pipeline on scripted models: the language model answers from a script, pictures are fakes."""

from __future__ import annotations

import json

from storyloom.models.story.pipeline import StoryPipeline
from storyloom.models.story.testing import FakeTxt2Img, ScriptedLanguageModel

STORY = (
    "Title: Bhna and the Kind Dragon\n\n"
    "Bhna the cat lived by the sea. She loved the boats.\n\n"
    "One morning Pip the dog came to visit. They walked into the forest together.\n\n"
    "They crossed a river and climbed a hill. A kind dragon slept on top.\n\n"
    "The dragon told them about the stars. Then everyone went home happy."
)
PLAN_JSON = json.dumps(
    {
        "title": "ignored when the story has one",
        "characters": [
            {"name": "Bhna", "description": "a small orange cat"},
            {"name": "Pip", "description": "a white puppy"},
        ],
        "pages": [{"page": n, "scene": f"scene number {n} by the sea", "characters": ["Bhna"]} for n in range(1, 5)],
    }
)


def answers(story: str = STORY, plan: str = PLAN_JSON):
    """Story requests get ``story``; planning requests (base model) get ``plan``."""
    return lambda request: plan if not request.use_adapter else story


def make_pipeline(config, *scripts, characters=None) -> tuple[StoryPipeline, ScriptedLanguageModel, FakeTxt2Img]:
    lm = ScriptedLanguageModel(scripts or [answers()])
    images = FakeTxt2Img()
    return StoryPipeline(config, lm=lm, txt2img=images, characters=characters), lm, images
