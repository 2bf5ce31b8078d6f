"""A character's DreamBooth LoRA on the shared Stable Diffusion pipeline, for one job only.

``lora_loaded`` loads the LoRA file into the pipeline's UNet (and text encoder, when it was trained too) under
its own adapter name, and unloads it when the job is done, success or failure. The LoRA is never fused: the base
weights are not touched, and unloading puts the original modules back, so the next job's images are exactly
what they would have been (bit for bit). Every task pipeline built from the same base (txt2img, variations,
the ControlNet upscaler) shares those modules, so loading through any of them affects all of them until the
unload.

``with_character`` puts the character's "identifier class" words into a prompt, which is what summons the
trained look. Nothing here needs torch until a LoRA is actually loaded.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storyloom.errors import ModelUnavailable

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def lora_loaded(pipe: Any, lora_file: Path, *, adapter_name: str, scale: float = 1.0) -> Iterator[None]:
    """Inside the block ``pipe`` draws with the LoRA at ``lora_file``; afterwards the base is as it was."""
    if not lora_file.is_file():
        raise ModelUnavailable(
            f"the LoRA file {lora_file.name} of this character is missing; train the character again"
        )
    try:
        pipe.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name, adapter_name=adapter_name)
        pipe.set_adapters([adapter_name], adapter_weights=[scale])
    except Exception as exc:
        _unload(pipe)
        if isinstance(exc, (OSError, ValueError, KeyError, RuntimeError)):
            logger.warning("loading LoRA %s failed", lora_file, exc_info=True)
            raise ModelUnavailable(
                f"the LoRA file {lora_file.name} cannot be loaded into this image model ({type(exc).__name__}); "
                "it may be damaged or made for another base model"
            ) from None
        raise
    logger.debug("LoRA %s loaded as %s", lora_file, adapter_name)
    try:
        yield
    finally:
        _unload(pipe)


def _unload(pipe: Any) -> None:
    """Remove every LoRA layer: the modules go back to the very objects (and weights) they were before."""
    pipe.unload_lora_weights()


def with_character(prompt: str, *, identifier: str, class_name: str, name: str) -> str:
    """``prompt`` mentioning ``identifier class_name``: kept as it is when it already names the identifier;
    otherwise the character's name is replaced by those words, or they lead the prompt."""
    token = f"{identifier} {class_name}"
    if _word(identifier).search(prompt):
        return prompt
    named = _word(name)
    if named.search(prompt):
        return named.sub(lambda _match: token, prompt)
    return f"{token}, {prompt}" if prompt.strip() else token


def _word(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", re.IGNORECASE)
