"""A page's narration too large for the upload limit is re-encoded at a lower Opus bitrate, never cut."""

from __future__ import annotations

import numpy as np
import pytest

from storyloom.bot.attachments import fit_audio
from storyloom.models.narration.media import encode_ogg_opus, probe
from storyloom.models.narration.narrator import Speech


def test_a_long_recording_is_re_encoded_to_fit_and_keeps_its_length() -> None:
    rate = 22050
    rng = np.random.default_rng(0)  # noise: the hardest sound to compress, like a long page of speech
    samples = (rng.standard_normal(rate * 20) * 0.2).astype(np.float32)
    original = encode_ogg_opus(Speech(samples, rate, ()))
    limit = len(original) // 2
    fitted = fit_audio(original, "page-3.ogg", limit)
    assert 0 < len(fitted.data) <= limit and fitted.filename == "page-3.ogg"
    assert "re-encoded at" in fitted.note and "upload limit" in fitted.note
    assert probe(fitted.data).audio_seconds == pytest.approx(probe(original).audio_seconds, abs=0.03)
    assert fit_audio(original, "page-3.ogg", len(original)).data == original  # fits: sent unchanged
    hopeless = fit_audio(original, "page-3.ogg", 1000)
    assert hopeless.data == b"" and "does not fit the 1000 byte upload limit" in hopeless.note
