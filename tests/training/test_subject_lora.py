"""train-subject (DreamBooth LoRA) on the tiny Stable Diffusion: the loss goes down, the LoRA file loads with
diffusers' ``load_lora_weights`` and changes the pictures, unloading leaves the base bit-identical, class images
are cached, an interrupted run resumes exactly, and bad photo folders are refused clearly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import load_file

from storyloom.domain.paths import inside_data_dir
from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.runtime.tiny import make_tiny_config
from storyloom.training import checkpoints
from storyloom.training.class_images import class_images_dir
from storyloom.training.subject_data import caption_with_token, load_instance_images
from storyloom.training.subject_lora import LORA_WEIGHT_NAME, SubjectTrainingArgs, train_subject_lora


def draw_photos(directory: Path, count: int = 4) -> Path:
    """Orange round "cats" on a blue sofa, each a little different; the first one has a caption."""
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = Image.new("RGB", (96, 80), (40, 90, 200))
        ImageDraw.Draw(image).ellipse((18 + 4 * index, 12, 70 + 4 * index, 68), fill=(235, 125 - 5 * index, 30))
        image.save(directory / f"photo_{index}.{'png' if index % 2 else 'jpg'}")
    (directory / "photo_0.txt").write_text("a cat asleep on a blue sofa", encoding="utf-8")
    return directory


def subject_config(tmp_path: Path, tiny_models, **training):
    return make_tiny_config(tmp_path / "data", tiny_models, image={"steps": 4}, training=training)


def train(config, photos: Path, out: str, **options):
    progress = options.pop("progress", None)
    should_cancel = options.pop("should_cancel", None)
    args = SubjectTrainingArgs.from_config(
        config, photos, config.paths.data_dir / out, identifier="bhna", class_name="cat", **options
    )
    return train_subject_lora(config, args, progress=progress, should_cancel=should_cancel)


def pixels(batch) -> np.ndarray:
    return np.stack([np.asarray(image) for image in batch.images])


def test_dreambooth_learns_the_photos_and_its_lora_changes_the_pictures_then_unloads_to_the_exact_base(
    tmp_path: Path, tiny_models
) -> None:
    from storyloom.models.image.txt2img import Txt2Img

    config = subject_config(tmp_path, tiny_models, subject_learning_rate=2e-3)
    photos = draw_photos(tmp_path / "data" / "photos")
    stages = set()
    result = train(config, photos, "characters/bhna", max_steps=8, progress=lambda p: stages.add(p.stage.split(",")[0]))

    assert result.steps == 8 and result.instance_images == 4 and result.class_images == 4
    assert result.probe_loss_after < result.probe_loss_before  # same photos, same noise: learned
    assert {"loading the image model", "class images", "training", "sample images"} <= stages
    assert [path.name for path in result.samples] == ["sample_1.png", "sample_2.png"]
    assert result.sample_prompt == "a photo of bhna cat" and result.preview_jpeg()[:2] == b"\xff\xd8"
    weights = load_file(str(result.lora_file))
    assert result.lora_file.name == LORA_WEIGHT_NAME and all(key.startswith("unet.") for key in weights)
    assert any("to_out.0" in key for key in weights) and any("to_q" in key for key in weights)
    cached = sorted(class_images_dir(config, "cat", "photograph of cat", 64).glob("class_*.png"))
    assert len(cached) == 4 and not checkpoints.has_checkpoint(result.output_dir)

    txt2img = Txt2Img.from_config(config)
    before = pixels(txt2img("a photo of bhna cat", seed=5, num_images=2))
    with txt2img.using_lora(result.lora_file, adapter_name="character_1"):
        assert txt2img.pipe.get_list_adapters() == {"unet": ["character_1"]}
        with_lora = pixels(txt2img("a photo of bhna cat", seed=5, num_images=2))
    after = pixels(txt2img("a photo of bhna cat", seed=5, num_images=2))
    assert np.abs(with_lora.astype(int) - before).mean() > 0.5
    assert np.array_equal(after, before)  # the base pipeline is bit-identical once the LoRA is unloaded
    assert txt2img.pipe.get_list_adapters() == {}

    # A second character of the same class reuses the cached class images instead of drawing them again.
    stamps = [path.stat().st_mtime_ns for path in cached]
    again = train(config, photos, "characters/other", max_steps=1, progress=lambda p: stages.discard(p.stage))
    assert again.class_images == 4 and [path.stat().st_mtime_ns for path in cached] == stamps


def test_an_interrupted_run_resumes_from_its_checkpoint_and_ends_with_the_same_lora(
    tmp_path: Path, tiny_models
) -> None:
    config = subject_config(tmp_path, tiny_models, sample_images=0, checkpoint_every=1, num_class_images=2)
    photos = draw_photos(tmp_path / "data" / "photos", count=3)
    straight = train(config, photos, "characters/straight", max_steps=4)

    calls = {"n": 0}

    def stop_after_two_steps() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    with pytest.raises(JobCanceled, match="step 2 of 4"):
        train(config, photos, "characters/resumed", max_steps=4, should_cancel=stop_after_two_steps)
    resumed = train(config, photos, "characters/resumed", max_steps=4)

    assert resumed.resumed_from == 2 and resumed.steps == straight.steps == 4
    assert resumed.losses == pytest.approx(straight.losses, rel=1e-5)
    a, b = load_file(str(straight.lora_file)), load_file(str(resumed.lora_file))
    assert a.keys() == b.keys() and all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    assert resumed.probe_loss_after == pytest.approx(straight.probe_loss_after, rel=1e-5)


def test_the_text_encoder_lora_is_saved_and_loads_with_the_unet_one(tmp_path: Path, tiny_models) -> None:
    from diffusers import StableDiffusionPipeline

    config = subject_config(tmp_path, tiny_models, sample_images=0, num_class_images=0)
    photos = draw_photos(tmp_path / "data" / "photos", count=3)
    result = train(config, photos, "characters/te", max_steps=2, train_text_encoder=True)
    keys = load_file(str(result.lora_file)).keys()
    assert any(key.startswith("text_encoder.") for key in keys) and any(key.startswith("unet.") for key in keys)
    pipe = StableDiffusionPipeline.from_pretrained(tiny_models.sd15, safety_checker=None, requires_safety_checker=False)
    pipe.load_lora_weights(str(result.output_dir), adapter_name="bhna")
    assert pipe.get_list_adapters() == {"unet": ["bhna"], "text_encoder": ["bhna"]}


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        ("a cat asleep on a sofa", "a bhna cat asleep on a sofa"),
        ("bhna cat in the snow", "bhna cat in the snow"),
        ("bhna in the snow", "bhna cat in the snow"),
        ("sitting in the sun", "bhna cat, sitting in the sun"),
        ("A Cat and a dog", "A bhna cat and a dog"),
    ],
)
def test_captions_get_the_identifier_and_class_when_they_lack_them(caption: str, expected: str) -> None:
    assert caption_with_token(caption, "bhna", "cat") == expected


def test_photos_without_a_caption_get_the_instance_prompt(tmp_path: Path) -> None:
    photos = draw_photos(tmp_path / "photos", count=3)
    found = load_instance_images(
        photos, identifier="bhna", class_name="cat", instance_prompt="a photo of {identifier} {class_name}",
        min_images=3, max_images=10,
    )  # fmt: skip
    assert [image.caption for image in found] == [
        "a bhna cat asleep on a blue sofa",
        "a photo of bhna cat",
        "a photo of bhna cat",
    ]


def _load(directory: Path, **limits):
    options = {"min_images": 3, "max_images": 10, **limits}
    return load_instance_images(
        directory,
        identifier="bhna",
        class_name="cat",
        instance_prompt="a photo of {identifier} {class_name}",
        **options,
    )


def test_bad_photo_folders_are_refused_with_a_clear_message(tmp_path: Path) -> None:
    few = draw_photos(tmp_path / "few", count=2)
    with pytest.raises(InvalidInput, match="has only 2 photos; training a character needs at least 3"):
        _load(few)
    with pytest.raises(InvalidInput, match="has no photos"):
        _load(_empty(tmp_path / "empty"))

    notes = draw_photos(tmp_path / "notes", count=3)
    (notes / "notes.md").write_text("# my cat")
    with pytest.raises(InvalidInput, match="notes.md is not an image"):
        _load(notes)

    broken = draw_photos(tmp_path / "broken", count=3)
    data = (broken / "photo_1.png").read_bytes()
    (broken / "photo_1.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInput, match="photo_1.png is a damaged image"):
        _load(broken)

    small = draw_photos(tmp_path / "small", count=3)
    Image.new("RGB", (20, 20)).save(small / "tiny.png")
    with pytest.raises(InvalidInput, match="tiny.png is only 20×20 pixels"):
        _load(small)

    with pytest.raises(InvalidInput, match="more than 3 photos"):
        _load(draw_photos(tmp_path / "many", count=4), max_images=3)
    with pytest.raises(InvalidInput, match="does not exist"):
        _load(tmp_path / "nowhere")


def _empty(directory: Path) -> Path:
    directory.mkdir()
    return directory


def test_paths_from_requests_must_stay_inside_the_data_directory(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "uploads").mkdir(parents=True)
    assert inside_data_dir("uploads", data_dir, what="image folder") == (data_dir / "uploads").resolve()
    for path in ("../elsewhere", "/etc", "uploads/../../x"):
        with pytest.raises(InvalidInput, match="is outside the data directory"):
            inside_data_dir(path, data_dir, what="image folder")
    (data_dir / "link").symlink_to(tmp_path)
    with pytest.raises(InvalidInput, match="outside the data directory"):
        inside_data_dir("link/other", data_dir, what="image folder")


def test_an_output_directory_holding_another_lora_is_refused(tmp_path: Path, tiny_models) -> None:
    config = subject_config(tmp_path, tiny_models)
    photos = draw_photos(tmp_path / "data" / "photos", count=3)
    taken = config.paths.data_dir / "characters" / "taken"
    taken.mkdir(parents=True)
    (taken / LORA_WEIGHT_NAME).write_bytes(b"")
    with pytest.raises(InvalidInput, match="already holds a trained LoRA"):
        train(config, photos, "characters/taken", max_steps=1)
