"""Generation parameters, written into every PNG the way AUTOMATIC1111 does it.

The ``parameters`` tEXt chunk is what every SD tool (A1111, ComfyUI, Civitai, image viewers) reads, so any
storyloom image can be reproduced elsewhere, and a variation or upscale can recover its source's prompt.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

from PIL import Image
from PIL.PngImagePlugin import PngInfo

PNG_KEY = "parameters"
DEFAULT_SAMPLER = "DPM++ 2M Karras"

# "Key: value" pairs of A1111's last line; values containing , : or newlines are JSON-quoted.
_PARAM_RE = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_SIZE_RE = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
_NEGATIVE = "Negative prompt:"

PathOrBuffer = str | Path | IO[bytes]


@dataclass(frozen=True)
class GenerationParameters:
    """Everything needed to make the same image again."""

    prompt: str
    negative_prompt: str = ""
    steps: int = 30
    sampler: str = DEFAULT_SAMPLER
    cfg_scale: float = 7.0
    seed: int = 0
    width: int = 512
    height: int = 512
    model: str = ""
    denoising_strength: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def with_seed(self, seed: int) -> GenerationParameters:
        return replace(self, seed=seed)

    def to_infotext(self) -> str:
        """A1111 text: the prompt, ``Negative prompt: …`` (when there is one), then one line of settings:
        ``Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1, Size: 512x512, Model: …``."""
        values: dict[str, Any] = {
            "Steps": self.steps,
            "Sampler": self.sampler,
            "CFG scale": _number(self.cfg_scale),
            "Seed": self.seed,
            "Size": f"{self.width}x{self.height}",
        }
        if self.model:
            values["Model"] = self.model
        if self.denoising_strength is not None:
            values["Denoising strength"] = _number(self.denoising_strength)
        values.update(self.extra)
        lines = [self.prompt]
        if self.negative_prompt:
            lines.append(f"{_NEGATIVE} {self.negative_prompt}")
        lines.append(", ".join(f"{key}: {_quote(str(value))}" for key, value in values.items()))
        return "\n".join(lines)

    @classmethod
    def from_infotext(cls, text: str) -> GenerationParameters:
        """Parse A1111 infotext; unknown keys land in ``extra``, missing ones keep their defaults."""
        lines = text.strip("\n").split("\n")
        values: dict[str, str] = {}
        if lines and len(_PARAM_RE.findall(lines[-1])) >= 3:
            values = {key.strip(): _unquote(value) for key, value in _PARAM_RE.findall(lines.pop())}
        prompt_lines: list[str] = []
        negative_lines: list[str] = []
        for line in lines:
            if line.startswith(_NEGATIVE) and not negative_lines:
                negative_lines.append(line[len(_NEGATIVE) :].strip())
            elif negative_lines:
                negative_lines.append(line)
            else:
                prompt_lines.append(line)
        known: dict[str, Any] = {}
        if "Steps" in values:
            known["steps"] = int(values.pop("Steps"))
        if "Sampler" in values:
            known["sampler"] = values.pop("Sampler")
        if "CFG scale" in values:
            known["cfg_scale"] = float(values.pop("CFG scale"))
        if "Seed" in values:
            known["seed"] = int(values.pop("Seed"))
        if "Size" in values and (size := _SIZE_RE.match(values["Size"])):
            values.pop("Size")
            known["width"], known["height"] = int(size.group(1)), int(size.group(2))
        if "Model" in values:
            known["model"] = values.pop("Model")
        if "Denoising strength" in values:
            known["denoising_strength"] = float(values.pop("Denoising strength"))
        return cls(
            prompt="\n".join(prompt_lines),
            negative_prompt="\n".join(negative_lines),
            extra=values,
            **known,
        )


def _number(value: float) -> str:
    return f"{value:g}"


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if any(c in value for c in ',\n:"') else value


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def save_png(image: Image.Image, path_or_buffer: PathOrBuffer, params: GenerationParameters) -> None:
    """Write ``image`` as PNG with the A1111 ``parameters`` text chunk."""
    info = PngInfo()
    info.add_text(PNG_KEY, params.to_infotext())
    image.save(path_or_buffer, format="PNG", pnginfo=info)


def png_bytes(image: Image.Image, params: GenerationParameters) -> bytes:
    buffer = io.BytesIO()
    save_png(image, buffer, params)
    return buffer.getvalue()


def read_png_parameters(source: PathOrBuffer | Image.Image) -> GenerationParameters | None:
    """The parameters stored in a PNG (ours or A1111's), or ``None`` when it carries none."""
    if isinstance(source, Image.Image):
        text = source.info.get(PNG_KEY)
    else:
        with Image.open(source) as image:
            text = image.info.get(PNG_KEY)
    if not text or not isinstance(text, str):
        return None
    return GenerationParameters.from_infotext(text)
