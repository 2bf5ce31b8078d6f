"""Loading the story LM: tokenizer, weights (full precision, 8-bit or 4-bit) and an optional LoRA.

Kept apart from the writer so that tests and benchmarks can hand the writer a model they built.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from storyloom.config import Config
from storyloom.errors import ModelUnavailable
from storyloom.models.runtime.devices import resolve_device, resolve_dtype
from storyloom.models.runtime.loading import model_errors, resolve_source
from storyloom.models.story.writer import check_quantization_support

logger = logging.getLogger(__name__)


def load_story_model(config: Config) -> tuple[Any, Any]:
    """(model, tokenizer) for ``config.models.story`` with ``config.story`` quantization and adapter, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    story = config.story
    name = config.models.story
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.device, device)
    check_quantization_support(story.quantization)
    source = resolve_source(name, build_tiny=config.models.build_tiny)
    kwargs: dict[str, Any] = {"dtype": dtype}
    quantization = bnb_config(story.quantization, dtype)
    if quantization is not None:
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        # bitsandbytes layers are placed while loading; they cannot be moved with .to() afterwards.
        kwargs.update(quantization_config=quantization, device_map={"": str(device)})
    with model_errors(name):
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    if quantization is None:
        model.to(device)  # type: ignore[arg-type]  # transformers types ``to`` as taking a model
    if story.adapter:
        model = load_adapter(model, story.adapter)
    model.eval()
    logger.info(
        "loaded story model %s on %s (%s, quantization %s%s)",
        name,
        device,
        dtype,
        story.quantization,
        f", adapter {story.adapter}" if story.adapter else "",
    )
    return model, tokenizer


def bnb_config(quantization: str, compute_dtype: Any) -> Any:
    """The ``BitsAndBytesConfig`` for ``"8bit"``/``"4bit"`` (NF4 with double quantization), None for ``"none"``."""
    if quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )


def load_adapter(model: Any, adapter: str) -> Any:
    """Wrap ``model`` in the peft LoRA adapter at ``adapter`` (a directory, or a hub id)."""
    from peft import PeftModel

    path = Path(adapter).expanduser()
    looks_local = path.is_absolute() or adapter.startswith((".", "~")) or path.exists()
    if looks_local and not (path / "adapter_config.json").is_file():
        raise ModelUnavailable(f"story adapter {adapter!r} is not a LoRA adapter directory (no adapter_config.json)")
    with model_errors(adapter):
        return PeftModel.from_pretrained(model, str(path) if looks_local else adapter, is_trainable=False)
