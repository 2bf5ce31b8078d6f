"""Pages already read aloud, kept on disk under their narration key (``domain.narration.narration_key``).

The key hashes the text, voice, speed, model and seed, so a page whose text changed is simply a new key: a
stale recording can never be found for it. The oldest recordings go when the cache outgrows its size.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from storyloom.config import Config
from storyloom.domain.narration import VoiceChoice, narration_key
from storyloom.models.narration.narrator import Narrator, Speech, SpokenSentence

logger = logging.getLogger(__name__)


class SpeechCache:
    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes

    @classmethod
    def from_config(cls, config: Config) -> SpeechCache:
        return cls(config.paths.data_dir / "cache" / "narration", config.narration.cache_mb * 1024 * 1024)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def get(self, key: str) -> Speech | None:
        path = self._path(key)
        if self.max_bytes <= 0 or not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                sentences = json.loads(str(stored["sentences"]))
                speech = Speech(
                    stored["samples"].astype(np.float32),
                    int(stored["rate"]),
                    tuple(SpokenSentence(text, start, end) for text, start, end in sentences),
                )
        except (OSError, ValueError, KeyError):
            logger.warning("dropping unreadable narration %s", path.name)
            path.unlink(missing_ok=True)
            return None
        os.utime(path)  # recently used: kept longest
        return speech

    def put(self, key: str, speech: Speech) -> None:
        if self.max_bytes <= 0:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        sentences = json.dumps([[s.text, s.start, s.end] for s in speech.sentences], ensure_ascii=False)
        np.savez(buffer, samples=speech.samples, rate=np.int64(speech.sample_rate), sentences=np.str_(sentences))
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".part")
        with os.fdopen(handle, "wb") as stream:
            stream.write(buffer.getvalue())
        os.replace(temporary, self._path(key))  # whole or absent, even when two workers write the same key
        self._trim()

    def _trim(self) -> None:
        files = sorted(self.directory.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
        total = 0
        for path in files:
            total += path.stat().st_size
            if total > self.max_bytes:
                path.unlink(missing_ok=True)


def read_page(
    narrator: Narrator,
    cache: SpeechCache | None,
    text: str,
    choice: VoiceChoice,
    seed: int,
    should_cancel: Callable[[], bool] | None = None,
) -> Speech | None:
    """A page read aloud, from the cache when this exact page was read before (None: nothing to read)."""
    key = narration_key(text, choice, seed)
    found = cache.get(key) if cache is not None else None
    if found is not None:
        return found
    speech = narrator.speak(text, choice, seed, should_cancel=should_cancel)
    if speech is not None and cache is not None:
        cache.put(key, speech)
    return speech
