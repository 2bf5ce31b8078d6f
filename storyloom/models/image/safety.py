"""The Stable Diffusion safety checker, run by us rather than inside the diffusers pipeline.

diffusers replaces a flagged image with a black square and keeps going; we want a blurred placeholder
(the user sees that something was there) and a per-image flag the bot can mention, so the task pipelines
run without their built-in checker and this filter runs the same model afterwards.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from storyloom.models.image.imaging import blurred_placeholder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SafetyResult:
    """The images to show (flagged ones blurred) and which ones were flagged."""

    images: list[Image.Image]
    flagged: list[bool]


class SafetyFilter:
    """Wraps a loaded ``StableDiffusionSafetyChecker`` and its CLIP feature extractor."""

    def __init__(self, checker: Any, feature_extractor: Any) -> None:
        self.checker = checker
        self.feature_extractor = feature_extractor

    @classmethod
    def from_pipeline(cls, pipe: Any) -> SafetyFilter | None:
        """The filter for a loaded pipeline, or ``None`` when it was loaded without a checker."""
        checker = getattr(pipe, "safety_checker", None)
        extractor = getattr(pipe, "feature_extractor", None)
        if checker is None or extractor is None:
            return None
        return cls(checker, extractor)

    @torch.no_grad()
    def flags(self, images: Sequence[Image.Image]) -> list[bool]:
        """One flag per image: True when the checker found a concept above its threshold."""
        if not images:
            return []
        parameter = next(self.checker.parameters())
        clip_input = self.feature_extractor(list(images), return_tensors="pt").pixel_values
        clip_input = clip_input.to(device=parameter.device, dtype=parameter.dtype)
        # The checker blanks flagged entries of ``images`` in place; give it stand-ins, we only want the flags.
        stand_ins = [np.zeros((1, 1, 3), dtype=np.float32) for _ in images]
        _, flagged = self.checker(images=stand_ins, clip_input=clip_input)
        return [bool(flag) for flag in flagged]

    def __call__(self, images: Sequence[Image.Image]) -> SafetyResult:
        flagged = self.flags(images)
        shown = [blurred_placeholder(image) if flag else image for image, flag in zip(images, flagged)]
        if any(flagged):
            logger.info("safety checker flagged %d of %d images", sum(flagged), len(flagged))
        return SafetyResult(images=shown, flagged=flagged)
