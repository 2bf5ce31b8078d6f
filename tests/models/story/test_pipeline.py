"""StoryPipeline: bad input, bad model output, consistency, redraw, continuation; and one real tiny-model run."""

from __future__ import annotations

import asyncio
import re

import pytest

from storyloom.domain.seeds import page_seed
from storyloom.domain.story.plan import Character, StoryPlan, character_lookup
from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.story.drafts import StoryFailed
from storyloom.models.story.pipeline import StoryPipeline
from storyloom.models.story.writer import TextRequest
from tests.support.stories import PLAN_JSON, STORY, answers, make_pipeline

pytestmark = pytest.mark.usefixtures("quiet_fonts")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"summary": ""}, "summary is empty"),
        ({"summary": "   "}, "summary is empty"),
        ({"summary": "x" * 20000}, "20,000 characters long; the limit is 4,000"),
        ({"summary": "!!! ???"}, "no words"),
        ({"summary": "A cat", "pages": 0}, r"pages must be between 1 and 20 \(got 0\)"),
        ({"summary": "A cat", "pages": 99}, r"pages must be between 1 and 20 \(got 99\)"),
        ({"summary": "A cat", "style": "vaporwave"}, "style 'vaporwave' is unknown; choose one of: watercolor, crayon"),
        ({"summary": "A cat", "character": "Zed"}, "character 'Zed' is unknown; no characters are registered yet"),
        ({"summary": "A cat", "seed": -1}, "seed must be"),
        ({"summary": "The knight kills the dragon in a bloody fight"}, r"Sorry.*violent content \(\"kills\""),
        ({"summary": "A naked romance for grown-ups"}, r"Sorry.*adult content \(\"naked\"\)"),
    ],
)
def test_bad_input_is_refused_before_any_model_runs(tiny_config, kwargs, message):
    pipeline, lm, _ = make_pipeline(tiny_config)
    with pytest.raises(InvalidInput, match=message):
        pipeline.write(**kwargs)
    assert lm.requests == []


def test_unknown_character_lists_the_known_ones(tiny_config):
    lookup = character_lookup({"Bhna": Character("Bhna", "bhna", "cat"), "Rex": Character("Rex", "rxz", "dog")})
    pipeline, _, _ = make_pipeline(tiny_config, characters=lookup)
    with pytest.raises(InvalidInput, match="known characters: Bhna, Rex"):
        pipeline.write("A cat", character="Tom")


def test_write_plans_a_consistent_story(tiny_config):
    pipeline, lm, _ = make_pipeline(tiny_config)
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=4, style="crayon", seed=11)
    assert plan.title == "Bhna and the Kind Dragon" and plan.base_seed == 11 and plan.style == "crayon"
    assert [page.number for page in plan.pages] == [1, 2, 3, 4]
    assert plan.pages[0].text == "Bhna the cat lived by the sea. She loved the boats."
    assert [page.seed for page in plan.pages] == [page_seed(11, n) for n in range(1, 5)]
    assert len({page.seed for page in plan.pages}) == 4
    assert len({page.negative_prompt for page in plan.pages}) == 1
    assert all(page.prompt.startswith("crayon and colored pencil drawing") for page in plan.pages)
    assert all("Bhna, a small orange cat" in page.prompt for page in plan.pages)
    assert "Pip, a white puppy" in plan.pages[1].prompt  # named on the page, so drawn with his fixed look
    story_request = lm.requests[0]
    assert story_request.chat and "Bhna the cat meets a kind dragon." in story_request.prompt
    assert "no violence" in story_request.system


def test_same_seed_same_plan(tiny_config):
    first = make_pipeline(tiny_config)[0].write("Bhna the cat meets a kind dragon.", pages=3, seed=5)
    second = make_pipeline(tiny_config)[0].write("Bhna the cat meets a kind dragon.", pages=3, seed=5)
    assert first == second


def test_registered_character_is_in_every_page_where_it_appears(tiny_config):
    lookup = character_lookup({"Bhna": Character("Bhna", "bhna", "cat", "a fluffy grey kitten")})
    pipeline, lm, _ = make_pipeline(tiny_config, characters=lookup)
    plan = pipeline.write("Bhna goes on an adventure.", pages=4, character="bhna", seed=1)
    assert plan.character == "Bhna" and plan.cast[0].token == "bhna cat"
    assert "The main character is Bhna, a fluffy grey kitten" in lm.requests[0].prompt
    for page in plan.pages:
        assert ("((bhna cat))" in page.prompt) == ("Bhna" in page.characters)
    assert all("((bhna cat)), a fluffy grey kitten" in page.prompt for page in plan.pages)


def test_storyteller_format_stops_at_end_and_uses_the_adapter(tiny_config):
    story_settings = tiny_config.story.model_copy(update={"prompt_format": "storyteller"})
    config = tiny_config.model_copy(update={"story": story_settings})
    story = STORY.split("\n\n", 1)[1] + " END Summary: and the model kept going"
    pipeline, lm, _ = make_pipeline(config, answers(story=story))
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=4, seed=1)
    assert "kept going" not in plan.chapters[0].text and "END" not in plan.chapters[0].text
    assert not lm.requests[0].chat and lm.requests[0].use_adapter and lm.requests[0].stop == ("END",)
    assert plan.title == "Bhna and the Kind Dragon" or plan.title  # title from the plan or the summary


def test_empty_model_output_is_a_clear_failure_after_one_retry(tiny_config):
    pipeline, lm, _ = make_pipeline(tiny_config, "", "   \n ")
    with pytest.raises(StoryFailed, match=r"returned no story text \(2 tries\)"):
        pipeline.write("A cat learns to sail.", pages=3, seed=1)
    assert lm.seeds == [1, 2]


def test_unsuitable_model_output_is_retried_then_refused(tiny_config):
    pipeline, _, _ = make_pipeline(tiny_config, "The pirates kill everyone with guns and there is blood. " * 3)
    with pytest.raises(StoryFailed, match="unsuitable for children"):
        pipeline.write("A cat learns to sail.", pages=3, seed=1)


def test_one_bad_attempt_then_a_good_one(tiny_config):
    pipeline, _, _ = make_pipeline(tiny_config, "", answers())
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=2, seed=1)
    assert len(plan.pages) == 2 and any("second was used" in note for note in plan.notes)


def test_garbage_model_output_still_makes_a_valid_book(tiny_config, tmp_path):
    garbage = (
        'renenerbho endver7appellifimim wXWhe [{"very fores st\x1c +haracters endp illFche Little inimOct '
        "was friE flowcenittleekind&Giv dayden~7 foutlle"
    )
    pipeline, _, images = make_pipeline(tiny_config, garbage)
    plan = pipeline.write("A little cat named Bhna meets a dragon.", pages=5, seed=2)
    assert plan.title == "A little cat named Bhna meets a dragon"
    assert len(plan.pages) == 5 and all(page.text for page in plan.pages)
    assert all(page.source == "fallback" for page in plan.pages)
    assert not any(char in page.prompt for page in plan.pages for char in "[]{}()")
    files = pipeline.make_book(plan, tmp_path / "book")
    assert len(files.images) == 5 and len(images.calls) == 5
    assert len(re.findall(rb"/Type\s*/Page\b", files.pdf.read_bytes())) == 6


def test_redraw_changes_one_page_only(tiny_config, tmp_path):
    pipeline, _, _ = make_pipeline(tiny_config)
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=4, seed=3)
    book = tmp_path / "book"
    pipeline.make_book(plan, book)
    before = {path.name: path.read_bytes() for path in book.glob("page-*.png")}
    result = pipeline.redraw_page(book, 2, seed=777)
    after = {path.name: path.read_bytes() for path in book.glob("page-*.png")}
    assert result.seed == 777 and result.page.number == 3
    assert [name for name in before if before[name] != after[name]] == ["page-03.png"]
    saved = StoryPlan.load(book)
    assert saved.pages[2].seed == 777
    others = [index for index in range(4) if index != 2]
    assert [saved.pages[i].seed for i in others] == [plan.pages[i].seed for i in others]
    with pytest.raises(InvalidInput, match="page 9 does not exist"):
        pipeline.redraw_page(book, 8)


def test_continue_adds_a_chapter_with_memory(tiny_config, tmp_path):
    chapter_two = (
        "Title: The Starry Night\n\nBhna and Pip watched the stars. The dragon sang softly.\n\n"
        "They flew over the sea. Then they slept."
    )
    scripted = iter([STORY, PLAN_JSON, "Bhna met Pip and a kind dragon on a hill.", chapter_two, PLAN_JSON])
    pipeline, lm, _ = make_pipeline(tiny_config, lambda request: next(scripted))
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=4, seed=3)
    book = tmp_path / "book"
    pipeline.make_book(plan, book)
    saved = StoryPlan.load(book)
    longer = pipeline.continue_story(saved, "They watch the stars", pages=2)
    assert saved == plan  # the plan passed in is left as it was
    assert [c.number for c in longer.chapters] == [1, 2] and longer.chapters[1].title == "The Starry Night"
    assert longer.chapters[0].synopsis == "Bhna met Pip and a kind dragon on a hill."
    assert [page.number for page in longer.pages] == [1, 2, 3, 4, 5, 6]
    assert [page.chapter for page in longer.pages[4:]] == [2, 2]
    assert longer.pages[4].seed == page_seed(3, 5)
    assert longer.pages[:4] == plan.pages  # earlier pages untouched
    prompt = lm.requests[3].prompt
    assert "Bhna met Pip and a kind dragon on a hill." in prompt  # the running synopsis
    assert "The dragon told them about the stars." in prompt  # the last page word for word
    assert "Write chapter 2: They watch the stars" in prompt
    files = pipeline.make_book(longer, book)
    assert StoryPlan.load(book) == longer
    assert len(files.images) == 6


def test_continue_refuses_unsafe_hints_and_non_books(tiny_config, tmp_path):
    pipeline, _, _ = make_pipeline(tiny_config)
    with pytest.raises(InvalidInput, match="not a story book"):
        StoryPlan.load(tmp_path)
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=2, seed=3)
    with pytest.raises(InvalidInput, match="violent"):
        pipeline.continue_story(plan, "and then the dragon kills Pip")


def test_cancel_between_pages(tiny_config, tmp_path):
    pipeline, _, images = make_pipeline(tiny_config)
    plan = pipeline.write("Bhna the cat meets a kind dragon.", pages=3, seed=3)
    with pytest.raises(JobCanceled, match="before page 2"):
        pipeline.make_book(plan, tmp_path, should_cancel=lambda: len(images.calls) >= 1)
    assert sorted(path.name for path in tmp_path.glob("page-*.png")) == ["page-01.png"]


def test_refuses_to_run_inside_an_event_loop(tiny_config):
    pipeline, _, _ = make_pipeline(tiny_config)

    async def inside() -> None:
        pipeline.write("A cat learns to sail.", pages=2, seed=1)

    with pytest.raises(RuntimeError, match="event loop"):
        asyncio.run(inside())


def test_real_tiny_models_end_to_end(tiny_config, tmp_path):
    """The transformers LM (garbage writer) and the tiny SD pipeline make a complete 2-page book."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        pipeline = StoryPipeline.from_config(tiny_config)
        progress = []
        plan = pipeline.write("A little cat named Bhna meets a kind dragon.", pages=2, seed=9, progress=progress.append)
        assert len(plan.pages) == 2 and plan.title
        assert {step.stage for step in progress} >= {"writing", "planning"}
        files = pipeline.make_book(plan, tmp_path / "book", progress=progress.append)
    finally:
        torch.set_num_threads(previous)
    assert len(files.images) == 2
    assert any(step.stage == "page 2" for step in progress)
    assert len(re.findall(rb"/Type\s*/Page\b", files.pdf.read_bytes())) == 3
    assert isinstance(pipeline.lm.generate(TextRequest("hi", max_new_tokens=16), seed=1).text, str)


def test_chinese_summary_makes_a_chinese_book(tiny_config, tmp_path):
    story = (
        "标题：小花和善良的龙\n\n"
        "从前，有一只叫小花的小猫，住在海边的房子里。每天早上，她都看着窗外的船。\n\n"
        "有一天，一只友好的小狗来敲门。“你想去冒险吗？”小狗问。她们走过森林，穿过小河。\n\n"
        "山顶上有一个开满鲜花的花园！一条善良的龙在那里睡觉。龙醒来了，笑着给她们讲星星的故事。"
        "太阳下山了，朋友们回家喝了热汤。她们开心地睡着了。"
    )
    pipeline, lm, _ = make_pipeline(tiny_config, answers(story=story, plan="不是JSON"))
    plan = pipeline.write("一只叫小花的小猫遇见了一条善良的龙。", pages=6, seed=4)
    assert plan.title == "小花和善良的龙" and plan.language == "zh"
    assert len(plan.pages) == 6
    assert all(page.text.rstrip("”").endswith(("。", "！", "？")) for page in plan.pages)
    assert "".join(page.text for page in plan.pages).replace("\n", "") == story.split("\n\n", 1)[1].replace("\n", "")
    assert plan.cast and plan.cast[0].name == "小花"  # "一只叫小花的小猫" names the hero
    files = pipeline.make_book(plan, tmp_path / "book")
    assert '<html lang="zh"' in files.html.read_text(encoding="utf-8")
    assert len(re.findall(rb"/Type\s*/Page\b", files.pdf.read_bytes())) == 7


def test_up_to_three_registered_characters_star_and_a_fourth_is_refused(tiny_config):
    lookup = character_lookup(
        {
            "Bhna": Character("Bhna", "bhna", "cat", "a fluffy grey kitten"),
            "Pip": Character("Pip", "", "", "a toy robot with round eyes"),  # known from a picture: no token
            "Mo": Character("Mo", "", "owl"),
            "Rex": Character("Rex", "rxz", "dog"),
        }
    )
    pipeline, lm, _ = make_pipeline(tiny_config, characters=lookup)
    with pytest.raises(InvalidInput, match="at most 3 characters; you gave 4: Bhna, Pip, Mo, Rex"):
        pipeline.write("Bhna goes on an adventure.", character=["Bhna", "Pip", "Mo", "Rex"])
    assert lm.requests == []
    plan = pipeline.write("Bhna and Pip go on an adventure.", pages=4, character=["bhna", "Pip"], seed=1)
    assert plan.characters == ["Bhna", "Pip"] and plan.character == "Bhna"
    assert [(m.name, m.token) for m in plan.cast[:2]] == [("Bhna", "bhna cat"), ("Pip", "")]
    assert (
        "The main characters are Bhna, a fluffy grey kitten; Pip, a toy robot with round eyes" in lm.requests[0].prompt
    )
    for page in plan.pages:
        assert ("Pip, a toy robot with round eyes" in page.prompt) == ("Pip" in page.characters)
        shared = len(page.characters) > 1
        assert sorted(page.positions) == (sorted(page.characters) if shared else [])


def test_the_tiny_language_model_plans_places_for_two_characters(tiny_config):
    """The real (garbage-writing) tiny LM as the planner: whatever it answers, a page with both characters places
    them apart (the model's places, else the order the page names them) and a page with one places nobody."""
    from storyloom.domain.story.plan import CastMember
    from storyloom.models.story.planner import StoryPlanner

    lm = StoryPipeline.from_config(tiny_config).lm
    cast = [CastMember(name="Bhna", description="a cat"), CastMember(name="Pip", description="a robot")]
    pages = ["Pip waves at Bhna across the garden.", "Bhna sleeps."]
    plan = StoryPlanner(lm, temperature=0.3, retries=0)(pages, known_cast=cast, seed=3)
    assert plan.pages[0].characters == ["Bhna", "Pip"]
    assert sorted(plan.pages[0].positions) == ["Bhna", "Pip"]
    assert sorted(plan.pages[0].positions.values()) == ["left", "right"]
    if plan.pages[0].source == "fallback":
        assert plan.pages[0].positions == {"Pip": "left", "Bhna": "right"}  # Pip is named first
    assert plan.pages[1].characters == ["Bhna"] and plan.pages[1].positions == {}
