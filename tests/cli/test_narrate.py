"""``storyloom narrate BOOK_DIR`` on the tiny voices: recordings, an audiobook with chapters and a video."""

from __future__ import annotations

import pytest
from PIL import Image

from storyloom.cli.main import main
from storyloom.domain.story.plan import PagePlan, StoryPlan
from storyloom.models.narration.media import probe

TEXTS = ["Bhna the cat lived by the sea.", "   ", "One day a friendly dog came to the door. They went on an adventure."]


@pytest.fixture
def tiny_env(tiny_env, monkeypatch, tiny_models):
    """The command-line environment (tests/cli/conftest.py) with the tiny voices and a small video."""
    voices = f'{{en = "{tiny_models.vits_en}", zh = "{tiny_models.vits_zh}"}}'
    monkeypatch.setenv("STORYLOOM_MODELS__NARRATION", voices)
    monkeypatch.setenv("STORYLOOM_NARRATION__VIDEO_SIDE", "64")
    monkeypatch.setenv("STORYLOOM_NARRATION__VIDEO_FPS", "6")
    return tiny_env


def make_book(directory, language: str = "en", texts: list[str] = TEXTS):
    pages = [
        PagePlan(number=n, chapter=1, text=text, scene="a garden", prompt="p", negative_prompt="", seed=n)
        for n, text in enumerate(texts, start=1)
    ]
    plan = StoryPlan(title="The Cat by the Sea", summary="a cat", language=language, style="watercolor",
                     base_seed=1, pages=pages)  # fmt: skip
    plan.save(directory)
    for page in pages:
        Image.new("RGB", (48, 64), (30 * page.number, 120, 200)).save(directory / page.image_name)
    return plan


def test_narrate_writes_pages_an_audiobook_and_a_video_beside_the_book(tiny_env, capsys) -> None:
    book = tiny_env / "book"
    make_book(book)
    assert main(["narrate", str(book), "--voice", "clover", "--video", "--profile", "tiny"]) == 0
    assert "page 2: no text, skipped" in capsys.readouterr().out
    recordings = sorted(path.name for path in (book / "narration").iterdir())
    assert recordings == ["page-1.ogg", "page-3.ogg"]
    pages = [probe((book / "narration" / name).read_bytes()) for name in recordings]
    assert all(p.audio_rate == 48000 for p in pages) and pages[0].audio_seconds < pages[1].audio_seconds

    audiobook = probe((book / "audiobook.m4a").read_bytes())
    assert [title for _, _, title in audiobook.chapters] == ["Page 1", "Page 3"]
    expected = sum(p.audio_seconds for p in pages) + 2 * 0.8  # each page, then the page pause
    assert audiobook.audio_seconds == pytest.approx(expected, abs=0.15)
    video = probe((book / "book.mp4").read_bytes())
    assert video.streams == ("video", "audio") and video.audio_seconds == pytest.approx(audiobook.audio_seconds)

    before = (book / "narration" / "page-1.ogg").read_bytes()
    assert main(["narrate", str(book), "--voice", "clover", "--profile", "tiny"]) == 0
    assert (book / "narration" / "page-1.ogg").read_bytes() == before  # same seed, same recording


def test_bad_voice_and_unspoken_language_name_what_is_allowed(tiny_env, capsys) -> None:
    book = tiny_env / "book"
    make_book(book)
    assert main(["narrate", str(book), "--voice", "nobody", "--profile", "tiny"]) == 2
    assert "voice 'nobody' is unknown; voices: bramble, clover, river, willow" in capsys.readouterr().err
    french = tiny_env / "livre"
    make_book(french, language="fr")
    assert main(["narrate", str(french), "--profile", "tiny"]) == 2
    assert "cannot speak French (fr); it speaks English (en), Chinese (zh)" in capsys.readouterr().err
    assert not (french / "narration").exists()


def test_a_chinese_book_is_read_by_the_chinese_voice(tiny_env) -> None:
    book = tiny_env / "shu"
    make_book(book, language="zh", texts=["小猫住在海边。", "有一天，小狗来敲门。"])
    assert main(["narrate", str(book), "--profile", "tiny"]) == 0
    assert probe((book / "audiobook.m4a").read_bytes()).chapters[1][2] == "Page 2"
