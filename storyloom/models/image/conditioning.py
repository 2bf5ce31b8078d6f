"""Prompts to conditioning through compel, with AUTOMATIC1111's syntax (parsed in ``domain.prompts``).

The encoder hands compel the parsed fragments directly (``to_conjunction``) instead of a translated string, which
is what compel's own parser would make of it, minus its cost.

A prompt becomes a ``PromptConditioning``: the embeddings of every text its schedule uses, per AND part. During
a run, ``PromptConditioning.applied`` makes the pipeline follow it: the step callback swaps ``prompt_embeds``
when the schedule moves on, and AND parts are drawn as composable diffusion (A1111's composition): the UNet
runs the negative and each part in one batch, and the positive half it returns is
``uncond + Σ wᵢ (condᵢ − uncond)``, so the pipeline's own guidance makes ``uncond + cfg · Σ wᵢ (condᵢ − uncond)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from storyloom.domain.prompts import (
    VALIDATION_STEPS,
    PromptChunk,
    parse_emphasis,
    split_breaks,
    text_at_step,
    validate_prompt,
)


def to_conjunction(chunks: list[PromptChunk]) -> Any:
    """The compel ``Conjunction`` that compel's parser builds from the translated string, built directly.

    Same fragments and weights as ``Compel.parse_prompt_string(to_compel(...))`` (the tests check it), without
    compel's pyparsing pass, which costs tens of milliseconds per prompt, and without the few characters
    that cannot travel inside a weighted group losing their weight. ``BREAK`` parts become the conjunction's
    parts, which compel encodes separately and concatenates, exactly A1111's BREAK.
    """
    from compel.prompt_parser import Conjunction, FlattenedPrompt

    prompts = []
    for part in split_breaks(chunks):
        fragments = [(chunk.text.strip(), float(chunk.weight)) for chunk in part if chunk.text.strip()]
        prompts.append(FlattenedPrompt(fragments or [("", 1.0)]))
    return Conjunction(prompts)


class PromptEncoder:
    """Prompt and negative prompt → ``prompt_embeds``/``negative_prompt_embeds`` of the same shape, via compel.

    Built once per loaded text encoder; ``truncate_long_prompts=False`` makes compel encode prompts of any
    length as consecutive 77-token chunks, and padding makes prompt and negative line up for CFG.
    """

    def __init__(self, tokenizer: Any, text_encoder: Any, *, max_chars: int) -> None:
        from compel import Compel

        self.max_chars = max_chars
        self._compel = Compel(
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            truncate_long_prompts=False,
            dtype_for_device_getter=lambda device: text_encoder.dtype,
        )

    @classmethod
    def from_pipeline(cls, pipe: Any, *, max_chars: int) -> PromptEncoder:
        return cls(pipe.tokenizer, pipe.text_encoder, max_chars=max_chars)

    def validate(
        self,
        prompt: str,
        negative_prompt: str = "",
        *,
        allow_empty_prompt: bool = False,
        steps: int = VALIDATION_STEPS,
        first_pass_steps: int | None = None,
    ) -> None:
        self.plan(
            prompt,
            negative_prompt,
            allow_empty_prompt=allow_empty_prompt,
            steps=steps,
            first_pass_steps=first_pass_steps,
        )

    def plan(
        self,
        prompt: str,
        negative_prompt: str,
        *,
        allow_empty_prompt: bool,
        steps: int,
        first_pass_steps: int | None = None,
    ) -> tuple[list[Any], list[Any]]:
        positive = validate_prompt(
            prompt, max_chars=self.max_chars, name="prompt", allow_empty=allow_empty_prompt, steps=steps,
            first_pass_steps=first_pass_steps,
        )  # fmt: skip
        negative = validate_prompt(
            negative_prompt, max_chars=self.max_chars, name="negative prompt", allow_empty=True, negative=True,
            steps=steps, first_pass_steps=first_pass_steps,
        )  # fmt: skip
        return positive, negative

    def conditioning(
        self,
        prompt: str,
        negative_prompt: str = "",
        *,
        steps: int,
        allow_empty_prompt: bool = False,
        first_pass_steps: int | None = None,
    ) -> PromptConditioning:
        """Everything a run of ``steps`` denoising steps needs: each distinct text encoded once, all padded to
        the same length so any of them can stand beside any other in a batch. ``first_pass_steps``: this run
        is a second pass over a picture drawn in that many steps (see ``domain.prompts.prompt_schedule``)."""
        import torch

        positive_plan, [negative_plan] = self.plan(
            prompt, negative_prompt, allow_empty_prompt=allow_empty_prompt, steps=steps,
            first_pass_steps=first_pass_steps,
        )  # fmt: skip
        texts = list(dict.fromkeys(text for part in [*positive_plan, negative_plan] for _end, text in part.schedule))
        with torch.no_grad():
            encoded = [self.encode_one(text) for text in texts]
        by_text = dict(zip(texts, self._compel.pad_conditioning_tensors_to_same_length(encoded)))

        def embeds(schedule: tuple[tuple[int, str], ...]) -> ScheduledEmbeds:
            return ScheduledEmbeds(tuple((end, by_text[text]) for end, text in schedule))

        return PromptConditioning(
            parts=[(part.weight, embeds(part.schedule)) for part in positive_plan],
            negative=embeds(negative_plan.schedule),
        )

    def encode(self, prompt: str, negative_prompt: str = "", *, allow_empty_prompt: bool = False) -> tuple[Any, Any]:
        """(prompt_embeds, negative_prompt_embeds) of the first step, each ``(1, 77·k, hidden)``, padded alike."""
        conditioning = self.conditioning(
            prompt, negative_prompt, steps=VALIDATION_STEPS, allow_empty_prompt=allow_empty_prompt
        )
        return conditioning.initial()

    def encode_one(self, prompt: str) -> Any:
        """Conditioning ``(1, 77·k, hidden)`` for one A1111 prompt (weights applied, long prompts chunked)."""
        import torch

        conjunction = to_conjunction(parse_emphasis(prompt))
        with torch.no_grad():
            conditioning, _options = self._compel.build_conditioning_tensor_for_conjunction(conjunction)
        return conditioning


@dataclass(frozen=True)
class ScheduledEmbeds:
    """One prompt's embeddings over a run: ``(end_at_step, embeds)`` as in ``domain.prompts.text_at_step``."""

    entries: tuple[tuple[int, Any], ...]

    def at(self, step_index: int) -> Any:
        return text_at_step(self.entries, step_index)

    @property
    def changes(self) -> bool:
        return len({id(embeds) for _end, embeds in self.entries}) > 1


@dataclass(frozen=True)
class PromptConditioning:
    """A prompt's AND parts (weight, embeddings over the steps) and the negative prompt's embeddings."""

    parts: list[tuple[float, ScheduledEmbeds]]
    negative: ScheduledEmbeds

    @property
    def composed(self) -> bool:
        """More than the plain ``cond`` (several AND parts, or one part with its own weight)."""
        return len(self.parts) > 1 or self.parts[0][0] != 1.0

    @property
    def scheduled(self) -> bool:
        return self.negative.changes or any(embeds.changes for _weight, embeds in self.parts)

    def initial(self) -> tuple[Any, Any]:
        """(prompt_embeds, negative_prompt_embeds) for the first step; with AND the UNet hook replaces them."""
        return self.parts[0][1].at(0), self.negative.at(0)

    @contextlib.contextmanager
    def applied(
        self, pipe: Any, callback: Any, *, seeds: Sequence[int] = (), chaos: float = 0.0
    ) -> Iterator[tuple[Any, list[str]]]:
        """The step callback and tensor inputs to give ``pipe`` so the run follows this conditioning; with AND
        (or ``chaos``), the composition hooks sit on ``pipe.unet`` for the length of the block.

        ``chaos`` (0–1) makes the pictures of one batch differ more than their seeds alone make them: each
        picture gets its own guidance strength (up to 2× either way) and its own noise on the conditioning,
        both drawn from the picture's seed, so a picture made again alone from its seed gets the same ones."""
        if not self.scheduled and not self.composed and not chaos:
            yield callback, ["latents"]
            return
        follower = _StepFollower(self, callback)
        if not self.composed and not chaos:
            yield follower, ["latents", "prompt_embeds"]
            return
        composer = _Composer(self, pipe, follower, _ImageChaos.draw(seeds, chaos, self.parts[0][1].at(0)))
        handles = [
            pipe.unet.register_forward_pre_hook(composer.expand, with_kwargs=True),
            pipe.unet.register_forward_hook(composer.combine, with_kwargs=True),
        ]
        try:
            yield follower, ["latents"]
        finally:
            for handle in handles:
                handle.remove()


CHAOS_NOISE = 0.4  # conditioning noise at chaos 1, relative to the conditioning's own spread
CHAOS_SALT = 0x9E3779B1  # the chaos draws of a seed are not its starting noise


@dataclass(frozen=True)
class _ImageChaos:
    """Per picture: a factor on the guidance and noise added to the conditioning (None: no chaos)."""

    factors: Any  # (images, 1, 1, 1)
    noise: Any  # (images, tokens, hidden)

    @classmethod
    def draw(cls, seeds: Sequence[int], chaos: float, reference: Any) -> _ImageChaos | None:
        import torch

        if not chaos:
            return None
        factors, noise = [], []
        spread = float(reference.float().std())
        for seed in seeds:
            generator = torch.Generator().manual_seed((seed ^ CHAOS_SALT) % 2**63)
            factors.append(2.0 ** (chaos * (2 * float(torch.rand((), generator=generator)) - 1)))
            noise.append(torch.randn(reference.shape[1:], generator=generator) * (chaos * CHAOS_NOISE * spread))
        return cls(torch.tensor(factors).view(-1, 1, 1, 1), torch.stack(noise))


class _StepFollower:
    """``callback_on_step_end``: runs the task's own callback, then moves the conditioning to the next step."""

    def __init__(self, conditioning: PromptConditioning, inner: Any) -> None:
        self.conditioning = conditioning
        self.inner = inner
        self.step = 0  # the step the UNet runs next

    def __call__(self, pipe: Any, step_index: int, timestep: Any, callback_kwargs: dict[str, Any]) -> dict[str, Any]:
        import torch

        outputs = dict(self.inner(pipe, step_index, timestep, callback_kwargs)) if self.inner is not None else {}
        self.step = step_index + 1
        current = callback_kwargs.get("prompt_embeds")
        if current is None or self.conditioning.composed:
            return outputs
        before = (self.conditioning.parts[0][1].at(step_index), self.conditioning.negative.at(step_index))
        positive, negative = self.conditioning.parts[0][1].at(self.step), self.conditioning.negative.at(self.step)
        if positive is before[0] and negative is before[1]:
            return outputs
        if pipe.do_classifier_free_guidance:
            count = current.shape[0] // 2
            pieces = [negative.repeat(count, 1, 1), positive.repeat(count, 1, 1)]
        else:
            pieces = [positive.repeat(current.shape[0], 1, 1)]
        outputs["prompt_embeds"] = torch.cat(pieces).to(device=current.device, dtype=current.dtype)
        return outputs


class _Composer:
    """Forward hooks on the UNet for AND: one batch of (negative, part 1 … part k), combined into the
    (uncond, composed) pair the pipeline expects, with the embeddings of the step the follower is at."""

    def __init__(
        self, conditioning: PromptConditioning, pipe: Any, follower: _StepFollower, chaos: _ImageChaos | None
    ) -> None:
        self.conditioning = conditioning
        self.pipe = pipe
        self.follower = follower
        self.chaos = chaos
        self.images = 0
        self.guided = False

    def expand(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict]:
        import torch

        sample = args[0] if args else kwargs["sample"]
        batch = sample.shape[0]
        self.guided = bool(self.pipe.do_classifier_free_guidance)
        self.images = batch // 2 if self.guided else batch
        count, step = self.images, self.follower.step
        reference = kwargs["encoder_hidden_states"]
        negative = self.conditioning.negative.at(step).repeat(count, 1, 1)
        parts = [part.at(step).repeat(count, 1, 1) for _weight, part in self.conditioning.parts]
        if self.chaos is not None:
            parts = [part + self.chaos.noise.to(part) for part in parts]
        hidden = torch.cat([negative, *parts]).to(device=reference.device, dtype=reference.dtype)
        new_args = tuple(self._widen(value, batch) for value in args)
        new_kwargs = {key: self._widen(value, batch) for key, value in kwargs.items()}
        new_kwargs["encoder_hidden_states"] = hidden
        return new_args, new_kwargs

    def _widen(self, value: Any, batch: int) -> Any:
        """A per-image input (batch first) for the wider batch: the uncond half once, the cond half per part."""
        import torch

        if isinstance(value, torch.Tensor):
            if value.ndim == 0 or value.shape[0] != batch:
                return value
            uncond, cond = (value[: self.images], value[self.images :]) if self.guided else (value, value)
            return torch.cat([uncond] + [cond] * len(self.conditioning.parts))
        if isinstance(value, (list, tuple)):
            return type(value)(self._widen(item, batch) for item in value)
        if isinstance(value, dict):
            return {key: self._widen(item, batch) for key, item in value.items()}
        return value

    def combine(self, module: Any, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> Any:
        import torch

        prediction = output[0] if isinstance(output, tuple) else output.sample
        count = self.images
        uncond = prediction[:count]
        guidance = torch.zeros_like(uncond)
        for number, (weight, _embeds) in enumerate(self.conditioning.parts, start=1):
            guidance += weight * (prediction[number * count : (number + 1) * count] - uncond)
        if self.chaos is not None:
            guidance *= self.chaos.factors.to(guidance)
        composed = uncond + guidance
        result = torch.cat([uncond, composed]) if self.guided else composed
        if isinstance(output, tuple):
            return (result, *output[1:])
        output.sample = result
        return output
