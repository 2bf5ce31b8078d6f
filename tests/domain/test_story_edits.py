"""A story as edited: the plan with each page's newest words and the edited title."""

from __future__ import annotations

from storyloom.domain.story.edits import edited_plan
from storyloom.domain.story.plan import CastMember, ChapterPlan, PagePlan, StoryPlan


def plan() -> StoryPlan:
    pages = [
        PagePlan(
            number=n, chapter=1 if n < 3 else 2, text=f"text {n}", scene=f"scene {n}", prompt=f"prompt {n}",
            negative_prompt="", seed=n, characters=["Bhna"],
        )
        for n in (1, 2, 3)
    ]  # fmt: skip
    chapters = [
        ChapterPlan(number=1, title="The Cat", summary="s", text="text 1\n\ntext 2", synopsis="a cat"),
        ChapterPlan(number=2, title="Again", summary="t", text="text 3", synopsis="again"),
    ]
    cast = [CastMember(name="Bhna", description="a cat")]
    return StoryPlan(
        title="The Cat", summary="s", style="watercolor", base_seed=1, cast=cast, chapters=chapters, pages=pages
    )


def test_a_page_takes_the_words_of_its_newest_drawing_and_its_chapter_is_rebuilt() -> None:
    written = plan()
    edited = edited_plan(
        written,
        None,
        {1: {"text": "a new text", "prompt": "new prompt", "seed": 7, "plan": {"scene": "a new scene"}}, 9: {}},
    )
    page = edited.pages[1]
    assert (page.text, page.scene, page.prompt, page.seed) == ("a new text", "a new scene", "new prompt", 7)
    assert edited.chapters[0].text == "text 1\n\na new text" and edited.chapters[0].synopsis == ""
    assert edited.chapters[1] == written.chapters[1]  # untouched chapters keep their memory
    assert written.pages[1].text == "text 2"  # the written plan is left as it was


def test_a_redraw_with_the_same_words_changes_only_the_seed_and_the_title_edit_names_the_book() -> None:
    written = plan()
    same = {"text": "text 2", "prompt": "prompt 2", "seed": 99, "plan": {"scene": "scene 2"}}
    edited = edited_plan(written, "The Brave Cat", {1: same})
    assert edited.pages[1].seed == 99 and edited.chapters[0].synopsis == "a cat"
    assert edited.title == "The Brave Cat" and edited.chapters[0].title == "The Brave Cat"
    assert edited.chapters[1].title == "Again"
    assert edited_plan(written, None, {}) == written
