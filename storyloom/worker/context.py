"""What a job handler receives and returns.

A handler is ``handler(context) -> HandlerResult``: it reads typed parameters, uses the warm models from
``context.resources``, reports progress and checks cancellation through the context, and returns its results
as artifacts (plus follow-up jobs, e.g. a story's pages). It never touches the store: the worker records
the results, so a handler cannot half-finish a job.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.progress import CancelCheck, ProgressCallback
from storyloom.queue.job import Artifact, ArtifactKind, Job, NewArtifact, NewJob
from storyloom.queue.params import JobParams

if TYPE_CHECKING:
    from PIL import Image

    from storyloom.config import Config
    from storyloom.worker.resources import ModelResources

ArtifactLookup = Callable[[int, int, ArtifactKind], Artifact | None]


@dataclass(frozen=True)
class HandlerResult:
    artifacts: tuple[NewArtifact, ...] = ()
    followups: tuple[NewJob, ...] = ()


@dataclass(frozen=True)
class JobContext:
    job: Job
    params: JobParams
    config: Config
    resources: ModelResources
    progress: ProgressCallback
    should_cancel: CancelCheck
    lookup_artifact: ArtifactLookup = field(repr=False)

    def check_canceled(self) -> None:
        """For handlers' own loops: raise ``JobCanceled`` if the job should stop."""
        if self.should_cancel():
            raise JobCanceled("canceled")

    def parent_artifact(self, index: int, kind: ArtifactKind = ArtifactKind.IMAGE) -> Artifact:
        parent = self.job.parent_id
        found = None if parent is None else self.lookup_artifact(parent, index, kind)
        if found is None:
            raise InvalidInput(f"the source of this job (job {parent}, {kind} {index + 1}) no longer exists")
        return found

    def source_image(self) -> Image.Image:
        """Image ``params.index`` of the parent job, with its PNG parameters (prompt, seed) intact."""
        from PIL import Image

        artifact = self.parent_artifact(getattr(self.params, "index", 0))
        image = Image.open(io.BytesIO(artifact.data))
        image.load()
        return image


Handler = Callable[[JobContext], HandlerResult]
HandlerMap = dict[Any, Handler]
