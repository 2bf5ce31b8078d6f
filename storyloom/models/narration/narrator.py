"""Text to speech for story pages: one VITS model per language (transformers' ``VitsModel``), loaded on first use.

A page is read sentence by sentence (VITS is trained on sentences; long inputs drift), with a short pause
after each, so the sentence timings double as subtitle cues. The noise VITS samples comes from a generator
seeded per page: the same text, voice, speed and seed give the same samples, byte for byte.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from storyloom.config import Config
from storyloom.domain.narration import VoiceChoice, spoken_sentences
from storyloom.errors import JobCanceled, ModelUnavailable

logger = logging.getLogger(__name__)

# Chinese punctuation the pinyin keeps as it is, in the ASCII the models' vocabularies have.
_CJK_PUNCTUATION = str.maketrans({"，": ",", "。": ".", "！": "!", "？": "?", "、": ",", "；": ",", "：": ",",
                                  "“": "", "”": "", "‘": "", "’": "", "（": "", "）": "", "《": "", "》": ""})  # fmt: skip


@dataclass(frozen=True)
class SpokenSentence:
    text: str
    start: float  # seconds from the start of the page
    end: float


@dataclass(frozen=True)
class Speech:
    """One page read aloud: mono float32 samples in [-1, 1] and where each sentence is."""

    samples: np.ndarray
    sample_rate: int
    sentences: tuple[SpokenSentence, ...]

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class _Voice:
    model: Any
    tokenizer: Any


def spoken_text(sentence: str, language: str) -> str:
    """What the model's tokenizer reads: Chinese as tone-marked pinyin run together, as the Chinese model was
    trained (``小猫。`` → ``xiǎomāo.``)."""
    if language != "zh":
        return sentence
    from pypinyin import Style, lazy_pinyin

    return "".join(lazy_pinyin(sentence.translate(_CJK_PUNCTUATION), style=Style.TONE, tone_sandhi=True))


class Narrator:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._voices: dict[str, _Voice] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Config) -> Narrator:
        return cls(config)

    def check_inputs(self, choice: VoiceChoice) -> None:
        """Fail before any work when the voice's speaker does not exist in its model."""
        speakers = int(self._voice(choice.language).model.config.num_speakers)
        if speakers > 1 and not 0 <= choice.speaker < speakers:
            raise ModelUnavailable(
                f"voice {choice.voice!r} uses speaker {choice.speaker}, but the {choice.language} model has "
                f"speakers 0 to {speakers - 1}; change [narration] voices"
            )

    def speak(
        self, text: str, choice: VoiceChoice, seed: int, *, should_cancel: Callable[[], bool] | None = None
    ) -> Speech | None:
        """``text`` read aloud, or None when it has nothing to say (an empty page is never sent to the model)."""
        import torch

        sentences = spoken_sentences(text)
        if not sentences:
            return None
        voice = self._voice(choice.language)
        self.check_inputs(choice)
        rate = int(voice.model.config.sampling_rate)
        pause = np.zeros(int(round(self.config.narration.sentence_pause * rate)), dtype=np.float32)
        pieces: list[np.ndarray] = []
        timings: list[SpokenSentence] = []
        position = 0
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)  # VITS samples its noise from the global generator, restored afterwards
            for sentence in sentences:
                if should_cancel is not None and should_cancel():
                    raise JobCanceled("canceled")
                audio = self._synthesize(voice, spoken_text(sentence, choice.language), choice)
                if audio is None:
                    continue
                if pieces:
                    pieces.append(pause)
                    position += len(pause)
                timings.append(SpokenSentence(sentence, position / rate, (position + len(audio)) / rate))
                pieces.append(audio)
                position += len(audio)
        if not pieces:
            return None
        return Speech(np.concatenate(pieces), rate, tuple(timings))

    def _synthesize(self, voice: _Voice, text: str, choice: VoiceChoice) -> np.ndarray | None:
        inputs = voice.tokenizer(text, return_tensors="pt")
        ids = inputs["input_ids"]
        if ids.shape[-1] == 0 or not bool((ids != voice.tokenizer.pad_token_id).any()):
            return None  # nothing the model can pronounce (only symbols it has no sound for)
        device = next(voice.model.parameters()).device
        voice.model.speaking_rate = choice.speed
        speaker = choice.speaker if int(voice.model.config.num_speakers) > 1 else None
        output = voice.model(
            input_ids=ids.to(device), attention_mask=inputs["attention_mask"].to(device), speaker_id=speaker
        )
        return output.waveform[0].float().clamp(-1.0, 1.0).cpu().numpy().astype(np.float32)

    def _voice(self, language: str) -> _Voice:
        with self._lock:
            if language not in self._voices:
                self._voices[language] = self._load(language)
            return self._voices[language]

    def _load(self, language: str) -> _Voice:
        from transformers import VitsModel, VitsTokenizer

        from storyloom.models.runtime.devices import resolve_device
        from storyloom.models.runtime.loading import model_errors, resolve_source

        name = self.config.models.narration[language]
        source = resolve_source(name, build_tiny=self.config.models.build_tiny)
        with model_errors(name):
            tokenizer = VitsTokenizer.from_pretrained(source)
            model = VitsModel.from_pretrained(source)
        if getattr(tokenizer, "phonemize", False):
            _require_phonemizer(language)
        model.to(resolve_device(self.config.device)).eval()  # type: ignore[arg-type]  # transformers types ``to`` as taking a model
        logger.info("loaded the %s narration model %s", language, name)
        return _Voice(model, tokenizer)


def _require_phonemizer(language: str) -> None:
    try:
        from phonemizer.backend import EspeakBackend  # type: ignore[import-not-found]  # an optional extra

        if not EspeakBackend.is_available():
            raise ImportError("espeak-ng")
    except ImportError:
        raise ModelUnavailable(
            f"the {language} narration model reads phonemes: install espeak-ng (apt install espeak-ng) and the "
            "english-voices extra (pip install 'storyloom[english-voices]')"
        ) from None
