"""A character's DreamBooth LoRA on the shared Stable Diffusion pipeline, for one job only.

``lora_loaded`` loads the LoRA file into the pipeline's UNet (and text encoder, when it was trained too) under
its own adapter name, and unloads it when the job is done, success or failure. The LoRA is never fused: the base
weights are not touched, and unloading puts the original modules back, so the next job's images are exactly
what they would have been (bit for bit). Every task pipeline built from the same base (txt2img, variations,
the ControlNet upscaler) shares those modules, so loading through any of them affects all of them until the
unload.

``with_character`` puts the character's "identifier class" words into a prompt, which is what summons the
trained look. ``drawing_with`` is the one way a job or command draws with registered characters (one, or a
story page's several): their LoRAs loaded around the call, and a ``CharacterDrawing`` that puts the character's words into a prompt and writes
``Character: NAME`` into the PNG parameters (so a variation of the picture loads the same LoRA again).
Nothing here needs torch until a LoRA is actually loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyloom.errors import InvalidInput, ModelUnavailable

if TYPE_CHECKING:
    from storyloom.config import Config
    from storyloom.domain.parameters import GenerationParameters
    from storyloom.models.image.sd_task import ImageBatch
    from storyloom.queue.character import CharacterRecord

logger = logging.getLogger(__name__)

CHARACTER_KEY = "Character"  # the PNG parameters entry naming the character a picture was drawn with
PLACES_KEY = "Character places"  # with several characters, where each stands (left, center, right), in order


@dataclasses.dataclass(frozen=True)
class CharacterDrawing:
    """What drawing with ``records`` changes besides the LoRAs: their words in the prompt and their names in the
    parameters. With no character every method gives back what it was given."""

    records: tuple[CharacterRecord, ...] = ()
    places: tuple[str, ...] = ()  # each character's place in the picture, when there are several

    def prompt(self, prompt: str) -> str:
        """``prompt`` with each character's words (see ``with_character``); a character drawn from a reference
        picture alone has no trained words, only its plain word if it has one."""
        for record in self.records:
            if record.has_lora:
                prompt = with_character(
                    prompt, identifier=record.identifier, class_name=record.class_name, name=record.name
                )
            elif record.class_name:
                prompt = with_character(prompt, identifier="", class_name=record.class_name, name=record.name)
        return prompt

    def named(self, parameters: GenerationParameters) -> GenerationParameters:
        """``parameters`` naming the characters."""
        if not self.records:
            return parameters
        named = named_character(parameters, ", ".join(record.name for record in self.records))
        if len(self.records) > 1 and len(self.places) == len(self.records):
            named = dataclasses.replace(named, extra={**named.extra, PLACES_KEY: ", ".join(self.places)})
        return named

    def tagged(self, batch: ImageBatch) -> ImageBatch:
        """``batch`` with the characters' names in every image's parameters."""
        if not self.records:
            return batch
        return dataclasses.replace(batch, parameters=[self.named(params) for params in batch.parameters])


@contextlib.contextmanager
def drawing_with(
    task: Any, records: CharacterRecord | Sequence[CharacterRecord] | None, data_dir: Path
) -> Iterator[CharacterDrawing]:
    """Inside the block ``task`` (``Txt2Img``, ``Variations``, ``Upscaler``: ``using_lora`` and ``using_loras``) draws
    with the LoRAs of ``records`` (one record, several, or None; files found under ``data_dir``; a character
    without a LoRA loads nothing here); the ``CharacterDrawing`` it gives puts the characters into prompts and
    parameters. No LoRA and no change for None."""
    if records is None:
        records = ()
    elif not isinstance(records, Sequence):
        records = (records,)
    drawing = CharacterDrawing(tuple(records))
    trained = [record for record in drawing.records if record.has_lora]
    if not trained:
        yield drawing
        return
    from storyloom.characters.registry import adapter_name, lora_file

    if len(trained) == 1:
        loading = task.using_lora(lora_file(trained[0], data_dir), adapter_name=adapter_name(trained[0]))
    else:
        loading = task.using_loras([(lora_file(record, data_dir), adapter_name(record)) for record in trained])
    with loading:
        yield drawing


def named_character(parameters: GenerationParameters, name: str) -> GenerationParameters:
    """``parameters`` with ``Character: name``."""
    return dataclasses.replace(parameters, extra={**parameters.extra, CHARACTER_KEY: name})


@contextlib.contextmanager
def lora_loaded(pipe: Any, loras: Sequence[tuple[Path, str]], *, scale: float = 1.0) -> Iterator[None]:
    """Inside the block ``pipe`` draws with the LoRAs (file, adapter name) at once, each at ``scale``;
    afterwards the base is as it was."""
    for lora_file, _name in loras:
        if not lora_file.is_file():
            raise ModelUnavailable(
                f"the LoRA file {lora_file.name} of this character is missing; train the character again"
            )
    lora_file = loras[0][0]
    try:
        for lora_file, adapter_name in loras:
            with warnings.catch_warnings():
                # Several characters' LoRAs together is what this is for; peft warns about a second one all the same.
                warnings.filterwarnings("ignore", "Already found a `peft_config`", UserWarning)
                pipe.load_lora_weights(str(lora_file.parent), weight_name=lora_file.name, adapter_name=adapter_name)
        pipe.set_adapters([name for _file, name in loras], adapter_weights=[scale] * len(loras))
    except Exception as exc:
        _unload(pipe)
        if isinstance(exc, (OSError, ValueError, KeyError, RuntimeError)):
            logger.warning("loading LoRA %s failed", lora_file, exc_info=True)
            raise ModelUnavailable(
                f"the LoRA file {lora_file.name} cannot be loaded into this image model ({type(exc).__name__}); "
                "it may be damaged or made for another base model"
            ) from None
        raise
    logger.debug("LoRAs %s loaded", [name for _file, name in loras])
    try:
        yield
    finally:
        _unload(pipe)


@contextlib.contextmanager
def named_loras_loaded(
    pipe: Any, config: Config, prompt: str, hashes: dict[str, str | None]
) -> Iterator[dict[str, str]]:
    """Inside the block ``pipe`` draws with the configured LoRAs the prompt's ``<lora:name:w>`` tags name, beside a
    character's LoRA if one is loaded; gives ``{"Lora hashes": "name: 0123456789ab, …"}`` as A1111 writes it
    (``hashes`` keeps each file's hash, computed once). Afterwards only what was loaded before is left (with no
    other LoRA, the original modules, bit for bit)."""
    from storyloom.domain.prompts import extract_loras
    from storyloom.models.runtime.loading import resolve_source, weights_hash

    _text, tags = extract_loras(prompt)
    if not tags:
        yield {}
        return
    known = config.models.loras
    unknown = [tag.name for tag in tags if tag.name not in known]
    if unknown:
        raise InvalidInput(f"unknown LoRA {unknown[0]!r}; the known LoRAs: {', '.join(sorted(known)) or 'none'}")
    before = list(pipe.get_active_adapters()) if getattr(pipe.unet, "peft_config", None) else []
    names = [f"prompt_{tag.name}" for tag in tags]
    try:
        for tag, adapter in zip(tags, names):
            source = Path(resolve_source(known[tag.name], build_tiny=False))
            if source.suffix != ".safetensors":
                raise ModelUnavailable(f"the LoRA {tag.name!r} is not a .safetensors file")
            with warnings.catch_warnings():
                # A second adapter beside a character's is what this is for; peft warns about it all the same.
                warnings.filterwarnings("ignore", "Already found a `peft_config`", UserWarning)
                pipe.load_lora_weights(str(source.parent), weight_name=source.name, adapter_name=adapter)
            if tag.name not in hashes:
                hashes[tag.name] = weights_hash(str(source), length=12)
        weights = [{"text_encoder": tag.text_encoder, "unet": tag.unet} for tag in tags]
        pipe.set_adapters(before + names, adapter_weights=[1.0] * len(before) + weights)
    except Exception as exc:
        _remove(pipe, names, before)
        if isinstance(exc, (OSError, ValueError, KeyError, RuntimeError)):
            logger.warning("loading LoRAs %s failed", names, exc_info=True)
            raise ModelUnavailable(
                f"a LoRA of this prompt cannot be loaded into this image model ({type(exc).__name__}); "
                "it may be damaged or made for another base model"
            ) from None
        raise
    named = ", ".join(f"{tag.name}: {hashes[tag.name] or 'unknown'}" for tag in tags)
    try:
        yield {"Lora hashes": named}
    finally:
        _remove(pipe, names, before)


def _remove(pipe: Any, names: list[str], before: list[str]) -> None:
    if not before:
        _unload(pipe)
        return
    loaded = set(getattr(pipe.unet, "peft_config", {}))
    pipe.delete_adapters([name for name in names if name in loaded])
    pipe.set_adapters(before)


def _unload(pipe: Any) -> None:
    """Remove every LoRA layer: the modules go back to the very objects (and weights) they were before."""
    pipe.unload_lora_weights()


def with_character(prompt: str, *, identifier: str, class_name: str, name: str) -> str:
    """``prompt`` mentioning ``identifier class_name``: kept as it is when it already names the identifier;
    otherwise the character's name is replaced by those words, or they lead the prompt."""
    token = f"{identifier} {class_name}".strip()
    if _word(identifier or token).search(prompt):
        return prompt
    named = _word(name)
    if named.search(prompt):
        return named.sub(lambda _match: token, prompt)
    return f"{token}, {prompt}" if prompt.strip() else token


def _word(text: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(text)}(?!\w)", re.IGNORECASE)
