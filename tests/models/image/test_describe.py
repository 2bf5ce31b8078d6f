"""/describe's pipeline on the tiny BLIP and CLIP: a caption, then ranked words, four distinct suggestions."""

from __future__ import annotations

import pytest
from PIL import Image

from storyloom.errors import InvalidInput, JobCanceled
from storyloom.models.image.describe import CATEGORIES, Describer, load_terms
from storyloom.models.runtime.loading import ModelCache
from storyloom.models.runtime.step_progress import StepProgress
from storyloom.models.runtime.tiny import make_tiny_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RED = Image.new("RGB", (64, 48), (230, 20, 20))
GRADIENT = Image.linear_gradient("L").convert("RGB")


@pytest.fixture(scope="module")
def describer(tiny_models, tmp_path_factory, cache: ModelCache) -> Describer:
    return Describer.from_config(make_tiny_config(tmp_path_factory.mktemp("data"), tiny_models), cache)


def test_the_word_lists_ship_with_the_package() -> None:
    terms = load_terms()
    assert set(terms) == set(CATEGORIES) and all(len(words) >= 20 for words in terms.values())
    assert "a watercolor painting" in terms["mediums"]


def test_four_suggestions_start_with_the_caption_and_use_the_ranked_words(describer: Describer) -> None:
    progress: list[StepProgress] = []
    described = describer(RED, progress=progress.append)
    assert len(described.prompts) == 4 and len(set(described.prompts)) == 4
    assert described.caption and all(p.startswith(described.caption + ", ") for p in described.prompts)
    assert described.scores == sorted(described.scores, reverse=True)
    mediums = set(describer.terms["mediums"])
    for prompt in described.prompts:
        words = prompt[len(described.caption) + 2 :].split(", ")
        assert words[0] in mediums and words[1].startswith("by ")
    assert [p.step for p in progress] == [0, 1, 2, 3] and progress[-1].total == 3


def test_the_same_picture_gives_the_same_suggestions_and_another_picture_others(describer: Describer) -> None:
    first, again, other = describer(RED), describer(RED), describer(GRADIENT)
    assert first == again
    assert first.prompts != other.prompts


def test_bad_counts_and_cancellation(describer: Describer) -> None:
    with pytest.raises(InvalidInput, match="between 1 and 8"):
        describer(RED, 9)
    with pytest.raises(JobCanceled):
        describer(RED, should_cancel=lambda: True)
