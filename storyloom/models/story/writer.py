"""The story language model: a transformers causal LM behind one small, synchronous ``generate``.

It is a thin layer over ``model.generate`` on purpose: the prompt is rendered and tokenized once,
``generate`` runs untouched, and the answer is decoded once. The only per-token Python code is an
optional progress/cancel stopping criterion that does real work at most four times a second.
It runs in a worker process (or the CLI), never inside an event loop.

Everything that needs a language model (writer, planner, memory) talks to the :class:`LanguageModel`
protocol, so the tests can script one without torch.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from storyloom.errors import InvalidInput, JobCanceled, ModelUnavailable
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress

if TYPE_CHECKING:
    from storyloom.config import Config, StoryConfig

logger = logging.getLogger(__name__)

# Fewer new tokens than this cannot hold a useful answer; refuse rather than return a stub.
MIN_ANSWER_TOKENS = 16
# Seconds between progress reports / cancel checks during generation.
WATCH_INTERVAL = 0.25


@dataclass(frozen=True)
class TextRequest:
    """One call to the language model.

    ``chat`` requests go through the model's chat template with ``system`` as the system prompt;
    plain requests (the storyteller template) are tokenized as they are. ``use_adapter=False`` runs
    the base model even when a story LoRA is loaded: planning JSON is not what the LoRA learned.
    """

    prompt: str
    system: str = ""
    chat: bool = True
    max_new_tokens: int | None = None
    min_new_tokens: int = 0
    stop: tuple[str, ...] = ()
    temperature: float | None = None
    use_adapter: bool = True


@dataclass(frozen=True)
class Generation:
    """What the model wrote (stop string and anything after it removed) and what it cost."""

    text: str
    prompt_tokens: int
    new_tokens: int
    seconds: float
    finish_reason: Literal["eos", "stop", "length"]

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


class LanguageModel(Protocol):
    """What the planner, memory and pipeline need from a language model."""

    @property
    def context_window(self) -> int: ...

    def prompt_tokens(self, request: TextRequest) -> int: ...

    def generate(
        self,
        request: TextRequest,
        *,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Generation: ...


class StoryWriter:
    """A loaded causal LM and tokenizer with the story sampling settings.

    Build it once per worker with :meth:`from_config` and reuse it for every story.
    """

    def __init__(self, model: Any, tokenizer: Any, settings: StoryConfig) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.settings = settings
        self._context_window = _context_window(model, tokenizer, settings.context_tokens)

    @classmethod
    def from_config(cls, config: Config) -> StoryWriter:
        from storyloom.models.story.loading import load_story_model

        model, tokenizer = load_story_model(config)
        return cls(model, tokenizer, config.story)

    @property
    def context_window(self) -> int:
        """Tokens one call may use, prompt and answer together."""
        return self._context_window

    @property
    def has_adapter(self) -> bool:
        return hasattr(self.model, "disable_adapter")

    def encode(self, request: TextRequest) -> Any:
        """The prompt as model inputs (``input_ids`` and ``attention_mask`` on the model's device)."""
        tokenizer = self.tokenizer
        if request.chat and getattr(tokenizer, "chat_template", None):
            text = _render_chat(tokenizer, request)
            inputs = tokenizer(text, add_special_tokens=False, return_tensors="pt")
        elif request.chat:
            # A base model without a chat template still gets the instructions, as plain text.
            system = f"{request.system}\n\n" if request.system else ""
            inputs = tokenizer(f"{system}{request.prompt}\n\n", return_tensors="pt")
        else:
            inputs = tokenizer(request.prompt, return_tensors="pt")
        return inputs.to(self.model.device)

    def prompt_tokens(self, request: TextRequest) -> int:
        return int(self.encode(request)["input_ids"].shape[1])

    def generation_kwargs(self, request: TextRequest, prompt_length: int) -> dict[str, Any]:
        """The keyword arguments handed to ``model.generate`` (also used by the benchmark's baseline)."""
        settings = self.settings
        wanted = request.max_new_tokens or settings.max_new_tokens
        room = self.context_window - prompt_length
        if room < MIN_ANSWER_TOKENS:
            raise InvalidInput(
                f"the prompt is {prompt_length} tokens, too long for the story model's context of "
                f"{self.context_window} tokens; shorten the summary"
            )
        max_new_tokens = min(wanted, room)
        kwargs: dict[str, Any] = {
            "do_sample": True,
            "temperature": request.temperature or settings.temperature,
            "top_p": settings.top_p,
            "repetition_penalty": settings.repetition_penalty,
            "max_new_tokens": max_new_tokens,
            "pad_token_id": _pad_token_id(self.tokenizer),
        }
        if request.min_new_tokens:
            kwargs["min_new_tokens"] = min(request.min_new_tokens, max_new_tokens)
        if request.stop:
            kwargs["stop_strings"] = list(request.stop)
            kwargs["tokenizer"] = self.tokenizer
        return kwargs

    def generate(
        self,
        request: TextRequest,
        *,
        seed: int | None = None,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Generation:
        """Run ``model.generate`` once and decode the answer."""
        import torch

        inputs = self.encode(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        kwargs = self.generation_kwargs(request, prompt_length)
        watch = None
        if progress is not None or should_cancel is not None:
            watch = _Watch(prompt_length, kwargs["max_new_tokens"], progress, should_cancel)
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([watch])
        if seed is not None:
            torch.manual_seed(seed)
        adapter_off: Any = contextlib.nullcontext()
        if self.has_adapter and not request.use_adapter:
            adapter_off = self.model.disable_adapter()
        start = time.perf_counter()
        with adapter_off, torch.inference_mode():
            output = self.model.generate(**inputs, **kwargs)
        seconds = time.perf_counter() - start
        if watch is not None and watch.canceled:
            raise JobCanceled("the story was canceled while it was being written")
        new_ids = output[0, prompt_length:]
        text = self.tokenizer.decode(new_ids, skip_special_tokens=True)
        text, stopped = cut_at_stop(text, request.stop)
        eos = _eos_ids(self.model, self.tokenizer)
        if stopped:
            reason: Literal["eos", "stop", "length"] = "stop"
        elif len(new_ids) and int(new_ids[-1]) in eos:
            reason = "eos"
        else:
            reason = "length"
        if progress is not None:
            progress(StepProgress(len(new_ids), kwargs["max_new_tokens"], stage="writing"))
        return Generation(text, prompt_length, int(len(new_ids)), seconds, reason)

    def with_settings(self, **changes: Any) -> StoryWriter:
        """The same loaded model with other sampling settings (no reload)."""
        return StoryWriter(self.model, self.tokenizer, self.settings.model_copy(update=changes))


def cut_at_stop(text: str, stop: tuple[str, ...] | list[str]) -> tuple[str, bool]:
    """``text`` up to the first stop string, and whether one was found."""
    cut = min((index for index in (text.find(word) for word in stop if word) if index >= 0), default=-1)
    if cut < 0:
        return text, False
    return text[:cut], True


class _Watch:
    """Stopping criterion that reports progress and honours cancellation, cheaply.

    Called once per generated token; it only reads the clock unless a quarter second has passed.
    """

    def __init__(
        self, prompt_length: int, total: int, progress: ProgressCallback | None, should_cancel: CancelCheck | None
    ) -> None:
        self.prompt_length = prompt_length
        self.total = total
        self.progress = progress
        self.should_cancel = should_cancel
        self.canceled = False
        self._next = time.monotonic()  # the first token reports (and checks) at once

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        now = time.monotonic()
        if now >= self._next:
            self._next = now + WATCH_INTERVAL
            if self.progress is not None:
                self.progress(StepProgress(int(input_ids.shape[1]) - self.prompt_length, self.total, stage="writing"))
            if self.should_cancel is not None and self.should_cancel():
                self.canceled = True
        return torch.full((input_ids.shape[0],), self.canceled, dtype=torch.bool, device=input_ids.device)


def _render_chat(tokenizer: Any, request: TextRequest) -> str:
    messages = [{"role": "user", "content": request.prompt}]
    if request.system:
        messages.insert(0, {"role": "system", "content": request.system})
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception:
        if not request.system:
            raise
        merged = replace(request, system="", prompt=f"{request.system}\n\n{request.prompt}")
        return _render_chat(tokenizer, merged)


def _context_window(model: Any, tokenizer: Any, configured: int) -> int:
    limits = [configured]
    positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 10**7:
        limits.append(tokenizer_limit)
    return min(limits)


def _pad_token_id(tokenizer: Any) -> int | None:
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (config_eos, tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def check_quantization_support(quantization: str) -> None:
    """Fail with one clear line when bitsandbytes is needed but missing."""
    if quantization == "none":
        return
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ModelUnavailable(
            f"story.quantization = {quantization!r} needs the bitsandbytes package; "
            'install it or set quantization = "none"'
        ) from None
