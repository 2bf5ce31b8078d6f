"""``storyloom story`` end to end on the tiny profile: a 2-page book, then ``--continue``."""

from __future__ import annotations

import pytest

from storyloom.cli.main import main
from storyloom.domain.story.plan import StoryPlan
from tests.support.books import pdf_pages


@pytest.fixture
def tiny_env(tiny_env, monkeypatch):
    """The command-line environment (tests/cli/conftest.py) with short stories."""
    monkeypatch.setenv("STORYLOOM_STORY__MAX_NEW_TOKENS", "64")
    return tiny_env


def test_story_and_continue(tiny_env, capsys):
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        book = tiny_env / "book"
        summary = "A little cat named Bhna meets a kind dragon."
        options = ["--pages", "2", "--seed", "5", "--style", "papercut", "--out", str(book), "--profile", "tiny"]
        code = main(["story", summary, *options])
        assert code == 0
        out = capsys.readouterr()
        assert f"book:  {book / 'book.pdf'}" in out.out and "pages: 2 (seed 5, style papercut)" in out.out
        assert "%|" in out.err  # the progress bar
        assert sorted(path.name for path in book.glob("page-*.png")) == ["page-01.png", "page-02.png"]
        assert pdf_pages(book / "book.pdf") == 3

        code = main(["story", "--continue", str(book), "They fly to the moon", "--pages", "1", "--profile", "tiny"])
        assert code == 0
    finally:
        torch.set_num_threads(previous)
    plan = StoryPlan.load(book)
    assert len(plan.chapters) == 2 and len(plan.pages) == 3 and plan.chapters[1].summary == "They fly to the moon"
    assert (book / "page-03.png").is_file() and pdf_pages(book / "book.pdf") == 4
    html = (book / "book.html").read_text(encoding="utf-8")
    assert all(f'src="page-0{n}.png"' in html for n in (1, 2, 3))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["story", "The soldier kills everyone with a gun"], "violent content"),
        (["story", "A cat", "--pages", "0"], "pages must be between 1 and 20"),
        (["story", "A cat", "--style", "neon"], "style 'neon' is unknown"),
        (["story", "A cat", "--character", "Bob"], "character 'Bob' is unknown"),
        (
            ["story", "A cat", *[arg for name in "ABCD" for arg in ("--character", name)]],
            "a story can have at most 3 characters; you gave 4: A, B, C, D",
        ),
        (["story"], "give a summary"),
    ],
)
def test_bad_requests_exit_2_with_one_line(tiny_env, capsys, argv, message):
    assert main(argv + ["--profile", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("storyloom: ") and message in err and "Traceback" not in err
    assert not (tiny_env / "data" / "books").exists()


def test_a_story_with_two_characters_from_pictures(tiny_env, capsys):
    """Two characters registered from one picture each star in a story; pages with both place them apart."""
    import torch
    from PIL import Image

    from storyloom.domain.parameters import read_png_parameters

    for name, colour in (("Bhna", (220, 60, 40)), ("Pip", (40, 90, 220))):
        Image.new("RGB", (96, 96), colour).save(tiny_env / f"{name}.png")
        assert main(["character", "create", name, f"{name}.png", "--description", f"{name} the toy"]) == 0
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        book = tiny_env / "book"
        options = ["--pages", "2", "--seed", "3", "--out", str(book), "--profile", "tiny", "--no-consistent"]
        code = main(["story", "Bhna and Pip share a picnic.", "--character", "Bhna", "--character", "pip", *options])
    finally:
        torch.set_num_threads(previous)
    assert code == 0, capsys.readouterr().err
    plan = StoryPlan.load(book)
    assert plan.characters == ["Bhna", "Pip"] and [member.name for member in plan.cast[:2]] == ["Bhna", "Pip"]
    for number, page in enumerate(plan.pages, start=1):
        with Image.open(book / f"page-0{number}.png") as picture:
            drawn = read_png_parameters(picture)
        assert all(name in drawn.extra.get("Character", "") for name in page.characters if name in ("Bhna", "Pip"))
        if len(page.characters) > 1:
            assert sorted(page.positions.values()) in (["left", "right"], ["center", "left", "right"])
