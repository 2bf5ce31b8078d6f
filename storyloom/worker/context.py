"""What a job handler receives and returns.

A handler is ``handler(context) -> HandlerResult``: it reads typed parameters, uses the warm models from
``context.resources``, reports progress and checks cancellation through the context, and returns its results
as artifacts (plus follow-up jobs, e.g. a story's pages). It never touches the store: the worker records
the results, so a handler cannot half-finish a job.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.runtime.step_progress import CancelCheck, ProgressCallback
from storyloom.queue.character import CharacterNotFound, CharacterRecord, NewCharacter
from storyloom.queue.job import Artifact, ArtifactKind, Job, JobInput, NewArtifact, NewJob
from storyloom.queue.params import JobParams
from storyloom.queue.stories import StoryVersions

if TYPE_CHECKING:
    from pathlib import Path

    from PIL import Image

    from storyloom.config import Config
    from storyloom.worker.resources import ModelResources

ArtifactLookup = Callable[[int, int, ArtifactKind], Artifact | None]
InputLookup = Callable[[], list[JobInput]]  # the files given with the job's request
# A registered character by name as the job's guild sees it; raises ``CharacterNotFound`` (an ``InvalidInput``)
# listing known names.
CharacterFinder = Callable[[str], CharacterRecord]
# A folder of files stored with ``storyloom.queue.blobs.pack_files`` (e.g. a training's photos), by digest, as a
# local folder of this host; the second argument names the files in messages.
FolderLookup = Callable[[str, str], "Path"]
# A stored file (``storyloom.queue.blobs.BlobCache``), by digest, as a local file of this host with ``suffix``; the
# third argument names the file in messages.
FileLookup = Callable[[str, str, str], "Path"]


# A story as edited (its pages' newest drawings and its edited title) by the story job's ID.
StoryLookup = Callable[[int], StoryVersions]


def _no_story_edits(story_id: int) -> StoryVersions:
    return StoryVersions()


def _no_inputs() -> list[JobInput]:
    return []


def _no_folders(digest: str, what: str) -> Path:
    raise InvalidInput(f"the {what} are not available to this job")


def _no_files(digest: str, suffix: str, what: str) -> Path:
    raise InvalidInput(f"the {what} is not available to this job")


def _no_characters(name: str) -> CharacterRecord:
    raise CharacterNotFound(f"character {name!r} is unknown; no characters are registered yet")


@dataclass(frozen=True)
class HandlerResult:
    """What a job produced; ``characters`` are registered in the same transaction that records its success."""

    artifacts: tuple[NewArtifact, ...] = ()
    followups: tuple[NewJob, ...] = ()
    characters: tuple[NewCharacter, ...] = ()


@dataclass(frozen=True)
class JobContext:
    job: Job
    params: JobParams
    config: Config
    resources: ModelResources
    progress: ProgressCallback
    should_cancel: CancelCheck
    lookup_artifact: ArtifactLookup = field(repr=False)
    lookup_character: CharacterFinder = field(default=_no_characters, repr=False)
    lookup_inputs: InputLookup = field(default=_no_inputs, repr=False)
    lookup_folder: FolderLookup = field(default=_no_folders, repr=False)
    lookup_file: FileLookup = field(default=_no_files, repr=False)
    lookup_story: StoryLookup = field(default=_no_story_edits, repr=False)

    def find_character(self, name: str) -> CharacterRecord | None:
        try:
            return self.lookup_character(name)
        except CharacterNotFound:
            return None

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

    def input_pictures(self) -> list[Image.Image]:
        """The pictures given with the request, checked and decoded (RGB), in order."""
        from storyloom.domain.pictures import open_picture

        pictures = [open_picture(item.data, item.name) for item in self.lookup_inputs()]
        if not pictures:
            raise InvalidInput("this job needs a picture, and none was given with it (or it has been deleted)")
        return pictures

    def source_image(self) -> Image.Image:
        """Image ``params.index`` of the parent job, with its PNG parameters (prompt, seed) intact."""
        from PIL import Image

        artifact = self.parent_artifact(getattr(self.params, "index", 0))
        image = Image.open(io.BytesIO(artifact.data))
        image.load()
        return image


Handler = Callable[[JobContext], HandlerResult]
HandlerMap = dict[Any, Handler]
