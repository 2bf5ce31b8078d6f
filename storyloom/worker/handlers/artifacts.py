"""Turning pipeline outputs into stored artifacts: PNGs that keep their generation parameters."""

from __future__ import annotations

from typing import Any

from storyloom.queue.job import ArtifactKind, NewArtifact

PNG = "image/png"
JSON = "application/json"


def png_artifact(
    kind: ArtifactKind, index: int, name: str, image: Any, parameters: Any, **metadata: Any
) -> NewArtifact:
    from storyloom.domain.parameters import png_bytes

    data = png_bytes(image, parameters)
    info = {"width": image.width, "height": image.height, **metadata}
    return NewArtifact(kind, index, name, PNG, data, info)


def batch_artifacts(batch: Any) -> tuple[NewArtifact, ...]:
    """The 2x2 grid (what the user sees first) and each image (what U1..U4 / V1..V4 refer to)."""
    grid = png_artifact(
        ArtifactKind.GRID,
        0,
        "grid.png",
        batch.grid(),
        batch.parameters[0],
        seeds=list(batch.seeds),
        nsfw=any(batch.nsfw),
    )
    images = tuple(
        png_artifact(ArtifactKind.IMAGE, index, f"image_{index + 1}.png", image, params, seed=seed, nsfw=bool(flag))
        for index, (image, params, seed, flag) in enumerate(
            zip(batch.images, batch.parameters, batch.seeds, batch.nsfw)
        )
    )
    return (grid, *images)


def text_artifact(
    index: int, name: str, text: str, mime: str = "text/plain; charset=utf-8", **metadata: Any
) -> NewArtifact:
    return NewArtifact(ArtifactKind.TEXT, index, name, mime, text.encode("utf-8"), metadata)
