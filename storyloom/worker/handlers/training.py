"""train_story and train_subject: training as ordinary queue jobs (fair, cancellable, crash-safe).

Each job writes into its own directory under the data directory, and checkpoints there as it goes: when a
worker dies, the job comes back to the queue and the next run resumes from the last checkpoint; when the
worker is stopped, the trainer checkpoints before letting go. A finished ``train_subject`` returns its character
as part of its result, so the character is registered in the same transaction that marks the job succeeded:
nothing is registered before the LoRA file exists, and nothing is half-registered.

Training loads its own copy of the models, so the worker's warm models are unloaded first to make room.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from storyloom.queue.character import CharacterExists, NewCharacter
from storyloom.queue.job import ArtifactKind, JobKind, NewArtifact
from storyloom.queue.params import TrainStoryParams, TrainSubjectParams
from storyloom.worker.context import Handler, HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import JSON, png_artifact, text_artifact

if TYPE_CHECKING:
    from storyloom.training.subject_lora import SubjectTrainingResult

logger = logging.getLogger(__name__)

ADAPTERS_DIR = "adapters"


def handlers() -> dict[JobKind, Handler]:
    return {JobKind.TRAIN_STORY: train_story, JobKind.TRAIN_SUBJECT: train_subject}


def train_story(context: JobContext) -> HandlerResult:
    """A story LoRA at ``<data_dir>/adapters/<name>``; result: ``training.json`` (losses per epoch)."""
    from storyloom.domain.paths import inside_data_dir
    from storyloom.training.story_lora import StoryTrainingArgs, train_story_lora

    params = context.params
    assert isinstance(params, TrainStoryParams)
    data_dir = context.config.paths.data_dir
    dataset = inside_data_dir(params.dataset, data_dir, what="dataset")
    output_dir = inside_data_dir(f"{ADAPTERS_DIR}/{params.name}", data_dir, what="adapter directory")
    args = StoryTrainingArgs.from_config(
        context.config, dataset, output_dir, epochs=params.epochs, max_steps=params.max_steps,
        learning_rate=params.learning_rate, rank=params.rank, eval_split=params.eval_split, qlora=params.qlora,
    )  # fmt: skip
    context.resources.close()
    result = train_story_lora(context.config, args, progress=context.progress, should_cancel=context.should_cancel)
    summary = {**result.to_json(), "adapter_dir": f"{ADAPTERS_DIR}/{params.name}"}
    document = text_artifact(
        0, "training.json", json.dumps(summary, indent=2), JSON, adapter=summary["adapter_dir"], steps=result.steps
    )
    return HandlerResult((document,))


def train_subject(context: JobContext) -> HandlerResult:
    """DreamBooth-train a character; results: the sample grid and images, ``training.json``; and the character,
    registered with the job's user and guild when the job's success is recorded."""
    from storyloom.characters.registry import check_character_request, job_output_dir
    from storyloom.domain.paths import inside_data_dir, relative_to_data_dir
    from storyloom.training.subject_lora import SubjectTrainingArgs, train_subject_lora

    params = context.params
    assert isinstance(params, TrainSubjectParams)
    config = context.config
    data_dir = config.paths.data_dir
    request = check_character_request(params.name, params.identifier, params.class_name, params.description)
    if params.photos:
        images_dir = context.lookup_folder(params.photos, "training photos")
    else:
        images_dir = inside_data_dir(params.images_dir, data_dir, what="image folder")
    _check_name_free(context, request.name)
    output_dir = job_output_dir(data_dir, request.name, context.job.id)
    args = SubjectTrainingArgs.from_config(
        config, images_dir, output_dir, identifier=request.identifier, class_name=request.class_name,
        epochs=params.epochs, max_steps=params.max_steps, num_class_images=params.num_class_images,
        train_text_encoder=params.train_text_encoder,
    )  # fmt: skip
    context.resources.close()
    result = train_subject_lora(config, args, progress=context.progress, should_cancel=context.should_cancel)
    _check_name_free(context, request.name)  # someone may have taken it while this trained

    summary = {
        "character": request.name, "token": f"{request.identifier} {request.class_name}",
        "warnings": list(request.warnings), **result.to_json(),
    }  # fmt: skip
    for key in ("output_dir", "lora_file"):
        summary[key] = relative_to_data_dir(getattr(result, key), data_dir)
    summary["samples"] = [relative_to_data_dir(path, data_dir) for path in result.samples]
    artifacts = [text_artifact(0, "training.json", json.dumps(summary, indent=2), JSON, character=request.name)]
    artifacts += _sample_artifacts(result, request.name)
    character = NewCharacter(
        name=request.name,
        identifier=request.identifier,
        class_name=request.class_name,
        description=request.description,
        lora_path=relative_to_data_dir(result.lora_file, data_dir),
        preview=result.preview_jpeg(),
        trained_by=context.job.user_id,
        guild_id=context.job.guild_id,
        metadata={
            "steps": result.steps, "probe_loss_before": result.probe_loss_before,
            "probe_loss_after": result.probe_loss_after, "instance_images": result.instance_images,
            "class_images": result.class_images, "warnings": list(request.warnings),
        },
    )  # fmt: skip
    return HandlerResult(tuple(artifacts), characters=(character,))


def _check_name_free(context: JobContext, name: str) -> None:
    taken = context.find_character(name)
    if taken is not None:
        raise CharacterExists(f"a character named {taken.name!r} already exists; choose another name")


def _sample_artifacts(result: SubjectTrainingResult, name: str) -> list[NewArtifact]:
    """The sample grid (what the user sees) and each sample, their parameters naming the character so that a
    variation of a sample draws with its LoRA too."""
    from PIL import Image

    from storyloom.domain.parameters import read_png_parameters
    from storyloom.models.image.lora import named_character

    def artifact(kind: ArtifactKind, index: int, filename: str, path: Path, **metadata: object) -> NewArtifact:
        with Image.open(path) as image:
            image.load()
            stored = read_png_parameters(image)
            parameters = stored and named_character(stored, name)
            return png_artifact(kind, index, filename, image, parameters, character=name, **metadata)

    artifacts = [] if result.grid is None else [artifact(ArtifactKind.GRID, 0, "samples.png", result.grid)]
    for index, (path, seed) in enumerate(zip(result.samples, result.sample_seeds)):
        artifacts.append(artifact(ArtifactKind.IMAGE, index, f"sample_{index + 1}.png", path, seed=seed))
    return artifacts
