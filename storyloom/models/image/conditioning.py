"""Prompts to conditioning tensors through compel, with AUTOMATIC1111 emphasis (parsed in ``domain.prompts``).

The encoder hands compel the parsed fragments directly (``to_conjunction``) instead of a translated string, which
is what compel's own parser would make of it, minus its cost.
"""

from __future__ import annotations

from typing import Any

from storyloom.domain.prompts import PromptChunk, parse_emphasis, split_breaks, validate_prompt


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

    def validate(self, prompt: str, negative_prompt: str = "", *, allow_empty_prompt: bool = False) -> None:
        validate_prompt(prompt, max_chars=self.max_chars, name="prompt", allow_empty=allow_empty_prompt)
        validate_prompt(negative_prompt, max_chars=self.max_chars, name="negative prompt", allow_empty=True)

    def encode(self, prompt: str, negative_prompt: str = "", *, allow_empty_prompt: bool = False) -> tuple[Any, Any]:
        """(prompt_embeds, negative_prompt_embeds), each ``(1, 77·k, hidden)``, padded to the same ``k``."""
        import torch

        self.validate(prompt, negative_prompt, allow_empty_prompt=allow_empty_prompt)
        with torch.no_grad():
            positive = self.encode_one(prompt)
            negative = self.encode_one(negative_prompt)
        positive, negative = self._compel.pad_conditioning_tensors_to_same_length([positive, negative])
        return positive, negative

    def encode_one(self, prompt: str) -> Any:
        """Conditioning ``(1, 77·k, hidden)`` for one A1111 prompt (weights applied, long prompts chunked)."""
        import torch

        conjunction = to_conjunction(parse_emphasis(prompt))
        with torch.no_grad():
            conditioning, _options = self._compel.build_conditioning_tensor_for_conjunction(conjunction)
        return conditioning
