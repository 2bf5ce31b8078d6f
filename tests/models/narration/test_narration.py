"""Narration on the tiny VITS voices: real tokenizers, models and PyAV encoders, seeded."""

from __future__ import annotations

import pytest
from PIL import Image

from storyloom.domain.narration import choose_voice, narration_key
from storyloom.errors import InvalidInput
from storyloom.models.narration.media import NarratedPage, encode_audiobook, encode_ogg_opus, encode_video, probe
from storyloom.models.narration.narrator import Narrator, spoken_text

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHORT = "The cat sat down."
LONG = "The cat sat down. Then she looked at the sea for a long time. The boats came home, and the birds sang."


@pytest.fixture(scope="module")
def narrator(tmp_path_factory, tiny_models) -> Narrator:
    from storyloom.models.runtime.tiny import make_tiny_config

    return Narrator.from_config(make_tiny_config(tmp_path_factory.mktemp("narration"), tiny_models))


def test_longer_text_reads_longer_at_the_models_rate_and_decodes(narrator: Narrator) -> None:
    choice = choose_voice(narrator.config, None, "en")
    short, long = narrator.speak(SHORT, choice, 0), narrator.speak(LONG, choice, 0)
    assert short is not None and long is not None
    assert short.sample_rate == long.sample_rate == 22050  # the tiny English voice's rate, like VCTK's
    assert 0.2 < short.duration < long.duration < 30
    assert [s.text for s in long.sentences] == [
        "The cat sat down.",
        "Then she looked at the sea for a long time.",
        "The boats came home, and the birds sang.",
    ]
    assert all(a.end <= b.start for a, b in zip(long.sentences, long.sentences[1:]))
    assert long.sentences[-1].end == pytest.approx(long.duration)
    decoded = probe(encode_ogg_opus(long))
    assert decoded.streams == ("audio",) and decoded.audio_rate == 48000
    assert decoded.audio_seconds == pytest.approx(long.duration, abs=0.05)


def test_same_seed_same_samples_other_seed_other_samples(narrator: Narrator) -> None:
    choice = choose_voice(narrator.config, "river", "en")
    first, again, other = (narrator.speak(LONG, choice, seed) for seed in (3, 3, 4))
    assert first is not None and again is not None and other is not None
    assert first.samples.tobytes() == again.samples.tobytes()
    assert encode_ogg_opus(first) == encode_ogg_opus(again)
    assert first.samples.tobytes() != other.samples.tobytes()


def test_faster_speed_is_shorter_and_other_voices_differ(narrator: Narrator) -> None:
    slow = narrator.speak(LONG, choose_voice(narrator.config, "willow", "en", 0.6), 0)
    fast = narrator.speak(LONG, choose_voice(narrator.config, "willow", "en", 1.8), 0)
    other = narrator.speak(LONG, choose_voice(narrator.config, "bramble", "en", 0.6), 0)
    assert slow is not None and fast is not None and other is not None
    assert fast.duration < slow.duration
    assert other.samples.tobytes() != slow.samples.tobytes()


def test_chinese_is_read_as_pinyin_by_the_chinese_voice(narrator: Narrator) -> None:
    assert spoken_text("小猫很开心。", "zh") == "xiǎomāohěnkāixīn."
    speech = narrator.speak("小猫在花园里玩。它很开心！", choose_voice(narrator.config, None, "zh-Hans"), 0)
    assert speech is not None and speech.sample_rate == 16000 and len(speech.sentences) == 2


def test_empty_pages_are_skipped_and_bad_choices_name_what_is_allowed(narrator: Narrator) -> None:
    choice = choose_voice(narrator.config, None, "en")
    assert narrator.speak("   \n ", choice, 0) is None
    assert narrator.speak("… — !", choice, 0) is None
    with pytest.raises(InvalidInput, match=r"voice 'granny' is unknown; voices: bramble, clover, river, willow"):
        choose_voice(narrator.config, "granny", "en")
    with pytest.raises(InvalidInput, match=r"cannot speak French \(fr\); it speaks English \(en\), Chinese \(zh\)"):
        choose_voice(narrator.config, None, "fr")


def test_the_key_changes_with_everything_that_is_heard(narrator: Narrator) -> None:
    config = narrator.config
    base = choose_voice(config, "willow", "en", 1.0)
    keys = {
        narration_key(SHORT, base, 0),
        narration_key(SHORT + " Again.", base, 0),
        narration_key(SHORT, choose_voice(config, "river", "en", 1.0), 0),
        narration_key(SHORT, choose_voice(config, "willow", "en", 1.1), 0),
        narration_key(SHORT, base, 1),
    }
    assert len(keys) == 5
    assert narration_key(SHORT, base, 0) == narration_key(SHORT, choose_voice(config, "Willow", "en", 1.0), 0)


def test_audiobook_and_video_have_a_chapter_per_page_and_all_the_audio(narrator: Narrator) -> None:
    choice = choose_voice(narrator.config, None, "en")
    texts = [SHORT, LONG, "The end."]
    pictures = [Image.new("RGB", (64, 64), (40 * i, 120, 200)) for i in range(3)]
    pages = [
        NarratedPage(number, speech, picture)
        for number, (text, picture) in enumerate(zip(texts, pictures), start=1)
        if (speech := narrator.speak(text, choice, 0)) is not None
    ]
    pause = 0.5
    expected = sum(page.speech.duration + pause for page in pages)
    book = probe(encode_audiobook(pages, title="Test", page_pause=pause))
    assert book.streams == ("audio",)
    assert book.audio_seconds == pytest.approx(expected, abs=0.12)  # AAC adds at most one frame each end
    starts = [0.0]
    for page in pages[:-1]:
        starts.append(starts[-1] + page.speech.duration + pause)
    assert [c[2] for c in book.chapters] == ["Page 1", "Page 2", "Page 3"]
    assert [c[0] for c in book.chapters] == pytest.approx(starts, abs=0.002)
    assert book.chapters[-1][1] == pytest.approx(expected, abs=0.002)

    video = probe(encode_video(pages, title="Test", side=96, fps=8, page_pause=pause))
    assert video.streams == ("video", "audio")
    assert video.audio_seconds == pytest.approx(expected, abs=0.12)
    assert video.video_seconds == pytest.approx(expected, abs=1 / 8 + 0.01)
    assert [c[0] for c in video.chapters] == pytest.approx(starts, abs=0.002)
