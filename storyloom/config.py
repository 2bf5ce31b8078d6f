"""Typed configuration, read once at start-up and passed down.

Sources, later ones winning: built-in defaults, ``config.toml``, the profile overlay,
environment variables ``STORYLOOM_<SECTION>__<KEY>`` (and ``STORYLOOM_PROFILE``).
The Discord token is never part of the config: it is read from ``DISCORD_TOKEN`` only.
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storyloom.errors import ConfigError

ENV_PREFIX = "STORYLOOM_"
PROFILES = ("default", "tiny")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Section):
    data_dir: Path = Field(Path("data"), validate_default=True)

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Absolute once, at start-up: model paths derived from it must never look like hub repo ids.
        return value.expanduser().absolute()


class DeviceConfig(_Section):
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?|mps)$")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"
    compile: bool = False
    vae_tiling: Literal["auto", "on", "off"] = "auto"
    attention_slicing: bool = False


class ModelsConfig(_Section):
    image: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    controlnet_tile: str = "lllyasviel/control_v11f1e_sd15_tile"
    controlnet_hed: str = "lllyasviel/sd-controlnet-hed"
    # Makes the HED ControlNet's control images (soft edges); loaded only with upscale.controlnet = "hed".
    hed_annotator: str = "lllyasviel/Annotators/ControlNetHED.pth"
    esrgan: str = "lllyasviel/Annotators/RealESRGAN_x4plus.pth"
    story: str = "microsoft/Phi-4-mini-instruct"
    # Text to speech, one VITS model per language (transformers' VitsModel): VCTK English (MIT) and THCHS-30
    # Mandarin (Apache-2.0). English reads espeak-ng phonemes (the english-voices extra).
    narration: dict[str, str] = Field(
        default_factory=lambda: {"en": "kakao-enterprise/vits-vctk", "zh": "BricksDisplay/vits-cmn"}
    )
    # Image prompts and /blend: an IP-Adapter for SD 1.5 in the layout diffusers' load_ip_adapter reads (a hub
    # repository or a local folder holding ``ip_adapter_weights`` and an ``image_encoder`` folder beside it).
    ip_adapter: str = "h94/IP-Adapter"
    ip_adapter_weights: str = "models/ip-adapter_sd15.safetensors"
    # Characters from a reference picture: an IP-Adapter "plus" (its Resampler reads the image encoder's patch
    # features, which keeps a character's look better than the plain one); the face variant
    # "models/ip-adapter-plus-face_sd15.safetensors" suits faces of people. Same layout as ``ip_adapter``.
    character_adapter: str = "h94/IP-Adapter"
    character_adapter_weights: str = "models/ip-adapter-plus_sd15.safetensors"
    # /describe: a BLIP captioning model, then a CLIP model ranks words against the picture.
    caption: str = "Salesforce/blip-image-captioning-large"
    describe_clip: str = "openai/clip-vit-large-patch14"
    # Vary (Region), Zoom Out and Pan: SD 1.5 inpainting (9-channel UNet) redraws, CLIPSeg finds a region from words.
    inpainting: str = "stable-diffusion-v1-5/stable-diffusion-inpainting"
    segmentation: str = "CIDAS/clipseg-rd64-refined"
    # Extra SD 1.5 checkpoints (/imagine model:) and LoRAs (<lora:name:0.8> in a prompt) users pick by name:
    # name → a hub id (owner/repo, or owner/repo/file.safetensors) or a local folder or .safetensors file.
    checkpoints: dict[str, str] = Field(default_factory=dict)
    loras: dict[str, str] = Field(default_factory=dict)
    # The tiny profile builds missing local models on first use instead of downloading.
    build_tiny: bool = False

    @field_validator("checkpoints", "loras")
    @classmethod
    def _named_safetensors(cls, value: dict[str, str]) -> dict[str, str]:
        for name, source in value.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
                raise ValueError(f"{name!r} is not a usable name (letters, digits, '_', '.', '-'; at most 64)")
            if source.lower().endswith((".ckpt", ".pt", ".pth", ".bin", ".pkl")):
                raise ValueError(f"{name!r}: {source!r} is not a .safetensors file (only safetensors are loaded)")
        return value


class ImageConfig(_Section):
    steps: int = Field(30, ge=1, le=150)
    guidance_scale: float = Field(7.0, ge=0.0, le=30.0)
    width: int = Field(512, ge=64, le=2048, multiple_of=8)
    height: int = Field(512, ge=64, le=2048, multiple_of=8)
    batch_size: int = Field(4, ge=1, le=8)
    max_prompt_chars: int = Field(2000, ge=10, le=20000)
    safety_checker: bool = True
    variation_subtle: float = Field(0.35, gt=0.0, lt=1.0)
    variation_strong: float = Field(0.65, gt=0.0, lt=1.0)
    preview_every: int = Field(5, ge=1, le=100)
    image_weight: float = Field(0.5, ge=0.0, le=1.0)  # how strongly a picture given with a prompt counts
    caption_max_tokens: int = Field(30, ge=4, le=200)  # the longest /describe caption


class InpaintConfig(_Section):
    """Vary (Region), Zoom Out and Pan."""

    mask_threshold: float = Field(0.4, gt=0.0, lt=1.0)  # CLIPSeg's probability above which a pixel is in the region
    feather: int = Field(8, ge=0, le=256)  # pixels over which a redrawn region fades into the kept picture
    max_result_side: int = Field(2048, ge=64, le=8192)  # the longest side a grown picture may have
    max_result_pixels: int = Field(4_194_304, ge=4096, le=67_108_864)  # and the most pixels
    # The most pixels the model draws at; a larger picture is drawn scaled down and scaled back up (what is kept
    # stays exactly as it was either way).
    max_work_pixels: int = Field(1_048_576, ge=4096, le=16_777_216)


class UpscaleConfig(_Section):
    mode: Literal["chain", "esrgan"] = "chain"
    controlnet: Literal["tile", "hed"] = "tile"
    strength: float = Field(0.35, gt=0.0, le=1.0)
    steps: int = Field(20, ge=1, le=150)
    controlnet_scale: float = Field(1.0, ge=0.0, le=2.0)
    esrgan_tile: int = Field(256, ge=32, le=2048)
    esrgan_tile_overlap: int = Field(16, ge=0, le=256)


class StoryConfig(_Section):
    adapter: str = ""
    quantization: Literal["none", "8bit", "4bit"] = "none"
    prompt_format: Literal["chat", "storyteller"] = "chat"
    temperature: float = Field(0.8, gt=0.0, le=2.0)
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    repetition_penalty: float = Field(1.1, ge=1.0, le=2.0)
    max_new_tokens: int = Field(900, ge=16, le=8192)
    pages: int = Field(6, ge=1, le=20)
    style: str = "watercolor"
    memory: Literal["summary", "full"] = "summary"
    max_summary_chars: int = Field(4000, ge=20, le=20000)
    context_tokens: int = Field(4096, ge=256, le=131072)  # prompt + answer of one call; capped by the model's own limit
    recent_pages: int = Field(2, ge=0, le=20)  # last pages given word for word when continuing
    plan_temperature: float = Field(0.3, gt=0.0, le=2.0)  # sampling temperature of the JSON scene plan


class NarrationConfig(_Section):
    """Read-aloud books: named voices (a speaker of each language's model), speed, the audiobook and the video."""

    voices: dict[str, dict[str, int]] = Field(
        default_factory=lambda: {
            "willow": {"en": 0, "zh": 0},
            "river": {"en": 1, "zh": 5},
            "clover": {"en": 3, "zh": 12},
            "bramble": {"en": 6, "zh": 20},
        }
    )
    default_voice: str = "willow"
    speed: float = Field(0.9, ge=0.5, le=2.0)  # a little slower than the models' own pace suits young listeners
    sentence_pause: float = Field(0.3, ge=0.0, le=5.0)  # seconds of silence after each sentence
    page_pause: float = Field(0.8, ge=0.0, le=10.0)  # seconds of silence after each page of an audiobook or video
    video_side: int = Field(720, ge=64, le=2160, multiple_of=16)  # the longer side of the video, in pixels
    video_fps: int = Field(24, ge=4, le=60)
    cache_mb: int = Field(512, ge=0, le=1_000_000)  # page narrations kept by the worker for reuse (0: none)

    @field_validator("voices")
    @classmethod
    def _some_voices(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        if not value:
            raise ValueError("name at least one voice")
        for name, speakers in value.items():
            if not name.isidentifier() or any(speaker < 0 for speaker in speakers.values()):
                raise ValueError(f"voice {name!r} needs a simple name and speaker numbers from 0")
        return value


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(target: str | Path) -> bool:
    """Whether a ``queue.database`` value names a PostgreSQL server rather than a SQLite file."""
    return str(target).startswith(POSTGRES_SCHEMES)


class QueueConfig(_Section):
    # A SQLite file (default: <data_dir>/storyloom.db) or a postgresql://user@host:port/db URL shared by every host.
    # Put a password in PGPASSWORD (or ~/.pgpass) rather than in the URL; either way it is never logged.
    database: str | None = None
    reconnect_seconds: float = Field(300.0, ge=0.0, le=86400)  # how long a lost PostgreSQL connection is retried
    blob_cache_mb: int = Field(2048, ge=16, le=10_000_000)  # this host's cache of LoRAs, photos and other store files
    max_waiting_per_user: int = Field(5, ge=1, le=1000)
    max_waiting_total: int = Field(200, ge=1, le=100000)
    lease_seconds: float = Field(30.0, gt=0.5, le=3600)
    heartbeat_seconds: float = Field(5.0, gt=0.05, le=600)
    max_attempts: int = Field(3, ge=1, le=20)
    busy_timeout_ms: int = Field(5000, ge=0, le=600000)
    # Finished jobs and their results are removed this long after they finished, by the bot, every
    # ``maintenance_interval_seconds``, a few jobs per transaction.
    retention_days: int = Field(30, ge=1, le=3650)
    # Stored results one user may keep; beyond it their oldest delivered results go first (0: no bound).
    max_user_storage_mb: int = Field(1024, ge=0, le=10_000_000)
    maintenance_interval_seconds: float = Field(600.0, ge=0.01, le=86400)
    # Kept free beside a SQLite store for `storyloom queue purge` to delete with when the disk fills (0: none).
    disk_reserve_mb: int = Field(32, ge=0, le=4096)


class WorkerConfig(_Section):
    devices: list[str] = Field(default_factory=lambda: ["auto"])
    progress_interval: float = Field(0.5, ge=0.05, le=60)
    poll_interval: float = Field(0.005, ge=0.001, le=10)
    memory_budget_gb: float = Field(0.0, ge=0.0)  # 0 = use the device's total memory
    restart_backoff_seconds: float = Field(1.0, ge=0.0, le=600)
    restart_backoff_max_seconds: float = Field(60.0, ge=0.0, le=3600)


class TimeLimitsConfig(_Section):
    """The longest a job of each kind may run, in seconds; past it the supervisor kills the worker process and
    fails the job (a hung job cannot stop itself). ``other`` covers the kinds not named here."""

    imagine: float = Field(1200.0, gt=0)
    vary: float = Field(1200.0, gt=0)
    upscale: float = Field(1800.0, gt=0)
    story: float = Field(3600.0, gt=0)
    story_page: float = Field(1200.0, gt=0)
    train_story: float = Field(43200.0, gt=0)
    train_subject: float = Field(21600.0, gt=0)
    blend: float = Field(1200.0, gt=0)
    describe: float = Field(600.0, gt=0)
    region: float = Field(600.0, gt=0)
    inpaint: float = Field(1200.0, gt=0)
    outpaint: float = Field(1200.0, gt=0)
    other: float = Field(3600.0, gt=0)
    # How long a canceled job may take to stop at its next step before its worker is killed.
    cancel_grace: float = Field(30.0, gt=0)

    def for_kind(self, kind: str) -> float:
        """The limit of ``kind``: its own setting, else ``other``."""
        return float(getattr(self, kind)) if kind in KINDS_WITH_TIME_LIMITS else self.other


KINDS_WITH_TIME_LIMITS = (
    "imagine", "vary", "upscale", "story", "story_page", "train_story", "train_subject", "blend", "describe",
    "region", "inpaint", "outpaint",
)  # fmt: skip


class BotConfig(_Section):
    dev_guild: int = 0
    results_in_thread: bool = True
    progress_edit_interval: float = Field(2.0, ge=0.5, le=60)
    banned_words: list[str] = Field(default_factory=list)
    delivery_poll_interval: float = Field(0.5, ge=0.05, le=60)  # how often the store is checked for finished jobs
    # Several bot processes: Discord's shards (0 = one connection, no sharding). Each process connects the shards in
    # ``shard_ids`` (empty: all of them) and delivers only results of guilds on those shards (DMs: shard 0).
    shard_count: int = Field(0, ge=0, le=10000)
    shard_ids: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shards_exist(self) -> BotConfig:
        if self.shard_ids and not self.shard_count:
            raise ValueError("shard_ids needs shard_count (how many shards the bot has in all)")
        outside = [shard for shard in self.shard_ids if not 0 <= shard < self.shard_count]
        if outside:
            raise ValueError(
                f"shard_ids {outside} do not exist; with shard_count = {self.shard_count} they are 0–{self.shard_count - 1}"
            )
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ValueError("shard_ids lists a shard twice")
        return self

    @property
    def shards(self) -> tuple[int, ...]:
        """The shards this process serves (empty when the bot is not sharded)."""
        return tuple(self.shard_ids) or tuple(range(self.shard_count))


class TrainingConfig(_Section):
    """``storyloom train-story`` (a peft LoRA on the story LM) and ``train-subject`` (DreamBooth LoRA characters)."""

    story_split: float = Field(0.8, gt=0.0, le=1.0)
    story_epochs: int = Field(6, ge=1, le=100)
    story_learning_rate: float = Field(2e-4, gt=0.0, le=1.0)
    story_rank: int = Field(8, ge=1, le=256)
    story_lora_alpha: int = Field(16, ge=1, le=1024)
    story_lora_dropout: float = Field(0.05, ge=0.0, lt=1.0)
    story_target_modules: list[str] = Field(default_factory=list)
    story_batch_size: int = Field(4, ge=1, le=256)
    story_max_tokens: int = Field(1024, ge=32, le=131072)
    subject_epochs: int = Field(100, ge=1, le=1000)
    subject_learning_rate: float = Field(1e-4, gt=0.0, le=1.0)
    subject_rank: int = Field(4, ge=1, le=256)
    subject_batch_size: int = Field(4, ge=1, le=64)
    gradient_accumulation: int = Field(2, ge=1, le=64)
    prior_loss_weight: float = Field(0.75, ge=0.0, le=10.0)
    num_class_images: int = Field(100, ge=0, le=1000)
    resolution: int = Field(512, ge=32, le=2048, multiple_of=8)
    instance_prompt: str = Field("a photo of {identifier} {class_name}", min_length=1, max_length=500)
    class_prompt: str = Field("photograph of {class_name}", min_length=1, max_length=500)
    train_text_encoder: bool = False
    sample_images: int = Field(4, ge=0, le=16)
    min_images: int = Field(3, ge=1, le=1000)
    max_images: int = Field(100, ge=1, le=10000)
    checkpoint_every: int = Field(50, ge=1, le=1_000_000)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    mixed_precision: Literal["auto", "fp16", "bf16", "no"] = "auto"
    optimizer: Literal["auto", "adamw", "adamw8bit"] = "auto"

    @field_validator("instance_prompt", "class_prompt")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        try:
            value.format(identifier="x", class_name="y")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may only use {identifier} and {class_name}") from None
        return value


class CharactersConfig(_Section):
    """Characters registered from one reference picture (drawn through IP-Adapter, no training)."""

    reference_weight: float = Field(0.6, ge=0.0, le=1.0)  # how strongly a reference guides a picture, by default
    reference_min_side: int = Field(64, ge=16, le=1024)  # a smaller reference picture is refused (pixels per side)


class Config(_Section):
    profile: Literal["default", "tiny"] = "default"
    paths: PathsConfig = Field(default_factory=PathsConfig)
    device: DeviceConfig = Field(default_factory=DeviceConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    image: ImageConfig = Field(default_factory=ImageConfig)
    upscale: UpscaleConfig = Field(default_factory=UpscaleConfig)
    inpaint: InpaintConfig = Field(default_factory=InpaintConfig)
    story: StoryConfig = Field(default_factory=StoryConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    time_limits: TimeLimitsConfig = Field(default_factory=TimeLimitsConfig)
    bot: BotConfig = Field(default_factory=BotConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    characters: CharactersConfig = Field(default_factory=CharactersConfig)
    narration: NarrationConfig = Field(default_factory=NarrationConfig)

    @property
    def database(self) -> str:
        """Where the job store lives: a PostgreSQL URL as written, or the SQLite file's absolute path."""
        if self.queue.database and is_postgres_url(self.queue.database):
            return self.queue.database
        return str(self.database_path)

    @property
    def database_path(self) -> Path:
        """The SQLite file (meaningless when ``queue.database`` is a PostgreSQL URL)."""
        return Path(self.queue.database or self.paths.data_dir / "storyloom.db").expanduser().resolve()

    @property
    def blob_cache_dir(self) -> Path:
        return self.paths.data_dir / "cache" / "blobs"

    @property
    def tiny_models_dir(self) -> Path:
        return tiny_models_dir(self.paths.data_dir)


def tiny_model_settings(root: Path) -> dict[str, Any]:
    """The ``[models]`` entries of tiny models built under ``root`` (the layout of ``make_tiny_models``)."""
    return {
        "narration": {"en": str(root / "vits-en"), "zh": str(root / "vits-zh")},
        "image": str(root / "sd15"),
        "controlnet_tile": str(root / "controlnet"),
        "controlnet_hed": str(root / "controlnet"),
        "hed_annotator": str(root / "hed-annotator"),
        "esrgan": str(root / "esrgan" / "tiny_x4.safetensors"),
        "story": str(root / "llama"),
        "ip_adapter": str(root / "ip-adapter"),
        "character_adapter": str(root / "ip-adapter"),
        "caption": str(root / "blip"),
        "describe_clip": str(root / "clip"),
        "inpainting": str(root / "sd15-inpaint"),
        "segmentation": str(root / "clipseg"),
    }


# Bump when a builder changes, so caches of older tiny models are not reused.
TINY_FORMAT_VERSION = 7
# The libraries whose code decides the bytes the builders write; a cache built with other versions of any
# of them is a different cache.
TINY_WRITER_LIBRARIES = ("torch", "diffusers", "transformers", "tokenizers", "safetensors", "controlnet_aux")


def tiny_models_key() -> str:
    """The name of a tiny-model cache: the builder's format version and a digest of the versions of the
    libraries that write the files, so a cache made by another environment is never reused by mistake."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "absent"

    versions = ";".join(f"{name}=={installed(name)}" for name in TINY_WRITER_LIBRARIES)
    return f"v{TINY_FORMAT_VERSION}-{hashlib.sha256(versions.encode()).hexdigest()[:12]}"


def tiny_models_dir(data_dir: Path) -> Path:
    """Where the ``tiny`` profile builds its models: one folder per builder and library versions."""
    return data_dir.expanduser().absolute() / "tiny-models" / tiny_models_key()


def tiny_overlay(data_dir: Path) -> dict[str, Any]:
    """What the ``tiny`` profile changes: every model is a seeded tiny model built locally."""
    root = tiny_models_dir(data_dir)
    return {
        "device": {"device": "cpu", "dtype": "float32"},
        "models": {**tiny_model_settings(root), "build_tiny": True},
        "image": {"width": 64, "height": 64, "steps": 10, "caption_max_tokens": 12},
        "upscale": {"steps": 4, "esrgan_tile": 64, "esrgan_tile_overlap": 8},
        # The tiny VAE only halves a picture, so an upscale is redrawn and grown at the tiny pictures' own scale.
        "inpaint": {"max_work_pixels": 16_384},
        "story": {"max_new_tokens": 160},
        "narration": {"video_side": 96, "video_fps": 8},
        "training": {
            "resolution": 64,
            "num_class_images": 4,
            "subject_epochs": 4,
            "story_epochs": 2,
            "story_max_tokens": 256,
            "sample_images": 2,
            "checkpoint_every": 5,
        },
    }


def load_config(
    path: Path | str | None = None,
    *,
    profile: str | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read ``path`` (if it exists), apply the profile and environment, validate."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    _merge(data, _environment_values(environ))
    if overrides:
        _merge(data, dict(overrides))
    chosen = profile or data.get("profile") or "default"
    if chosen not in PROFILES:
        raise ConfigError(f"profile = {chosen!r} is not allowed; use one of: {', '.join(PROFILES)}")
    data["profile"] = chosen
    if chosen == "tiny":
        data_dir = Path(data.get("paths", {}).get("data_dir", "data"))
        merged = tiny_overlay(data_dir)
        # Explicit environment values and overrides still win over the profile.
        _merge(merged, _environment_values(environ))
        if overrides:
            _merge(merged, dict(overrides))
        _merge(data, merged)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, data)) from None


def _environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        if keys == ["profile"]:
            values["profile"] = raw
            continue
        if len(keys) != 2 or not all(keys):
            continue
        values.setdefault(keys[0], {})[keys[1]] = _parse_env_value(raw)
    return values


def _parse_env_value(raw: str) -> Any:
    """Environment values are TOML literals when they parse as one (``20``, ``true``, ``["a"]``)."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _merge(into: dict[str, Any], new: Mapping[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = dict(value) if isinstance(value, Mapping) else value


def _describe(exc: ValidationError, data: Mapping[str, Any]) -> str:
    lines = []
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"])
        value = error.get("input")
        if error["type"] == "extra_forbidden":
            lines.append(f"{key}: unknown setting")
        else:
            lines.append(f"{key} = {value!r} is not allowed: {error['msg']}")
    return "invalid configuration: " + "; ".join(lines)
