"""region, inpaint and outpaint: Vary (Region), Zoom Out and Pan.

A region job finds the part of a picture to redraw and stores what the inpaint job needs: the preview (IMAGE 0)
and the mask (FILE 0, ``mask.png``), whose metadata names the picture (job and image index) and the prompts, so
the inpaint job, whose parent is the region job, redraws exactly what the user saw in the preview.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from storyloom.domain.regions import EMPTY_REGION
from storyloom.errors import InvalidInput
from storyloom.queue.job import ArtifactKind, JobKind, NewArtifact
from storyloom.queue.params import InpaintParams, OutpaintParams, RegionParams
from storyloom.worker.context import Handler, HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import PNG, png_artifact

PREVIEW_NAME = "preview.png"
MASK_NAME = "mask.png"


def handlers() -> dict[JobKind, Handler]:
    return {JobKind.REGION: region, JobKind.INPAINT: inpaint, JobKind.OUTPAINT: outpaint}


def region(context: JobContext) -> HandlerResult:
    """The preview (the picture with the region tinted and outlined) and the unfeathered mask. A region that
    matches nothing is a result too (``empty``), so the user sees the preview with the reason."""
    params = context.params
    assert isinstance(params, RegionParams)
    source = context.source_image()
    context.check_canceled()
    found = context.resources.region_finder().find(source, words=params.region, cells=params.cells)
    about: dict[str, Any] = {
        "width": source.width,
        "height": source.height,
        "coverage": round(found.coverage, 6),
        "empty": found.empty,
    }
    mask_info = {
        **about,
        "source_job": context.job.parent_id,
        "source_index": params.index,
        "prompt": params.prompt,
        "negative_prompt": params.negative_prompt,
    }
    return HandlerResult(
        (
            NewArtifact(ArtifactKind.IMAGE, 0, PREVIEW_NAME, PNG, _png(found.preview), about),
            NewArtifact(ArtifactKind.FILE, 0, MASK_NAME, PNG, _png(found.mask), mask_info),
        )
    )


def inpaint(context: JobContext) -> HandlerResult:
    """The region job's picture with its mask redrawn; refused when the region is empty."""
    params = context.params
    assert isinstance(params, InpaintParams)
    mask_artifact = context.parent_artifact(0, ArtifactKind.FILE)
    found = mask_artifact.metadata
    if mask_artifact.name != MASK_NAME or not isinstance(found.get("source_job"), int):
        raise InvalidInput(f"job {context.job.parent_id} is not a region to redraw (inpaint works on a region job)")
    if found.get("empty"):
        raise InvalidInput(EMPTY_REGION)
    picture = _source_picture(context, found)
    mask = _open_png(mask_artifact.data).convert("L")
    prompt = params.prompt if params.prompt is not None else str(found.get("prompt", ""))
    negative = params.negative_prompt if params.negative_prompt is not None else str(found.get("negative_prompt", ""))
    batch = context.resources.inpaint()(
        picture,
        mask,
        prompt,
        negative,
        seed=params.seed,
        safety_checker=params.safety_checker,
        progress=context.progress,
        should_cancel=context.should_cancel,
    )
    extra = {} if params.page is None else {"page": params.page}
    artifact = png_artifact(
        ArtifactKind.IMAGE,
        0,
        "inpainted.png",
        batch.images[0],
        batch.parameters[0],
        seed=batch.seeds[0],
        nsfw=bool(batch.nsfw[0]),
        source_job=found["source_job"],
        source_index=found.get("source_index", 0),
        **extra,
    )
    return HandlerResult((artifact,))


def outpaint(context: JobContext) -> HandlerResult:
    """Image ``index`` of the parent job zoomed out or panned; too large a result is refused before any model
    loads."""
    from PIL import Image

    from storyloom.domain.regions import check_result_size, fitted_source, outpaint_canvas

    params = context.params
    assert isinstance(params, OutpaintParams)
    source = context.source_image()
    limits = context.config.inpaint
    scaled: dict[str, Any] = {}
    if params.fit:
        size = fitted_source(
            source.size, zoom=params.zoom, pan=params.pan,
            max_side=limits.max_result_side, max_pixels=limits.max_result_pixels,
        )  # fmt: skip
        if size != source.size:
            scaled = {"scaled_from": list(source.size)}
            source = source.resize(size, Image.Resampling.LANCZOS)
    canvas = outpaint_canvas(source.size, zoom=params.zoom, pan=params.pan)
    check_result_size(canvas, max_side=limits.max_result_side, max_pixels=limits.max_result_pixels)
    batch = context.resources.outpaint()(
        source,
        zoom=params.zoom,
        pan=params.pan,
        prompt=params.prompt,
        negative_prompt=params.negative_prompt,
        seed=params.seed,
        safety_checker=params.safety_checker,
        progress=context.progress,
        should_cancel=context.should_cancel,
    )
    artifact = png_artifact(
        ArtifactKind.IMAGE,
        0,
        "outpainted.png",
        batch.images[0],
        batch.parameters[0],
        seed=batch.seeds[0],
        nsfw=bool(batch.nsfw[0]),
        source_index=params.index,
        original_box=list(canvas.original_box),
        **scaled,
    )
    return HandlerResult((artifact,))


def _source_picture(context: JobContext, found: Mapping[str, Any]) -> Any:
    job, index = found["source_job"], int(found.get("source_index", 0))
    artifact = context.lookup_artifact(job, index, ArtifactKind.IMAGE)
    if artifact is None:
        raise InvalidInput(f"the picture of this region (job {job}, image {index + 1}) no longer exists")
    return _open_png(artifact.data)


def _open_png(data: bytes) -> Any:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
