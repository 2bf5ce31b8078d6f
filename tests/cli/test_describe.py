"""``storyloom describe IMAGE`` in-process on the tiny BLIP and CLIP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from storyloom.cli.main import main
from tests.support.images import noisy_png

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def describe_env(tiny_env: Path, tiny_models, monkeypatch) -> Path:
    monkeypatch.setenv("STORYLOOM_MODELS__CAPTION", str(tiny_models.blip))
    monkeypatch.setenv("STORYLOOM_MODELS__DESCRIBE_CLIP", str(tiny_models.clip))
    picture = tiny_env / "photo.png"
    picture.write_bytes(noisy_png(64, 48, seed=2))
    return picture


def test_describe_prints_a_caption_and_numbered_suggestions(describe_env: Path, capsys) -> None:
    code = main(["describe", str(describe_env), "--profile", "tiny"])
    out = capsys.readouterr().out
    assert code == 0
    lines = out.strip().splitlines()
    caption = lines[0].removeprefix("caption: ")
    assert lines[0].startswith("caption: ") and len(lines) == 5
    assert [line.split(". ", 1)[0] for line in lines[1:]] == ["1", "2", "3", "4"]
    assert all(line.split(". ", 1)[1].startswith(caption + ", ") for line in lines[1:])

    assert main(["describe", str(describe_env), "--count", "2", "--json", "--profile", "tiny"]) == 0
    described = json.loads(capsys.readouterr().out)
    four = {line.split(". ", 1)[1] for line in lines[1:]}
    assert described["caption"] == caption and len(described["prompts"]) == 2
    assert set(described["prompts"]) <= four  # the two best-ranked words of each list, ordered by CLIP


def test_describe_refuses_what_is_not_a_picture_before_loading_models(tiny_env: Path, capsys) -> None:
    notes = tiny_env / "notes.txt"
    notes.write_text("not a picture")
    assert main(["describe", str(notes), "--profile", "tiny"]) != 0
    assert "not an image" in capsys.readouterr().err
    assert main(["describe", str(tiny_env / "missing.png"), "--profile", "tiny"]) != 0
    assert "no such file" in capsys.readouterr().err
