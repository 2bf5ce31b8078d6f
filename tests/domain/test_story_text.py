"""Page splitting, text cleaning, JSON repair and safety screening: pure functions, any script."""

from __future__ import annotations

import pytest

from storyloom.domain.story.pages import split_pages
from storyloom.domain.story.safety import SafetyScreen
from storyloom.domain.story.text import (
    clean_model_text,
    detect_language,
    extract_title,
    looks_like_text,
    split_sentences,
)
from storyloom.errors import InvalidInput
from storyloom.models.story.json_reply import parse_json_object

ENGLISH = (
    "Once upon a time there was a little cat named Bhna. She lived in a cozy house by the sea.\n\n"
    'Every morning Bhna watched the boats. One day a friendly dog knocked on the door. "Shall we go on an '
    'adventure?" asked the dog.\n\n'
    "They walked through the forest and crossed a river on a wooden bridge. They climbed a green hill. At the top "
    "they found a garden full of flowers.\n\n"
    "A kind dragon was sleeping in the garden. The dragon woke up, smiled and told them about the stars. When the "
    "sun went down, the friends went home, ate warm soup and fell asleep happy. The end."
)
CHINESE = (
    "从前，有一只叫小花的小猫，住在海边的房子里。每天早上，她都看着窗外的船。有一天，一只友好的小狗来敲门。"
    "“你想去冒险吗？”小狗问。她们走过森林，穿过小河，爬上绿色的小山。山顶上有一个开满鲜花的花园！"
    "一条善良的龙在那里睡觉。龙醒来了，笑着给她们讲星星的故事。太阳下山了，朋友们回家喝了热汤。她们开心地睡着了。"
)


def _sentence_ends(text: str) -> bool:
    return text.rstrip("”\"'」』）)").endswith(tuple(".!?。！？"))


def test_english_pages_end_at_paragraphs_when_they_balance():
    pages = split_pages(ENGLISH, 4)
    assert len(pages) == 4
    assert pages[0].startswith("Once upon a time") and pages[0].endswith("by the sea.")
    assert pages[3].endswith("The end.")
    assert " ".join(" ".join(pages).split()) == " ".join(ENGLISH.split())


@pytest.mark.parametrize("count", [1, 2, 3, 5, 6, 7, 9])
def test_pages_are_contiguous_balanced_and_end_at_sentences(count):
    pages = split_pages(ENGLISH, count)
    assert len(pages) == count and all(pages)
    assert " ".join(" ".join(pages).split()) == " ".join(ENGLISH.split())
    assert all(_sentence_ends(page) for page in pages)
    lengths = [len(page) for page in pages]
    assert max(lengths) <= 2.6 * (sum(lengths) / count)


def test_chinese_story_splits_at_chinese_sentence_ends():
    pages = split_pages(CHINESE, 6)
    assert len(pages) == 6
    assert "".join(pages) == CHINESE  # nothing lost, no spaces invented
    assert all(_sentence_ends(page) for page in pages)
    lengths = [len(page) for page in pages]
    assert max(lengths) <= 2 * min(lengths)
    assert pages[0].startswith("从前") and pages[-1].endswith("她们开心地睡着了。")


def test_text_without_spaces_or_punctuation_still_gives_n_pages():
    text = "没有标点的一段很长的中文文字" * 3
    pages = split_pages(text, 4)
    assert len(pages) == 4 and "".join(pages) == text
    assert max(map(len, pages)) - min(map(len, pages)) <= 2


def test_one_long_sentence_is_cut_at_clauses():
    text = "The cat ran, the dog jumped, the bird sang, and the fish swam"
    pages = split_pages(text, 3)
    assert len(pages) == 3
    assert all(page.strip() for page in pages)
    assert pages[0].endswith(",")


def test_too_short_text_is_refused_not_padded():
    with pytest.raises(ValueError, match="too short"):
        split_pages("Hi.", 6)
    with pytest.raises(ValueError):
        split_pages("", 1)


def test_sentences_keep_quotes_and_skip_abbreviations():
    sentences = [s.text for s in split_sentences('Mr. Fox said "Hello!" Then he left. 他笑了。她也笑了！')]
    assert sentences == ['Mr. Fox said "Hello!"', "Then he left.", "他笑了。", "她也笑了！"]


def test_clean_model_text_removes_tokens_controls_and_labels():
    raw = "<s>Full story: **Title: The Moon**\r\n\x00Once\ufffd upon a   time.</s>\n\n\n\nEnd<|assistant|>"
    assert clean_model_text(raw) == "Title: The Moon\nOnce upon a time.\n\nEnd"


def test_extract_title():
    assert extract_title("Title: The Brave Cat\n\nOnce upon a time.") == ("The Brave Cat", "Once upon a time.")
    assert extract_title("标题：勇敢的小猫\n从前。") == ("勇敢的小猫", "从前。")
    assert extract_title("Once upon a time.") == (None, "Once upon a time.")


def test_garbage_detection():
    assert looks_like_text("A small orange cat")
    assert looks_like_text("一只橙色的小猫")
    assert not looks_like_text('{}[]":,,,!!')
    assert not looks_like_text("x")


def test_language_from_script():
    assert detect_language(CHINESE) == ("zh", "ltr")
    assert detect_language(ENGLISH) == ("en", "ltr")
    assert detect_language("ねこがすき。猫") == ("ja", "ltr")
    assert detect_language("قطة صغيرة") == ("ar", "rtl")


@pytest.mark.parametrize(
    "text",
    [
        '{"title": "A", "pages": [{"page": 1, "scene": "a cat"}]}',
        'Sure! ```json\n{"title": "A", "pages": [{"page": 1, "scene": "a cat",},],}\n```',
        "{'title': 'A', 'pages': [{'page': 1, 'scene': 'a cat'}]}",
        '{title: "A", pages: [{page: 1, scene: "a cat"}]}',
        '{"title": "A", "pages": [{"page": 1, "scene": "a cat"}, {"page": 2, "sce',
    ],
)
def test_json_is_repaired(text):
    data = parse_json_object(text)
    assert data["title"] == "A"
    assert data["pages"][0] == {"page": 1, "scene": "a cat"}


def test_json_repair_keeps_apostrophes_and_inner_quotes():
    assert parse_json_object("{'title': 'Bhna's Day'}") == {"title": "Bhna's Day"}
    assert parse_json_object('{"scene": "the cat says "hi" to the dog"}') == {"scene": 'the cat says "hi" to the dog'}


@pytest.mark.parametrize("text", ["", "no json", '[{"end":\x1c storyrenhr', "{{{{"])
def test_json_garbage_is_none_not_an_error(text):
    result = parse_json_object(text)
    assert result is None or isinstance(result, dict)


@pytest.mark.parametrize(
    ("summary", "category"),
    [
        ("A knight kills the dragon and there is blood everywhere", "violent"),
        ("The pirates shoot them with a gun", "violent"),
        ("a story with s e x and nudity", "adult"),
        ("Two grown-ups get NAKED", "adult"),
        ("一个关于杀人的故事", "violent"),
        ("a bear finds cocaine", "drug"),
    ],
)
def test_unsafe_summaries_are_refused_with_the_reason(summary, category):
    screen = SafetyScreen()
    verdict = screen.check(summary)
    assert not verdict.allowed and verdict.category == category
    with pytest.raises(InvalidInput, match=r"(?i)sorry.*children.*\(\""):
        screen.ensure_allowed(summary)


@pytest.mark.parametrize(
    "summary",
    [
        "A shy cat learns to sail",
        "The skillful fox shoots hoops with a bear",
        "一只小猫学会了游泳",
        "A dragon who is afraid of the dark",
    ],
)
def test_gentle_summaries_pass(summary):
    assert SafetyScreen().check(summary).allowed


def test_extra_banned_words():
    screen = SafetyScreen(["broccoli"])
    assert not screen.check("A story about Broccoli").allowed
    assert screen.check("A story about carrots").allowed


def test_domain_modules_do_not_import_torch():
    """The bot process validates stories and renders PDFs with these modules, and must stay torch-free."""
    import pkgutil
    import subprocess
    import sys

    import storyloom.domain

    modules = [info.name for info in pkgutil.walk_packages(storyloom.domain.__path__, "storyloom.domain.")]
    assert "storyloom.domain.story.plan" in modules and "storyloom.domain.book.pdf" in modules
    code = "; ".join(f"import {name}" for name in modules)
    code += "; import sys; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
