"""Rules of read-aloud books that the bot, the worker and the CLI share (torch-free).

Which voices and languages exist (``[narration]`` and ``[models] narration``), what a page's spoken sentences
are, and the key a page's narration is stored under: a hash of everything that changes the sound (the text,
the voice's speaker, the speed, the model and the seed), so an edited or redrawn page is never served old audio.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from storyloom.config import Config
from storyloom.domain.story.text import paragraphs, split_sentences
from storyloom.errors import InvalidInput

KEY_VERSION = 1
DEFAULT_SEED = 0  # narration is reproducible unless a seed is asked for
LANGUAGE_NAMES = {"en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "fr": "French",
                  "de": "German", "es": "Spanish", "ru": "Russian", "ar": "Arabic", "he": "Hebrew",
                  "hi": "Hindi", "th": "Thai", "el": "Greek"}  # fmt: skip


@dataclass(frozen=True)
class VoiceChoice:
    """A voice resolved for one language: the model that speaks it and the speaker it uses."""

    voice: str
    language: str
    model: str
    speaker: int
    speed: float


def base_language(tag: str) -> str:
    """``zh-Hans`` → ``zh``: the models are chosen by the primary language subtag."""
    return tag.strip().replace("_", "-").split("-")[0].lower()


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def spoken_languages(config: Config) -> list[str]:
    return sorted(config.models.narration)


def check_language(config: Config, language: str) -> str:
    """The model language for a story's ``language``, or ``InvalidInput`` naming the languages there are."""
    code = base_language(language)
    if code not in config.models.narration:
        known = ", ".join(f"{language_name(c)} ({c})" for c in spoken_languages(config))
        raise InvalidInput(f"narration cannot speak {language_name(code)} ({code}); it speaks {known}")
    return code


def check_voice(config: Config, voice: str | None) -> str:
    """The configured voice called ``voice`` (None: the default), or ``InvalidInput`` listing the voices."""
    voices = config.narration.voices
    if voice is None or not voice.strip():
        return config.narration.default_voice if config.narration.default_voice in voices else sorted(voices)[0]
    found = next((name for name in voices if name.lower() == voice.strip().lower()), None)
    if found is None:
        raise InvalidInput(f"voice {voice.strip()!r} is unknown; voices: {', '.join(sorted(voices))}")
    return found


def check_speed(speed: float | None, config: Config) -> float:
    value = config.narration.speed if speed is None else float(speed)
    if not 0.5 <= value <= 2.0:
        raise InvalidInput(f"speed {value:g} is not allowed; use 0.5 (slow) to 2.0 (fast)")
    return value


def choose_voice(config: Config, voice: str | None, language: str, speed: float | None = None) -> VoiceChoice:
    """Everything needed to speak in ``language`` with ``voice``; bad input gets one clear line."""
    code = check_language(config, language)
    name = check_voice(config, voice)
    speaker = config.narration.voices[name].get(code, 0)
    return VoiceChoice(name, code, config.models.narration[code], speaker, check_speed(speed, config))


def spoken_sentences(text: str) -> list[str]:
    """The sentences of a page in reading order, without empty ones (an empty page has none)."""
    return [
        sentence.text.strip()
        for paragraph in paragraphs(text)
        for sentence in split_sentences(paragraph)
        if any(char.isalnum() for char in sentence.text)
    ]


def narration_key(text: str, choice: VoiceChoice, seed: int) -> str:
    """The name a page's narration is kept under: any change to what is heard gives a new key."""
    identity = [KEY_VERSION, text, choice.language, choice.model, choice.speaker, round(choice.speed, 4), seed]
    return hashlib.sha256(json.dumps(identity, ensure_ascii=False).encode("utf-8")).hexdigest()
