"""Fakes of the story engine's two models, shipped next to the real ones for tests.

``ScriptedLanguageModel`` answers from a script (deterministic text, malformed JSON, garbage, nothing)
and counts tokens as whitespace-separated words plus CJK characters, so trimming can be checked
exactly. ``FakeTxt2Img`` draws a flat colour per seed in no time. Neither imports torch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from PIL import Image

from storyloom.domain.parameters import GenerationParameters
from storyloom.errors import InvalidInput
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress
from storyloom.models.story.writer import MIN_ANSWER_TOKENS, Generation, TextRequest, cut_at_stop

Answer = str | Callable[[TextRequest], str]


class ScriptedLanguageModel:
    """Returns scripted answers in order (the last one repeats); records every request and seed.

    An answer may be a callable of the request, e.g. to answer planning and writing differently."""

    def __init__(self, answers: Iterable[Answer], *, context_window: int = 4096) -> None:
        self.answers = list(answers)
        if not self.answers:
            raise ValueError("a scripted model needs at least one answer")
        self._context_window = context_window
        self.requests: list[TextRequest] = []
        self.seeds: list[int | None] = []

    @property
    def context_window(self) -> int:
        return self._context_window

    def count(self, text: str) -> int:
        cjk = sum(1 for char in text if "\u3000" <= char <= "\u9fff")
        return len(text.split()) + cjk

    def prompt_tokens(self, request: TextRequest) -> int:
        return self.count(request.system) + self.count(request.prompt) + 4

    def generate(
        self,
        request: TextRequest,
        *,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Generation:
        prompt_tokens = self.prompt_tokens(request)
        if self.context_window - prompt_tokens < MIN_ANSWER_TOKENS:  # as the real writer does
            raise InvalidInput(f"the prompt is {prompt_tokens} tokens, too long for a {self.context_window} context")
        index = min(len(self.requests), len(self.answers) - 1)
        self.requests.append(request)
        self.seeds.append(seed)
        answer = self.answers[index]
        text = answer(request) if callable(answer) else answer
        text, stopped = cut_at_stop(text, request.stop)
        tokens = self.count(text)
        if progress is not None:
            progress(StepProgress(tokens, max(tokens, request.max_new_tokens or tokens), stage="writing"))
        return Generation(text, prompt_tokens, tokens, 0.001, "stop" if stopped else "eos")


@dataclass(frozen=True)
class FakeImageBatch:
    images: list[Image.Image]
    seeds: list[int]
    parameters: list[GenerationParameters]
    nsfw: list[bool] = field(default_factory=list)


class FakeTxt2Img:
    """A flat-colour image whose colour depends only on the seed; records each call's prompts."""

    def __init__(self, size: int = 64, steps: int = 3) -> None:
        self.size = size
        self.steps = steps
        self.calls: list[tuple[str, str, int]] = []

    def __call__(
        self,
        prompt: str,
        negative_prompt: str = "",
        *,
        seed: int | None = None,
        num_images: int | None = 1,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
        **_: object,
    ) -> FakeImageBatch:
        seed = 0 if seed is None else seed
        self.calls.append((prompt, negative_prompt, seed))
        for step in range(1, self.steps + 1):
            if progress is not None:
                progress(StepProgress(step, self.steps, stage="txt2img"))
        colour = tuple(hashlib.sha256(str(seed).encode()).digest()[:3])
        image = Image.new("RGB", (self.size, self.size), colour)
        params = GenerationParameters(
            prompt=prompt, negative_prompt=negative_prompt, seed=seed, width=self.size, height=self.size
        )
        return FakeImageBatch([image], [seed], [params], [False])
