"""What each job kind accepts, checked when a job is enqueued so a worker never meets malformed input.

These are structural checks (types, required fields, sane bounds). Limits that depend on the configured
model (steps, prompt length, sizes) are checked again by the pipelines, which know the config.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from storyloom.domain.regions import MAX_REGION_CHARS, ZOOM_MAX, ZOOM_MIN, PanDirection, check_cells
from storyloom.errors import InvalidInput
from storyloom.queue.job import JobKind

MAX_PARAMS_BYTES = 64 * 1024
_SEED = Field(None, ge=0, le=2**32 - 1)


class JobParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImagineParams(JobParams):
    prompt: str = Field(min_length=1, max_length=20_000)
    negative_prompt: str = Field("", max_length=20_000)
    seed: int | None = _SEED
    num_inference_steps: int | None = Field(None, ge=1, le=1000)
    guidance_scale: float | None = Field(None, ge=0.0, le=100.0)
    aspect_ratio: str | None = Field(None, max_length=16)
    width: int | None = Field(None, ge=8, le=8192)
    height: int | None = Field(None, ge=8, le=8192)
    num_images: int | None = Field(None, ge=1, le=16)
    safety_checker: bool | None = None  # None: the configured default; the bot forces it on where required
    character: str | None = Field(None, min_length=1, max_length=100)  # a registered character: its LoRA and token
    # With a picture (the job's first input): "guide" steers content and style through IP-Adapter, "start" is
    # the img2img starting point. ``image_weight``: the adapter's scale, or how much of the start picture stays.
    image_mode: Literal["guide", "start"] | None = None
    image_weight: float | None = Field(None, ge=0.0, le=1.0)
    chaos: int | None = Field(
        None, ge=0, le=100
    )  # --chaos: how much more the pictures differ than their seeds make them
    tile: bool = False  # --tile: pictures that tile seamlessly
    model: str | None = Field(None, min_length=1, max_length=64)  # one of models.checkpoints (None: the base model)


class VaryParams(JobParams):
    """Variations of image ``index`` of the parent job; a prompt given here (Remix) replaces the source's."""

    index: int = Field(ge=0, le=63)
    strength: Literal["subtle", "strong"] = "subtle"
    seed: int | None = _SEED
    safety_checker: bool | None = None
    prompt: str | None = Field(None, min_length=1, max_length=20_000)
    negative_prompt: str | None = Field(None, max_length=20_000)


class BlendParams(JobParams):
    """A grid mixing the job's 2–5 input pictures (their IP-Adapter image embeddings averaged)."""

    prompt: str = Field("", max_length=20_000)
    negative_prompt: str = Field("", max_length=20_000)
    seed: int | None = _SEED
    aspect_ratio: str | None = Field(None, max_length=16)
    image_weight: float | None = Field(None, ge=0.0, le=1.0)
    safety_checker: bool | None = None


class RegionParams(JobParams):
    """Find the part of image ``index`` of the parent job to redraw: from words (``region``, "the hat") or from
    cells of the 3×3 grid (1–9, row-major from the top-left); ``prompt`` is what to draw there."""

    index: int = Field(0, ge=0, le=63)
    region: str | None = Field(None, min_length=1, max_length=MAX_REGION_CHARS)
    cells: list[int] | None = Field(None, min_length=1, max_length=9)
    prompt: str = Field(min_length=1, max_length=20_000)
    negative_prompt: str = Field("", max_length=20_000)

    @model_validator(mode="after")
    def _one_way_to_choose(self) -> RegionParams:
        if (self.region is None) == (self.cells is None):
            raise ValueError("choose the part to redraw either by words (region) or by grid cells (cells), not both")
        if self.region is not None and not self.region.strip():
            raise ValueError("region: describe the part to redraw in a few words")
        if self.cells is not None:
            check_cells(self.cells)
        return self


class InpaintParams(JobParams):
    """Redraw the masked part of the parent region job's picture; None takes the region job's prompts.
    ``page``: the story page the picture belongs to (the book follows when the redraw is accepted)."""

    seed: int | None = _SEED
    safety_checker: bool | None = None
    prompt: str | None = Field(None, min_length=1, max_length=20_000)
    negative_prompt: str | None = Field(None, max_length=20_000)
    page: int | None = Field(None, ge=0, le=999)


class OutpaintParams(JobParams):
    """Grow image ``index`` of the parent job: Zoom Out by ``zoom`` (1.1–2.0) or Pan one way, exactly one.
    A prompt of None keeps the source picture's."""

    index: int = Field(0, ge=0, le=63)
    zoom: float | None = Field(None, ge=ZOOM_MIN, le=ZOOM_MAX)
    pan: PanDirection | None = None
    prompt: str | None = Field(None, min_length=1, max_length=20_000)
    negative_prompt: str | None = Field(None, max_length=20_000)
    seed: int | None = _SEED
    safety_checker: bool | None = None
    # A picture whose grown version would be larger than ``[inpaint]`` allows is grown from a scaled-down copy
    # (the buttons ask for this); without it such a picture is refused.
    fit: bool = False

    @model_validator(mode="after")
    def _zoom_or_pan(self) -> OutpaintParams:
        if (self.zoom is None) == (self.pan is None):
            raise ValueError("give either a zoom (1.1 to 2) or a pan direction (left, right, up or down), not both")
        return self


class DescribeParams(JobParams):
    """Prompt suggestions for the job's input picture."""

    count: int = Field(4, ge=1, le=8)


class UpscaleParams(JobParams):
    """Upscale image ``index`` of the parent job; ``mode`` None means the configured default."""

    index: int = Field(ge=0, le=63)
    mode: Literal["chain", "esrgan"] | None = None
    seed: int | None = _SEED
    safety_checker: bool | None = None  # checks the chain's re-drawing; the bot forces it on where required


class NarrationChoice(JobParams):
    """How a story is read aloud: a voice named in ``[narration]`` and a speed (None: the configured ones)."""

    voice: str | None = Field(None, min_length=1, max_length=40)
    speed: float | None = Field(None, ge=0.5, le=2.0)


class NarratedPage(JobParams):
    """One page to read: its number in the book, its text and the job whose picture the video shows."""

    number: int = Field(ge=1, le=999)
    text: str = Field(max_length=20_000)
    picture_job: int | None = Field(None, ge=1)


class NarrateParams(JobParams):
    """Read ``pages`` aloud in ``language``: each page as Ogg/Opus (``pages``), one M4A with a chapter per page
    (``audiobook``), or an MP4 of the pictures with narration and subtitles (``video``)."""

    output: Literal["pages", "audiobook", "video"] = "pages"
    title: str = Field("", max_length=300)
    language: str = Field("en", min_length=2, max_length=16)
    pages: list[NarratedPage] = Field(min_length=1, max_length=200)
    narration: NarrationChoice = Field(default_factory=NarrationChoice)
    seed: int | None = _SEED


MAX_STORY_CHARACTERS = 3  # characters one story (and one page) can have


class StoryParams(JobParams):
    summary: str = Field(min_length=1, max_length=20_000)
    pages: int | None = Field(None, ge=1, le=20)
    style: str | None = Field(None, max_length=100)
    # Registered characters (trained or from a reference picture) in the story, in the order given.
    characters: list[str] = Field(default_factory=list)
    character: str | None = Field(None, max_length=100)  # one character, as jobs queued before ``characters``
    # Pages share self-attention with the story's reference picture (None: on where the memory budget allows).
    consistent: bool | None = None
    seed: int | None = _SEED
    continue_from: int | None = Field(None, ge=1)  # the story job whose book gets a new chapter
    safety_checker: bool | None = None  # handed to every page; the bot forces it on where required
    narrate: NarrationChoice | None = None  # read each page aloud as it is drawn

    @model_validator(mode="after")
    def _at_most_three_characters(self) -> StoryParams:
        names = [name.strip() for name in self.characters]
        if any(not name or len(name) > 100 for name in names):
            raise ValueError("each character is a registered name of 1 to 100 characters")
        if len(self.cast_names) > MAX_STORY_CHARACTERS:
            raise ValueError(f"a story can have at most {MAX_STORY_CHARACTERS} characters")
        return self

    @property
    def cast_names(self) -> list[str]:
        """The story's registered characters: ``characters`` and the older single ``character``, each once."""
        names: list[str] = []
        for name in [*self.characters, *([self.character] if self.character else [])]:
            if name.strip() and name.strip().lower() not in {known.lower() for known in names}:
                names.append(name.strip())
        return names


class PageCharacterParams(JobParams):
    """A character on a page and where the plan puts it ("whole": the page's only character, no region)."""

    name: str = Field(min_length=1, max_length=100)
    position: Literal["left", "center", "right", "whole"] = "whole"


class PictureRef(JobParams):
    """An IMAGE artifact of another job: ``index`` of ``job``'s pictures."""

    job: int = Field(ge=1)
    index: int = Field(ge=0, le=63)


class StoryPageParams(JobParams):
    """One illustrated page of a story; the parent job is the story. ``page`` is the 0-based index into the
    story's pages; ``plan`` carries whatever else the story engine records about the page (number,
    chapter, scene), opaque to the queue."""

    page: int = Field(ge=0, le=999)
    text: str = Field(max_length=20_000)
    prompt: str = Field(min_length=1, max_length=20_000)
    negative_prompt: str = Field("", max_length=20_000)
    seed: int | None = _SEED
    safety_checker: bool | None = None
    character: str | None = Field(None, min_length=1, max_length=100)  # the story's registered character, if any
    # The registered characters on this page with their places in the picture (from the plan).
    characters: list[PageCharacterParams] = Field(default_factory=list, max_length=3)
    consistent: bool | None = None  # share self-attention with ``reference`` (None: where the budget allows)
    reference: PictureRef | None = None  # the story's picture the page shares attention with (its cast portrait)
    plan: dict[str, Any] = Field(default_factory=dict)
    narrate: NarrationChoice | None = None  # also read the page aloud (in the plan's language)


class TrainStoryParams(JobParams):
    """Train a story LoRA on the summary/story pairs in ``dataset`` (a JSON file inside the data directory);
    the adapter is written to ``<data_dir>/adapters/<name>``. Unset values come from ``[training]``."""

    dataset: str = Field(min_length=1, max_length=4096)
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    epochs: int | None = Field(None, ge=1, le=100)
    max_steps: int | None = Field(None, ge=1, le=1_000_000)
    learning_rate: float | None = Field(None, gt=0.0, le=1.0)
    rank: int | None = Field(None, ge=1, le=256)
    eval_split: float | None = Field(None, ge=0.0, lt=1.0)
    qlora: bool = False


class TrainSubjectParams(JobParams):
    """DreamBooth-train character ``name`` (``identifier`` + ``class_name``) on its photos: ``photos``, the digest
    of the packed photos in the store (readable from every host), or ``images_dir``, a directory inside the data
    directory (one machine). Success registers the character. Unset values come from ``[training]``."""

    identifier: str = Field(min_length=2, max_length=16, pattern=r"^[a-z][a-z0-9]+$")
    class_name: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=32)
    images_dir: str = Field("", max_length=4096)
    photos: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _one_source_of_photos(self) -> TrainSubjectParams:
        if bool(self.photos) == bool(self.images_dir.strip()):
            raise ValueError("give the photos either as stored photos (photos) or as a folder (images_dir), not both")
        return self

    description: str = Field("", max_length=300)
    epochs: int | None = Field(None, ge=1, le=1000)
    max_steps: int | None = Field(None, ge=1, le=100_000)
    num_class_images: int | None = Field(None, ge=0, le=1000)
    train_text_encoder: bool | None = None


PARAMS_BY_KIND: Mapping[JobKind, type[JobParams]] = {
    JobKind.IMAGINE: ImagineParams,
    JobKind.VARY: VaryParams,
    JobKind.UPSCALE: UpscaleParams,
    JobKind.STORY: StoryParams,
    JobKind.STORY_PAGE: StoryPageParams,
    JobKind.TRAIN_STORY: TrainStoryParams,
    JobKind.TRAIN_SUBJECT: TrainSubjectParams,
    JobKind.NARRATE: NarrateParams,
    JobKind.DESCRIBE: DescribeParams,
    JobKind.BLEND: BlendParams,
    JobKind.REGION: RegionParams,
    JobKind.INPAINT: InpaintParams,
    JobKind.OUTPAINT: OutpaintParams,
}

# Kinds whose input is the result of another job: they cannot exist without a parent.
NEEDS_PARENT = frozenset(
    {JobKind.VARY, JobKind.UPSCALE, JobKind.STORY_PAGE, JobKind.REGION, JobKind.INPAINT, JobKind.OUTPAINT}
)


def parse_kind(kind: str | JobKind) -> JobKind:
    try:
        return JobKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in JobKind)
        raise InvalidInput(f"unknown job kind {kind!r}; expected one of: {allowed}") from None


def validate_params(kind: JobKind, params: Mapping[str, Any] | JobParams) -> JobParams:
    """The typed parameters of ``kind``, or ``InvalidInput`` naming the first bad field."""
    model = PARAMS_BY_KIND[kind]
    if isinstance(params, model):
        return params
    if isinstance(params, JobParams):
        params = params.model_dump()
    if not isinstance(params, Mapping):
        raise InvalidInput(f"{kind} parameters must be a mapping, not {type(params).__name__}")
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        raise InvalidInput(f"invalid {kind} parameters: {_first_problem(exc)}") from None


def encode_params(kind: JobKind, params: Mapping[str, Any] | JobParams) -> str:
    """Validated parameters as the JSON stored in the job row (normalized: defaults filled in)."""
    values = validate_params(kind, params).model_dump(mode="json", exclude_none=True)
    text = json.dumps(values, ensure_ascii=False, sort_keys=True)
    if len(text.encode("utf-8")) > MAX_PARAMS_BYTES:
        raise InvalidInput(f"{kind} parameters are too large (more than {MAX_PARAMS_BYTES // 1024} KiB)")
    return text


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "parameters"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown field"
    if error["type"] == "missing":
        return f"{where}: required"
    if error["type"] == "value_error":
        return f"{where}: {error['msg'].removeprefix('Value error, ')}"
    return f"{where}: {error['msg']}"
