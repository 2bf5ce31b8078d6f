"""Illustration style presets for stories.

A story uses one preset for every page so the book looks like one book: the same words around each
scene and the same negative prompt. Each negative prompt names what that style tends to go wrong
with (photographic looks in a painted style, text and watermarks, extra limbs) plus what a children's
book must never show.
"""

from __future__ import annotations

from dataclasses import dataclass

from storyloom.errors import InvalidInput

# What no page of a children's book should show, whatever the style.
_KID_SAFE_NEGATIVE = "nsfw, nudity, gore, blood, weapon, scary, horror"
# The usual Stable Diffusion 1.5 failure modes.
_COMMON_NEGATIVE = "text, letters, watermark, signature, lowres, blurry, deformed, extra limbs, bad anatomy"


@dataclass(frozen=True)
class StylePreset:
    """A named look: words before and after the scene, and the matching negative prompt."""

    name: str
    description: str
    prefix: str
    suffix: str
    negative: str

    @property
    def negative_prompt(self) -> str:
        return f"{self.negative}, {_COMMON_NEGATIVE}, {_KID_SAFE_NEGATIVE}"

    def apply(self, subject: str) -> str:
        """The full positive prompt for ``subject`` (scene plus cast) in this style."""
        return ", ".join(part for part in (self.prefix, subject.strip(" ,"), self.suffix) if part)


def style_presets() -> dict[str, StylePreset]:
    """Every preset by name (built on call: presets are data, not module state)."""
    presets = (
        StylePreset(
            "watercolor",
            "soft watercolor picture book",
            "watercolor children's picture book illustration",
            "soft pastel colors, gentle light, paper texture, whimsical, storybook art",
            "photo, photorealistic, 3d render, harsh shadows, dark, gritty",
        ),
        StylePreset(
            "crayon",
            "crayon and colored pencil drawing",
            "crayon and colored pencil drawing for a children's book",
            "bright colors, hand-drawn, playful lines, white paper background",
            "photo, photorealistic, 3d render, smooth gradients, dark",
        ),
        StylePreset(
            "storybook",
            "classic ink and wash storybook",
            "classic storybook illustration, ink and wash",
            "warm colors, detailed, cozy, golden age of illustration",
            "photo, photorealistic, 3d render, neon, modern",
        ),
        StylePreset(
            "papercut",
            "layered paper cut-out collage",
            "layered paper cut-out collage illustration for children",
            "bold shapes, bright flat colors, soft shadows between paper layers",
            "photo, photorealistic, painterly, sketch, dark",
        ),
        StylePreset(
            "clay",
            "cute claymation figures",
            "cute claymation diorama for a children's story",
            "soft clay figures, rounded shapes, bright studio light, miniature set",
            "photo of people, photorealistic skin, flat 2d, sketch, dark",
        ),
        StylePreset(
            "cartoon",
            "bright flat cartoon",
            "bright cartoon illustration for a children's book",
            "clean outlines, flat colors, friendly faces, simple background",
            "photo, photorealistic, 3d render, realistic texture, dark",
        ),
    )
    return {preset.name: preset for preset in presets}


def get_style(name: str) -> StylePreset:
    """The preset called ``name`` (case-insensitive); an unknown name lists the valid ones."""
    presets = style_presets()
    key = (name or "").strip().lower()
    if key not in presets:
        raise InvalidInput(f"style {name!r} is unknown; choose one of: {', '.join(presets)}")
    return presets[key]
