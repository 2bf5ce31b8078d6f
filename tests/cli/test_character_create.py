"""``storyloom character create NAME PICTURE`` and ``character reference``, as a user runs them: a character from
one picture is registered at once in the local store, listed beside trained ones with its weight, shown, given a
new picture and deleted; a bad picture or request exits with one clear line and registers nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from storyloom.cli.main import main
from storyloom.queue import JobStore, NewCharacter
from tests.support.images import noisy_png


def picture(path: Path, size: tuple[int, int] = (96, 96), color=(200, 40, 40)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def opened_store(tiny_env: Path) -> JobStore:
    return JobStore.open(str(tiny_env / "data" / "storyloom.db"))


def test_create_list_show_give_a_picture_and_delete(tiny_env: Path, capsys) -> None:
    picture(tiny_env / "pip.png")
    argv = ["character", "create", "Pip", "pip.png", "--description", "a small red dragon", "--weight", "0.7"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "registered character 'Pip' from pip.png: picture (weight 0.7)" in out
    assert 'storyloom imagine "Pip in a garden" --character "Pip"' in out
    with opened_store(tiny_env) as store:
        record = store.character("pip")
        assert (record.has_reference, record.has_lora, record.reference_weight, record.guild_id) == (
            True,
            False,
            0.7,
            None,
        )
        stored = store.blob(record.reference_digest)
        assert stored is not None and stored[:8] == b"\x89PNG\r\n\x1a\n"
        store.add_character(
            NewCharacter(name="Mittens", identifier="bhna", class_name="cat", lora_path="x.safetensors")
        )

    assert main(["character", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].startswith("Mittens") and "trained bhna cat" in listing[0]
    assert listing[1].startswith("Pip") and "picture (weight 0.7)" in listing[1]

    preview = tiny_env / "preview.jpg"
    assert main(["character", "show", "Pip", "--preview", str(preview)]) == 0
    shown = capsys.readouterr().out
    assert "kind:        picture (weight 0.7)" in shown and "description: a small red dragon" in shown
    assert "LoRA:" not in shown and "token:" not in shown and preview.read_bytes()[:2] == b"\xff\xd8"

    picture(tiny_env / "cat.jpg", (120, 90), (10, 10, 10))
    assert main(["character", "reference", "mittens", "cat.jpg"]) == 0
    assert "'Mittens' has a new picture: trained bhna cat + picture (weight 0.6)" in capsys.readouterr().out

    assert main(["character", "delete", "Pip"]) == 0
    assert "deleted character 'Pip'" in capsys.readouterr().out
    with opened_store(tiny_env) as store:
        assert store.find_character("Pip") is None
        assert store.purge_blobs(older_than_days=0) == 1  # the picture went with it; Mittens' is kept
        assert store.character("Mittens").has_reference


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["character", "create", "Pip", "missing.png"], "no such file: missing.png"),
        (["character", "create", "Pip", "notes.txt"], "notes.txt is not an image storyloom can read"),
        (["character", "create", "Pip", "small.png"], "small.png is only 40×40 pixels; a character's picture must be"),
        (["character", "create", "Pip", "pip.png", "--weight", "1.5"], "use a number from 0 to 1"),
        (["character", "create", "Pip", "pip.png", "--description", "x" * 301], "longer than 300 characters"),
        (["character", "create", "Pip!", "pip.png"], "character name 'Pip!' is not allowed"),
        (["character", "create", "Taken", "pip.png"], "a character named 'Taken' already exists"),
        (["character", "reference", "Nobody", "pip.png"], "'Nobody' is unknown"),
    ],
)
def test_bad_requests_exit_with_one_line_and_register_nothing(tiny_env: Path, capsys, argv, message) -> None:
    picture(tiny_env / "pip.png")
    picture(tiny_env / "small.png", (40, 40))
    (tiny_env / "notes.txt").write_text("not a picture")
    assert main(["character", "create", "Taken", "pip.png"]) == 0
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    with opened_store(tiny_env) as store:
        assert [c.name for c in store.list_characters()] == ["Taken"]


@pytest.mark.usefixtures("one_torch_thread")
def test_imagine_draws_a_picture_character_guided_by_its_picture(tiny_env: Path, tiny_models, monkeypatch) -> None:
    from storyloom.domain.parameters import read_png_parameters

    monkeypatch.setenv("STORYLOOM_MODELS__CHARACTER_ADAPTER", str(tiny_models.ip_adapter))

    def imagine(out: str, *character: str) -> list[bytes]:
        argv = ["imagine", "Pip in a garden", "--seed", "4", "--steps", "2", "--out", out, "--profile", "tiny"]
        assert main([*argv, *character]) == 0
        return [Image.open(tiny_env / out / f"image_{n}.png").tobytes() for n in (1, 2)]

    (tiny_env / "pip.png").write_bytes(noisy_png(96, 96, seed=2))
    assert main(["character", "create", "Pip", "pip.png", "--weight", "1"]) == 0
    plain = imagine("plain")
    guided = imagine("guided", "--character", "pip")
    assert guided != plain  # the picture steered the drawing (the prompt is the same: Pip has no trained words)
    stored = read_png_parameters(tiny_env / "guided" / "image_1.png")
    assert stored.prompt == "Pip in a garden" and stored.extra["Character"] == "Pip"
