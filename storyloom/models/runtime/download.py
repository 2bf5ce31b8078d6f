"""Fetch the configured real models into the Hugging Face hub cache (``storyloom models download``).

Only what storyloom loads is fetched: safetensors weights and their configs, never pickled
checkpoints, so a first download of SD 1.5 is about 4 GB rather than 40 GB."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from storyloom.config import Config
from storyloom.errors import ModelUnavailable

# Diffusers-layout repositories: per-component safetensors and configs; skip fp16/EMA duplicates.
DIFFUSERS_PATTERNS = [
    "model_index.json",
    "*/*.json",
    "*/*.txt",
    "*/diffusion_pytorch_model.safetensors",
    "*/model.safetensors",
]
SINGLE_MODEL_PATTERNS = ["*.json", "diffusion_pytorch_model.safetensors"]
LANGUAGE_MODEL_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.py"]
# Text-to-speech voices (VITS): config, tokenizer vocabulary and weights. A repository that offers no
# safetensors (some VITS voices publish only pytorch_model.bin) gets its pickled weights, read with weights_only.
NARRATION_PATTERNS = ["*.json", "*.safetensors"]
NARRATION_FALLBACK = ["pytorch_model.bin"]
# A transformers model (BLIP, CLIP, CLIPSeg): its configs, tokenizer files and one safetensors file.
TRANSFORMERS_PATTERNS = ["*.json", "*.txt", "model.safetensors"]


@dataclass(frozen=True)
class ModelSpec:
    role: str
    name: str
    patterns: tuple[str, ...] | None  # None: a single file "<owner>/<repo>/<file>"
    fallback: tuple[str, ...] = ()  # fetched instead when ``patterns`` brought no safetensors weights


def configured_models(config: Config) -> list[ModelSpec]:
    models = config.models
    hed = config.upscale.controlnet == "hed"
    controlnet = models.controlnet_hed if hed else models.controlnet_tile
    specs = [
        ModelSpec("image", models.image, tuple(DIFFUSERS_PATTERNS)),
        ModelSpec("controlnet", controlnet, tuple(SINGLE_MODEL_PATTERNS)),
        ModelSpec("esrgan", models.esrgan, None),
        ModelSpec("story", models.story, tuple(LANGUAGE_MODEL_PATTERNS)),
    ]
    specs += [
        ModelSpec("ip_adapter", models.ip_adapter, _ip_adapter_files(models.ip_adapter_weights)),
        ModelSpec("character_adapter", models.character_adapter, _ip_adapter_files(models.character_adapter_weights)),
        ModelSpec("caption", models.caption, tuple(TRANSFORMERS_PATTERNS)),
        ModelSpec("describe_clip", models.describe_clip, tuple(TRANSFORMERS_PATTERNS)),
        ModelSpec("inpainting", models.inpainting, tuple(DIFFUSERS_PATTERNS)),
        ModelSpec("segmentation", models.segmentation, tuple(TRANSFORMERS_PATTERNS)),
    ]
    if hed:  # the HED ControlNet's control images come from the HED annotator
        specs.insert(2, ModelSpec("hed_annotator", models.hed_annotator, None))
    for language, name in sorted(models.narration.items()):
        specs.append(ModelSpec(f"narration ({language})", name, tuple(NARRATION_PATTERNS), tuple(NARRATION_FALLBACK)))
    return specs


def _ip_adapter_files(weights: str) -> tuple[str, ...]:
    """An IP-Adapter's weights file and the image encoder in the ``image_encoder`` folder beside it."""
    folder = str(PurePosixPath(weights).parent / "image_encoder")
    return (weights, f"{folder}/*.json", f"{folder}/model.safetensors")


def split_hub_file(name: str) -> tuple[str, str]:
    """``owner/repo/path/to/file.pth`` → (``owner/repo``, ``path/to/file.pth``)."""
    parts = name.split("/")
    if len(parts) < 3 or not all(parts):
        raise ModelUnavailable(f"{name!r} is neither a local file nor '<owner>/<repo>/<file>' on the Hugging Face hub")
    return "/".join(parts[:2]), "/".join(parts[2:])


def download_model(spec: ModelSpec) -> Path:
    """Download one model (or return the local path when it is one); one clear error line on failure."""
    from huggingface_hub import hf_hub_download, snapshot_download

    if Path(spec.name).exists():
        return Path(spec.name)
    try:
        if spec.patterns is None:
            repo_id, filename = split_hub_file(spec.name)
            return Path(hf_hub_download(repo_id, filename))
        path = Path(snapshot_download(spec.name, allow_patterns=list(spec.patterns)))
        if spec.fallback and not any(path.glob("*.safetensors")):
            path = Path(snapshot_download(spec.name, allow_patterns=list(spec.fallback)))
        return path
    except ModelUnavailable:
        raise
    except Exception as exc:  # network, auth, offline mode, disk: all end as one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelUnavailable(
            f"could not download the {spec.role} model {spec.name!r}: {reason[:200]} "
            "(check the internet connection and that HF_HUB_OFFLINE is not set)"
        ) from None
