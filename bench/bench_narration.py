"""Narration benchmarks (CPU, one torch thread).

- ``narration_overhead_ratio``: a ``narrate`` job (one page of two sentences) queued in the job store and run by
  a real worker — validation, the narrator's reading, the pause between sentences, Opus encoding, the artifact
  written back — against the bare transformers calls on the same text (``VitsTokenizer`` + ``VitsModel`` on each
  sentence, as VITS is meant to be used and as the narrator reads; same speaker, same seed, same weights). The voice is a VITS of the real English model's size (transformers' default
  VITS configuration, about 36M parameters, random weights built here), so the model's share of the time is
  realistic; the narration cache is off, so every job really reads. Rounds alternate, median of per-round
  ratios. Target ≤ 1.10.
- ``video_encode_realtime_factor``: seconds of narrated video made per second of encoding, for a 5-page book of
  512×512 pictures at the default 720 pixels and 24 frames a second (pan and zoom, subtitles, H.264 and AAC);
  the narration is made beforehand and not timed. Reported; it holds when it is finite and positive and the
  video lasts as long as its narration.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

TARGET = 1.10
ROUNDS = 5
SEED = 7
PAGE = "Bhna the little cat lived in a cozy house by the sea. Every morning she watched the boats sail out."
SENTENCES = ["Bhna the little cat lived in a cozy house by the sea.", "Every morning she watched the boats sail out."]
BOOK = [
    "Bhna the little cat lived in a cozy house by the sea.",
    "Every morning she watched the boats, the birds and the waves.",
    "One day a friendly dog came to the door and asked her to come along.",
    "They crossed a river on a wooden bridge and climbed a green hill.",
    "At the top a kind dragon told them a story about the stars. The end.",
]


def build_voice(target: Path) -> None:
    """A VITS voice with the default (real-size) architecture and a character vocabulary, seeded."""
    import json

    import torch
    from transformers import VitsConfig, VitsModel, VitsTokenizer

    target.mkdir(parents=True, exist_ok=True)
    vocab = {"_": 0, **{c: i + 1 for i, c in enumerate(" abcdefghijklmnopqrstuvwxyz',.!?-")}}
    (target / "vocab.json").write_text(json.dumps(vocab))
    VitsTokenizer(str(target / "vocab.json"), language="en", phonemize=False).save_pretrained(target)
    torch.manual_seed(0)
    config = VitsConfig(vocab_size=len(vocab), num_speakers=109, speaker_embedding_size=256, sampling_rate=22050)
    VitsModel(config).save_pretrained(target, safe_serialization=True)


def run() -> list[dict]:
    from bench.common import one_thread

    with one_thread():
        with tempfile.TemporaryDirectory(prefix="bench-narration-") as tmp:
            voice = Path(tmp) / "voice"
            build_voice(voice)
            return [_overhead(Path(tmp), voice), _video(Path(tmp), voice)]


def _config(directory: Path, voice: Path):
    from storyloom.config import load_config

    overrides = {
        "paths": {"data_dir": str(directory / "data")},
        "models": {"narration": {"en": str(voice)}},
        "narration": {"cache_mb": 0, "speed": 1.0},
        "queue": {"heartbeat_seconds": 0.5},
    }
    return load_config(None, profile="tiny", environ={}, overrides=overrides)


def _overhead(directory: Path, voice: Path) -> dict:
    import torch
    from transformers import VitsModel, VitsTokenizer

    from bench.common import interleaved_ratio, record
    from storyloom.queue import JobStatus, JobStore
    from storyloom.worker.registry import build_handlers
    from storyloom.worker.testing import wait_until, worker_in_thread

    config = _config(directory, voice)
    speaker = config.narration.voices[config.narration.default_voice]["en"]
    tokenizer = VitsTokenizer.from_pretrained(voice)
    model = VitsModel.from_pretrained(voice).eval()
    params = {"pages": [{"number": 1, "text": PAGE}], "seed": SEED}
    assert " ".join(SENTENCES) == PAGE
    with JobStore.from_config(config) as store, worker_in_thread(config, handlers=build_handlers()):
        queued_ids: list[int] = []

        def job() -> None:
            queued = store.enqueue("narrate", params, user_id=1)
            queued_ids.append(queued.id)
            done = wait_until(lambda: (j := store.get(queued.id)).is_finished and j, 300, interval=0.002)
            assert done.status is JobStatus.SUCCEEDED, done.error

        def bare() -> None:
            torch.manual_seed(SEED)
            with torch.inference_mode():
                for sentence in SENTENCES:
                    model(**tokenizer(sentence, return_tensors="pt"), speaker_id=speaker)

        job(), bare(), job(), bare()  # warm-up: the worker loads its voice on the first job
        ratio, job_seconds, bare_seconds = interleaved_ratio(job, bare, ROUNDS)
        [recording] = [a for a in store.artifacts(queued_ids[-1]) if a.name.endswith(".ogg")]
    return record(
        "narration_overhead_ratio",
        ratio,
        "ratio",
        f"<= {TARGET}",
        ratio <= TARGET,
        job_seconds=round(job_seconds, 4),
        bare_seconds=round(bare_seconds, 4),
        rounds=ROUNDS,
        audio_seconds=recording.metadata["seconds"],
        model_parameters=sum(p.numel() for p in model.parameters()),
    )


def _video(directory: Path, voice: Path) -> dict:
    from PIL import Image

    from bench.common import record
    from storyloom.domain.narration import choose_voice
    from storyloom.models.narration.media import NarratedPage, encode_video, probe
    from storyloom.models.narration.narrator import Narrator

    config = _config(directory, voice).model_copy(
        update={
            "narration": _config(directory, voice).narration.model_copy(update={"video_side": 720, "video_fps": 24})
        }
    )
    narrator = Narrator.from_config(config)
    choice = choose_voice(config, None, "en")
    pages = []
    for number, text in enumerate(BOOK, start=1):
        speech = narrator.speak(text, choice, SEED)
        assert speech is not None
        picture = Image.linear_gradient("L").resize((512, 512)).convert("RGB")
        pages.append(
            NarratedPage(number, speech, Image.merge("RGB", (*picture.split()[:2], picture.rotate(90).split()[0])))
        )
    settings = config.narration
    start = time.perf_counter()
    data = encode_video(
        pages, title="Bench", side=settings.video_side, fps=settings.video_fps, page_pause=settings.page_pause
    )
    seconds = time.perf_counter() - start
    info = probe(data)
    factor = info.video_seconds / seconds if seconds > 0 else math.inf
    plausible = math.isfinite(factor) and factor > 0 and abs(info.video_seconds - info.audio_seconds) < 0.2
    return record(
        "video_encode_realtime_factor",
        factor,
        "x realtime",
        "reported (finite, > 0, video as long as its narration)",
        plausible,
        video_seconds=round(info.video_seconds, 3),
        audio_seconds=round(info.audio_seconds, 3),
        encode_seconds=round(seconds, 3),
        pages=len(pages),
        size=f"{settings.video_side}px",
        fps=settings.video_fps,
        megabytes=round(len(data) / 1e6, 3),
    )
