"""Stories as edited, on both backends: the newest drawing of each page along the chapters, and title edits."""

from __future__ import annotations

import pytest

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput
from storyloom.queue import JobKind, JobNotFound, JobStore, NewJob
from tests.support.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: str, clock: Clock) -> JobStore:
    with JobStore.open(database, QueueConfig(max_waiting_per_user=50, max_waiting_total=500), clock=clock) as store:
        yield store


def page(index: int, text: str) -> NewJob:
    return NewJob(JobKind.STORY_PAGE, {"page": index, "text": text, "prompt": "a page"}, page_index=index)


def finished_story(store: JobStore, texts: list[str], first: int = 0, **params) -> int:
    story = store.enqueue("story", {"summary": "a cat at sea", **params}, user_id=1)
    assert store.claim("w", ["story"]).id == story.id
    store.complete(story.id, "w", [], [page(index, text) for index, text in enumerate(texts, start=first)])
    for child in store.children(story.id):
        assert store.claim("w", ["story_page"]).id == child.id
        store.complete(child.id, "w", [])
    return story.id


def edit(store: JobStore, story_id: int, index: int, text: str, *, succeed: bool = True) -> int:
    redraw = store.enqueue("story_page", {"page": index, "text": text, "prompt": "p"}, user_id=2, parent_id=story_id)
    if succeed:
        assert store.claim("w", ["story_page"]).id == redraw.id
        store.complete(redraw.id, "w", [])
    else:
        store.cancel(redraw.id)
    return redraw.id


def test_the_newest_successful_drawing_of_each_page_wins_across_chapters(store: JobStore, clock: Clock) -> None:
    first = finished_story(store, ["one", "two"])
    edited = edit(store, first, 1, "two, edited")
    edit(store, first, 0, "canceled", succeed=False)  # never drawn: not a version
    second = finished_story(store, ["three"], first=2, continue_from=first)
    versions = store.story_versions(second)
    texts = {index: job.params["text"] for index, job in versions.pages.items()}
    assert texts == {0: "one", 1: "two, edited", 2: "three"}
    assert versions.pages[1].id == edited and versions.title is None
    assert sorted(store.story_versions(first).pages) == [0, 1]  # an earlier chapter knows nothing of later ones


def test_the_newest_title_edit_along_the_chapters_is_the_title(store: JobStore, clock: Clock) -> None:
    first = finished_story(store, ["one"])
    second = finished_story(store, ["two"], continue_from=first)
    store.set_story_title(second, "  The   Sea  Cat ")
    assert store.story_versions(second).title == "The Sea Cat"
    assert store.story_versions(first).title is None  # a later chapter's edit is not the first chapter's
    clock.now += 5
    store.set_story_title(first, "The Brave Cat")
    assert store.story_versions(second).title == "The Brave Cat"  # edited last


def test_a_title_edit_is_refused_when_empty_too_long_or_not_a_story(store: JobStore) -> None:
    story = finished_story(store, ["one"])
    with pytest.raises(InvalidInput, match="1 to 100 characters"):
        store.set_story_title(story, "   ")
    with pytest.raises(InvalidInput, match="1 to 100 characters"):
        store.set_story_title(story, "x" * 101)
    picture = store.enqueue("imagine", {"prompt": "a cat"}, user_id=1)
    with pytest.raises(InvalidInput, match="not a story"):
        store.set_story_title(picture.id, "A title")
    with pytest.raises(JobNotFound):
        store.set_story_title(9999, "A title")
