"""The training commands on the tiny profile, as a user runs them: ``train-story``, ``train-subject`` (which
registers the character), ``character list/show/delete`` and ``imagine --character``; bad input exits with one
clear line."""

from __future__ import annotations

import json

import pytest
from PIL import Image, ImageDraw

from storyloom.cli.main import main
from storyloom.domain.parameters import read_png_parameters


@pytest.fixture
def tiny_env(tiny_env, monkeypatch):
    """The command-line environment (tests/cli/conftest.py) with 3 image steps."""
    monkeypatch.setenv("STORYLOOM_IMAGE__STEPS", "3")
    return tiny_env


def test_train_story_writes_an_adapter_and_reports_the_losses(tiny_env, capsys) -> None:
    pairs = [
        {"summary": f"Bhna finds a {w}.", "story": f"Bhna the cat found a {w}. The end."}
        for w in ("hat", "boat", "moon")
    ]
    (tiny_env / "pairs.json").write_text(json.dumps(pairs))
    assert (
        main(
            [
                "train-story",
                "pairs.json",
                "--out",
                "adapters/tales",
                "--max-steps",
                "2",
                "--lr",
                "1e-3",
                "--profile",
                "tiny",
            ]
        )
        == 0
    )
    out = capsys.readouterr()
    adapter = tiny_env / "data" / "adapters" / "tales"
    assert "2 steps on 2 pairs (1 held out for evaluation)" in out.out and "eval loss" in out.out
    assert f'story.adapter = "{adapter}"' in out.out and "%|" in out.err
    assert (adapter / "adapter_config.json").is_file()


def test_train_subject_registers_a_character_that_imagine_and_the_character_commands_use(tiny_env, capsys) -> None:
    photos = tiny_env / "photos"
    photos.mkdir()
    for index in range(3):
        image = Image.new("RGB", (80, 80), (40, 90, 200))
        ImageDraw.Draw(image).ellipse((10 + 5 * index, 10, 60 + 5 * index, 60), fill=(235, 120, 30))
        image.save(photos / f"{index}.png")

    argv = ["train-subject", "photos", "--token", "cat", "--class", "kitten", "--out", "characters/Whiskers",
            "--max-steps", "2", "--num-class-images", "2", "--profile", "tiny"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "warning: the token 'cat' is a common English word" in out
    assert "registered character 'Whiskers' (cat kitten)" in out and "sample: " in out

    assert main(["character", "list", "--profile", "tiny"]) == 0
    assert "Whiskers" in capsys.readouterr().out
    preview = tiny_env / "preview.jpg"
    assert main(["character", "show", "whiskers", "--preview", str(preview), "--profile", "tiny"]) == 0
    assert "token:       cat kitten" in capsys.readouterr().out and preview.read_bytes()[:2] == b"\xff\xd8"

    assert (
        main(
            [
                "imagine",
                "Whiskers on a boat",
                "--character",
                "Whiskers",
                "--seed",
                "1",
                "--out",
                "img",
                "--profile",
                "tiny",
            ]
        )
        == 0
    )
    capsys.readouterr()
    stored = read_png_parameters(tiny_env / "img" / "image_1.png")
    assert stored.prompt == "cat kitten on a boat"

    assert main(argv) == 0  # the same command again finds the finished run: nothing is trained or registered twice
    assert "was already registered" in capsys.readouterr().out
    argv[argv.index("characters/Whiskers")] = "characters/Other"
    assert main([*argv[:-2], "--name", "whiskers", "--profile", "tiny"]) == 2  # before any training
    assert "a character named 'Whiskers' already exists" in capsys.readouterr().err
    assert main(["character", "delete", "Whiskers", "--profile", "tiny"]) == 0
    assert "deleted character 'Whiskers' and its files" in capsys.readouterr().out
    assert not (tiny_env / "data" / "characters" / "Whiskers").exists()
    assert main(["imagine", "a boat", "--character", "Whiskers", "--profile", "tiny"]) == 2
    assert "'Whiskers' is unknown" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train-story", "missing.json", "--out", "adapters/x"], "does not exist"),
        (["train-story", "bad.json", "--out", "adapters/x"], "bad.json is not valid JSON"),
        (
            ["train-subject", "photos", "--token", "Bad Token", "--class", "cat", "--out", "characters/x"],
            "token 'Bad Token' is not allowed",
        ),
        (
            ["train-subject", "photos", "--token", "bhna", "--class", "cat", "--out", "characters/x"],
            "photos has no photos",
        ),
        (
            ["train-story", "good.json", "--out", "adapters/x", "--eval-split", "1.5"],
            "eval split must be at least 0 and below 1",
        ),
    ],
)
def test_bad_input_exits_with_one_clear_line(tiny_env, capsys, argv, message: str) -> None:
    (tiny_env / "bad.json").write_text("[{")
    (tiny_env / "good.json").write_text('[{"summary": "a", "story": "b"}]')
    (tiny_env / "photos").mkdir()
    assert main([*argv, "--profile", "tiny"]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
