"""A story as edited: the plan the story job wrote, with each page's newest text and scene and the edited title.

✏️ Edit redraws a page with new words (a page job whose parameters hold the page's text, prompt, seed and
scene), ✏️ Edit title gives the story a new title; the book and ➕ Continue read the story through
:func:`edited_plan`, so they follow every edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storyloom.domain.story.plan import StoryPlan

EMPTY_PAGE = "a page needs some text; write at least a few words (or keep the page as it is)"


def edited_plan(plan: StoryPlan, title: str | None, pages: Mapping[int, Mapping[str, Any]]) -> StoryPlan:
    """``plan`` with ``title`` (when edited) and, for each page index in ``pages``, the text, scene, prompt and
    seed of that page's newest drawing (its page job's parameters). A chapter whose words changed gets its text
    rebuilt from its pages and forgets its synopsis, so a continuation remembers the story as it now reads."""
    edited = plan.model_copy(deep=True)
    changed_chapters: set[int] = set()
    for index, params in pages.items():
        if not 0 <= index < len(edited.pages):
            continue
        page = edited.pages[index]
        scene = (params.get("plan") or {}).get("scene")
        updates: dict[str, Any] = {}
        if isinstance(params.get("text"), str) and params["text"] != page.text:
            updates["text"] = params["text"]
            changed_chapters.add(page.chapter)
        if isinstance(scene, str) and scene and scene != page.scene:
            updates["scene"] = scene
        if isinstance(params.get("prompt"), str) and params["prompt"]:
            updates["prompt"] = params["prompt"]
        if isinstance(params.get("seed"), int):
            updates["seed"] = params["seed"]
        if updates:
            edited.pages[index] = page.model_copy(update=updates)
    for chapter in edited.chapters:
        if chapter.number in changed_chapters:
            chapter.text = "\n\n".join(page.text for page in edited.pages if page.chapter == chapter.number)
            chapter.synopsis = ""
    if title and title != edited.title:
        for chapter in edited.chapters:
            if chapter.number == 1 and chapter.title == edited.title:
                chapter.title = title  # the first chapter is called what the book is called
        edited.title = title
    return edited
