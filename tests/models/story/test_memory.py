"""Continuation memory: running synopsis vs full history, trimmed to the context window."""

from __future__ import annotations

import pytest

from storyloom.domain.story.plan import ChapterPlan, PagePlan, StoryPlan
from storyloom.errors import InvalidInput
from storyloom.models.story.memory import answer_room, chapter_synopsis, continuation, extractive_synopsis
from storyloom.models.story.testing import ScriptedLanguageModel


def _chapter_text(number: int, sentences: int = 40) -> str:
    return " ".join(f"In chapter {number} the cat saw wonder number {i}." for i in range(sentences))


def _plan(chapters: int = 3, sentences: int = 40) -> StoryPlan:
    summary = "Bhna the cat sails around the world."
    plan = StoryPlan(title="Bhna's Voyage", summary=summary, style="watercolor", base_seed=1)
    for number in range(1, chapters + 1):
        text = _chapter_text(number, sentences)
        synopsis = f"In part {number} Bhna sailed far."
        chapter = ChapterPlan(number=number, title=f"Part {number}", summary="", text=text, synopsis=synopsis)
        plan.chapters.append(chapter)
        for page in range(2):
            plan.pages.append(
                PagePlan(
                    number=len(plan.pages) + 1,
                    chapter=number,
                    text=f"Chapter {number} page {page}: {text[:200]}",
                    scene="s",
                    prompt="p",
                    negative_prompt="n",
                    seed=1,
                )
            )
    return plan


@pytest.mark.parametrize("memory", ["summary", "full"])
@pytest.mark.parametrize("window", [300, 600, 2000, 20000])
def test_continuation_prompt_fits_the_window_with_room_for_the_answer(memory, window):
    lm = ScriptedLanguageModel(["x"], context_window=window)
    options = {"prompt_format": "chat", "recent_pages": 2, "pages": 4, "max_new_tokens": 900}
    fitted = continuation(_plan(), lm, memory=memory, hint="Go to an island", **options)
    assert fitted.prompt_tokens == lm.prompt_tokens(fitted.request)
    assert fitted.prompt_tokens + fitted.answer_tokens <= window
    assert fitted.request.max_new_tokens == fitted.answer_tokens == answer_room(lm, 900)
    assert "Write chapter 4: Go to an island" in fitted.request.prompt
    if window >= 20000:
        assert fitted.trimmed == ()


def test_full_memory_keeps_the_newest_text_and_drops_the_oldest():
    lm = ScriptedLanguageModel(["x"], context_window=1200)
    fitted = continuation(_plan(), lm, memory="full", prompt_format="chat", recent_pages=2, pages=4, max_new_tokens=400)
    prompt = fitted.request.prompt
    assert "memory" in fitted.trimmed
    assert "In chapter 3 the cat saw wonder number 39." in prompt
    assert "In chapter 1 the cat saw wonder number 0." not in prompt
    assert "Bhna the cat sails around the world." in prompt  # the summary outlives the history


def test_summary_memory_uses_synopses_and_the_last_pages():
    lm = ScriptedLanguageModel(["x"], context_window=4096)
    fitted = continuation(
        _plan(), lm, memory="summary", prompt_format="chat", recent_pages=1, pages=4, max_new_tokens=400
    )
    prompt = fitted.request.prompt
    assert "In part 1 Bhna sailed far. In part 2 Bhna sailed far. In part 3 Bhna sailed far." in prompt
    assert "Chapter 3 page 1:" in prompt and "Chapter 3 page 0:" not in prompt
    assert "wonder number 39" not in prompt  # no full history in summary mode
    assert fitted.trimmed == ()


def test_storyteller_continuation_uses_the_training_template():
    lm = ScriptedLanguageModel(["x"], context_window=4096)
    fitted = continuation(
        _plan(1, 5), lm, memory="summary", prompt_format="storyteller", recent_pages=1, pages=3, max_new_tokens=200
    )
    prompt = fitted.request.prompt
    assert not fitted.request.chat and fitted.request.stop == ("END",)
    assert prompt.startswith("You are a storyteller.") and prompt.endswith("END \n Full story:")


def test_too_small_a_window_is_a_clear_error():
    lm = ScriptedLanguageModel(["x"], context_window=60)
    with pytest.raises(InvalidInput, match="context"):
        continuation(_plan(), lm, memory="full", prompt_format="chat", recent_pages=2, pages=4, max_new_tokens=30)


def test_trimming_with_the_real_tokenizer(tiny_config):
    from storyloom.models.story.writer import StoryWriter

    config = tiny_config.model_copy(update={"story": tiny_config.story.model_copy(update={"context_tokens": 1024})})
    writer = StoryWriter.from_config(config)
    assert writer.context_window == 1024
    fitted = continuation(
        _plan(3, 60), writer, memory="full", prompt_format="chat", recent_pages=2, pages=4, max_new_tokens=160
    )
    assert fitted.trimmed and fitted.prompt_tokens == writer.prompt_tokens(fitted.request)
    assert fitted.prompt_tokens + 160 <= 1024
    assert fitted.prompt_tokens > 1024 - 160 - 60  # trimmed to the budget, not far below it


def test_synopsis_from_the_model_or_extractive_fallback():
    text = _chapter_text(1, 5)
    good = ScriptedLanguageModel(["Bhna sails to a sunny island and makes a friend."])
    assert chapter_synopsis(good, text, seed=1) == "Bhna sails to a sunny island and makes a friend."
    assert not good.requests[0].use_adapter
    garbage = ScriptedLanguageModel(["{}\x00 ]]"])
    assert chapter_synopsis(garbage, text, seed=1) == extractive_synopsis(text)
    first, last = "In chapter 1 the cat saw wonder number 0.", "In chapter 1 the cat saw wonder number 4."
    assert extractive_synopsis(text) == f"{first} {last}"
    unsafe = ScriptedLanguageModel(["Then the pirates kill everyone."])
    assert chapter_synopsis(unsafe, text, seed=1) == extractive_synopsis(text)
