"""Prompt suggestions for a picture, the CLIP-interrogator way: a BLIP caption says what is in it, then CLIP ranks
mediums, artists, movements and flavours (small word lists shipped in ``describe_terms/``) against the picture,
and each suggestion joins the caption with the best-ranked words. The suggestions themselves are ranked by
CLIP against the picture, best first.

The words' CLIP text features are computed once per loaded model and kept, as the interrogator does.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import torch
from PIL import Image

from storyloom.config import Config
from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.runtime.devices import resolve_device, resolve_dtype
from storyloom.models.runtime.loading import ModelCache, model_errors, resolve_source
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback, StepProgress

logger = logging.getLogger(__name__)

CATEGORIES = ("mediums", "artists", "movements", "flavors")
MAX_SUGGESTIONS = 8
FLAVORS_PER_PROMPT = 2
FALLBACK_CAPTION = "a picture"


@dataclass(frozen=True)
class Description:
    caption: str
    prompts: list[str]  # best first
    scores: list[float]  # CLIP similarity of each prompt to the picture

    def as_dict(self) -> dict[str, Any]:
        return {"caption": self.caption, "prompts": self.prompts, "scores": [round(s, 4) for s in self.scores]}


def load_terms() -> dict[str, list[str]]:
    """The word lists shipped with the package, one term a line."""
    folder = resources.files(__package__).joinpath("describe_terms")
    terms = {}
    for category in CATEGORIES:
        text = folder.joinpath(f"{category}.txt").read_text(encoding="utf-8")
        terms[category] = [line.strip() for line in text.splitlines() if line.strip()]
    return terms


class Describer:
    """Picture → ``Description``; load once (``from_config``), call many times."""

    def __init__(
        self,
        captioner: Any,
        caption_processor: Any,
        clip: Any,
        clip_processor: Any,
        *,
        terms: dict[str, list[str]],
        max_caption_tokens: int,
    ) -> None:
        self.captioner = captioner
        self.caption_processor = caption_processor
        self.clip = clip
        self.clip_processor = clip_processor
        self.terms = terms
        self.max_caption_tokens = max_caption_tokens
        self._term_features: dict[str, torch.Tensor] = {}

    @classmethod
    def from_config(cls, config: Config, cache: ModelCache | None = None) -> Describer:
        device = resolve_device(config.device)
        dtype = resolve_dtype(config.device, device)
        key = ("describe", config.models.caption, config.models.describe_clip, str(device), str(dtype))
        if cache is None:
            return _load_describer(config, device, dtype)
        return cache.get(key, lambda: _load_describer(config, device, dtype))

    def __call__(
        self,
        image: Image.Image,
        count: int = 4,
        *,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> Description:
        """``count`` prompt suggestions for ``image``, best first."""
        if not 1 <= count <= MAX_SUGGESTIONS:
            raise InvalidInput(f"the number of suggestions must be between 1 and {MAX_SUGGESTIONS} (got {count})")
        picture = image.convert("RGB")
        stages = 3

        def step(done: int, stage: str) -> None:
            if should_cancel is not None and should_cancel():
                raise JobCanceled("canceled")
            if progress is not None:
                progress(StepProgress(step=done, total=stages, preview=None, stage=stage))

        step(0, "caption")
        caption = self.caption(picture)
        step(1, "ranking words")
        features = self.image_features(picture)
        ranked = {category: self.rank(features, category) for category in CATEGORIES}
        step(2, "ranking prompts")
        candidates = []
        for index in range(count):
            flavors = ranked["flavors"][index * FLAVORS_PER_PROMPT : (index + 1) * FLAVORS_PER_PROMPT]
            words = [ranked["mediums"][index], ranked["artists"][index], ranked["movements"][index], *flavors]
            candidates.append(", ".join([caption, *(word for word in words if word)]))
        scores = (features @ self.text_features(candidates).T)[0].tolist()
        order = sorted(range(len(candidates)), key=lambda i: -scores[i])
        step(3, "done")
        return Description(caption, [candidates[i] for i in order], [float(scores[i]) for i in order])

    @torch.no_grad()
    def caption(self, picture: Image.Image) -> str:
        parameter = next(self.captioner.parameters())
        inputs = self.caption_processor(images=picture, return_tensors="pt")
        pixels = inputs["pixel_values"].to(device=parameter.device, dtype=parameter.dtype)
        output = self.captioner.generate(pixel_values=pixels, max_new_tokens=self.max_caption_tokens, num_beams=1)
        text = self.caption_processor.decode(output[0], skip_special_tokens=True).strip()
        return " ".join(text.split()) or FALLBACK_CAPTION

    @torch.no_grad()
    def image_features(self, picture: Image.Image) -> torch.Tensor:
        """The picture's normalised CLIP embedding, ``(1, dim)``."""
        parameter = next(self.clip.parameters())
        pixels = self.clip_processor(images=picture, return_tensors="pt")["pixel_values"]
        output = self.clip.get_image_features(pixel_values=pixels.to(device=parameter.device, dtype=parameter.dtype))
        return _normalised(_pooled(output))

    @torch.no_grad()
    def text_features(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised CLIP embeddings of ``texts``, ``(len(texts), dim)``."""
        device = next(self.clip.parameters()).device
        tokens = self.clip_processor(text=list(texts), return_tensors="pt", padding=True, truncation=True)
        output = self.clip.get_text_features(
            input_ids=tokens["input_ids"].to(device), attention_mask=tokens["attention_mask"].to(device)
        )
        return _normalised(_pooled(output))

    def rank(self, features: torch.Tensor, category: str) -> list[str]:
        """The category's terms, most similar to the picture first."""
        if category not in self._term_features:
            self._term_features[category] = self.text_features(self.terms[category])
        scores = (features @ self._term_features[category].T)[0]
        return [self.terms[category][i] for i in torch.argsort(scores, descending=True).tolist()]


def _pooled(output: Any) -> torch.Tensor:
    """The projected features, whether a model returns them as a tensor or as its output's ``pooler_output``."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _normalised(features: torch.Tensor) -> torch.Tensor:
    features = features.float()
    return features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _load_describer(config: Config, device: torch.device, dtype: torch.dtype) -> Describer:
    from transformers import BlipForConditionalGeneration, BlipProcessor, CLIPModel, CLIPProcessor

    build_tiny = config.models.build_tiny
    caption_name, clip_name = config.models.caption, config.models.describe_clip
    caption_source = resolve_source(caption_name, build_tiny=build_tiny)
    clip_source = resolve_source(clip_name, build_tiny=build_tiny)
    with model_errors(caption_name):
        caption_processor = BlipProcessor.from_pretrained(caption_source)
        captioner = BlipForConditionalGeneration.from_pretrained(caption_source, dtype=dtype, use_safetensors=True)
    with model_errors(clip_name):
        clip_processor = CLIPProcessor.from_pretrained(clip_source)
        clip = CLIPModel.from_pretrained(clip_source, dtype=dtype, use_safetensors=True)
    captioner.to(device).eval()  # type: ignore[arg-type]  # transformers types ``to`` as taking a model
    clip.to(device).eval()  # type: ignore[arg-type]
    logger.info("loaded /describe models %s and %s on %s", caption_name, clip_name, device)
    return Describer(
        captioner,
        caption_processor,
        clip,
        clip_processor,
        terms=load_terms(),
        max_caption_tokens=config.image.caption_max_tokens,
    )
