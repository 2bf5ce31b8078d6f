"""Encoding narration with PyAV: a page as Ogg/Opus, a book as an M4A audiobook with a chapter per page, and a
narrated MP4 of the pictures (H.264 with gentle pan and zoom, AAC, subtitles burned in).

Torch-free: the worker and the CLI hand over samples (from ``Narrator.speak``) and pictures.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import av
import numpy as np
from PIL import Image

from storyloom.models.narration.narrator import Speech, SpokenSentence

if TYPE_CHECKING:
    from av.container.core import Chapter

OPUS_RATE = 48000  # Opus runs at 48 kHz; other rates are resampled
OPUS_BITRATE = 32000  # clear speech, about 240 KB a minute
AAC_RATE = 24000
AAC_BITRATE = 64000
OGG_MIME = "audio/ogg"
M4A_MIME = "audio/mp4"
MP4_MIME = "video/mp4"
CHAPTER_TIME_BASE = Fraction(1, 1000)


@dataclass(frozen=True)
class NarratedPage:
    """A page of a book as read aloud: its number, its speech and (for the video) its picture."""

    number: int
    speech: Speech
    picture: Image.Image | None = None


def _frames(samples: np.ndarray, rate: int, chunk: int = 4096) -> list[av.AudioFrame]:
    frames = []
    for start in range(0, len(samples), chunk):
        piece = np.ascontiguousarray(samples[start : start + chunk], dtype=np.float32)[None, :]
        frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
        frame.sample_rate = rate
        frames.append(frame)
    return frames


def _encode_audio(container: av.container.OutputContainer, stream: av.AudioStream, frames: list[av.AudioFrame]) -> None:
    resampler = av.AudioResampler(
        format=stream.codec_context.format, layout="mono", rate=stream.codec_context.sample_rate
    )
    for frame in [*frames, None]:
        for resampled in resampler.resample(frame):
            resampled.pts = None  # the encoder numbers the samples itself
            for packet in stream.encode(resampled):
                container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def encode_ogg_opus(speech: Speech, *, title: str = "") -> bytes:
    """One page's narration as Ogg/Opus (mono, 48 kHz)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ogg", options={"fflags": "+bitexact"}) as container:
        if title:
            container.metadata["title"] = title
        stream = container.add_stream("libopus", rate=OPUS_RATE, layout="mono")
        stream.bit_rate = OPUS_BITRATE
        _encode_audio(container, stream, _frames(speech.samples, speech.sample_rate))
    return buffer.getvalue()


def book_samples(pages: Sequence[NarratedPage], page_pause: float) -> tuple[np.ndarray, int, list[tuple[float, float]]]:
    """All pages one after another with ``page_pause`` seconds after each: (samples, rate, page spans)."""
    rate = pages[0].speech.sample_rate
    pause = np.zeros(int(round(page_pause * rate)), dtype=np.float32)
    pieces, spans, position = [], [], 0
    for page in pages:
        samples = page.speech.samples
        if page.speech.sample_rate != rate:
            raise ValueError("every page of a book is read by one voice at one sample rate")
        spans.append((position / rate, (position + len(samples) + len(pause)) / rate))
        pieces += [samples, pause]
        position += len(samples) + len(pause)
    return np.concatenate(pieces), rate, spans


def _chapters(pages: Sequence[NarratedPage], spans: list[tuple[float, float]]) -> list[Chapter]:
    return [
        {
            "id": index + 1,
            "start": int(round(start * 1000)),
            "end": int(round(end * 1000)),
            "time_base": CHAPTER_TIME_BASE,
            "metadata": {"title": f"Page {page.number}"},
        }
        for index, (page, (start, end)) in enumerate(zip(pages, spans))
    ]


def encode_audiobook(pages: Sequence[NarratedPage], *, title: str = "", page_pause: float = 0.8) -> bytes:
    """The whole book as one M4A (AAC) with a chapter mark at the start of every page."""
    if not pages:
        raise ValueError("an audiobook needs at least one narrated page")
    samples, rate, spans = book_samples(pages, page_pause)
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="ipod", options={"fflags": "+bitexact"}) as container:
        if title:
            container.metadata["title"] = title
        stream = container.add_stream("aac", rate=AAC_RATE, layout="mono")
        stream.bit_rate = AAC_BITRATE
        _encode_audio(container, stream, _frames(samples, rate))
        container.set_chapters(_chapters(pages, spans))
    return buffer.getvalue()


def encode_video(
    pages: Sequence[NarratedPage],
    *,
    title: str = "",
    side: int = 720,
    fps: int = 24,
    page_pause: float = 0.8,
    should_cancel: Callable[[], bool] | None = None,
) -> bytes:
    """An MP4 of the pages' pictures (pan and zoom, subtitles burned in) with the narration, a chapter per page."""
    from storyloom.models.narration.video import KenBurns, SubtitleRenderer, frame_size

    if not pages:
        raise ValueError("a video needs at least one narrated page")
    samples, rate, spans = book_samples(pages, page_pause)
    first = next((page.picture for page in pages if page.picture is not None), None)
    width, height = frame_size(first.size if first is not None else (1, 1), side)
    subtitles = SubtitleRenderer(width, height, " ".join(s.text for p in pages for s in p.speech.sentences))
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        if title:
            container.metadata["title"] = title
        video = container.add_stream("libx264", rate=fps, options={"crf": "23", "preset": "veryfast"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=AAC_RATE, layout="mono")
        audio.bit_rate = AAC_BITRATE
        frame_index = 0
        for index, (page, (start, end)) in enumerate(zip(pages, spans)):
            motion = KenBurns(page.picture, (width, height), zoom_in=index % 2 == 0)
            cues = [SpokenSentence(s.text, start + s.start, start + s.end) for s in page.speech.sentences]
            while frame_index / fps < end - 1e-9:
                if should_cancel is not None and should_cancel():
                    from storyloom.errors import JobCanceled

                    raise JobCanceled("canceled")
                now = frame_index / fps
                picture = motion.frame((now - start) / max(end - start, 1e-6))
                picture = subtitles.draw(picture, _cue_at(cues, now))
                frame = av.VideoFrame.from_image(picture)
                frame.pts = frame_index
                frame.time_base = Fraction(1, fps)
                for packet in video.encode(frame):
                    container.mux(packet)
                frame_index += 1
        for packet in video.encode(None):
            container.mux(packet)
        _encode_audio(container, audio, _frames(samples, rate))
        container.set_chapters(_chapters(pages, spans))
    return buffer.getvalue()


def _cue_at(cues: list[SpokenSentence], now: float) -> str:
    """The sentence being spoken at ``now``, held through the pause after it."""
    current = ""
    for cue in cues:
        if cue.start <= now:
            current = cue.text
    return current


@dataclass(frozen=True)
class MediaInfo:
    """What a decoder finds in a file (used by the tests and ``storyloom narrate``)."""

    streams: tuple[str, ...]
    audio_seconds: float
    audio_rate: int
    video_seconds: float
    chapters: tuple[tuple[float, float, str], ...]


def probe(data: bytes) -> MediaInfo:
    """Decode ``data`` fully and report its streams, the decoded audio's length and the chapter marks."""
    with av.open(io.BytesIO(data), "r") as container:
        kinds = tuple(stream.type for stream in container.streams if stream.type in ("audio", "video"))
        chapters = tuple(
            (
                float(c["start"] * (c["time_base"] or 1)),
                float(c["end"] * (c["time_base"] or 1)),
                str(c["metadata"].get("title", "")),
            )
            for c in container.chapters()
        )
        audio_samples, audio_rate, video_frames, video_rate = 0, 0, 0, Fraction(0)
        streams = [s for s in container.streams if s.type in ("audio", "video")]
        for frame in container.decode(*streams):
            if isinstance(frame, av.AudioFrame):
                audio_samples += frame.samples
                audio_rate = frame.sample_rate
            else:
                video_frames += 1
        video_stream = next((s for s in container.streams.video), None)
        if video_stream is not None and video_stream.average_rate:
            video_rate = Fraction(video_stream.average_rate)
    return MediaInfo(
        streams=kinds,
        audio_seconds=audio_samples / audio_rate if audio_rate else 0.0,
        audio_rate=audio_rate,
        video_seconds=float(video_frames / video_rate) if video_rate else 0.0,
        chapters=chapters,
    )
