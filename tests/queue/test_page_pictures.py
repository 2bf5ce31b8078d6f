"""A picture chosen by hand for a story page (✅ Use in the book under a fixed page), on both backends: the
story's versions show it until the page is drawn again or another picture is chosen."""

from __future__ import annotations

import pytest

from storyloom.config import QueueConfig
from storyloom.errors import InvalidInput
from storyloom.queue import JobKind, JobNotFound, JobStore, NewJob
from storyloom.queue.job import ArtifactKind, Job, NewArtifact
from tests.support.clock import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(database: str, clock: Clock) -> JobStore:
    with JobStore.open(database, QueueConfig(max_waiting_per_user=50, max_waiting_total=500), clock=clock) as store:
        yield store


PICTURE = NewArtifact(ArtifactKind.IMAGE, 0, "image_1.png", "image/png", b"png")


def finished(store: JobStore, kind: str, params: dict, parent_id: int | None = None, followups=()) -> Job:
    job = store.enqueue(kind, params, user_id=1, parent_id=parent_id)
    assert store.claim("w", [kind]).id == job.id
    store.complete(job.id, "w", [PICTURE], list(followups))
    return store.get(job.id)


def story_with_pages(store: JobStore, pages: int) -> tuple[int, list[int]]:
    followups = [
        NewJob(JobKind.STORY_PAGE, {"page": i, "text": f"page {i}", "prompt": "p"}, page_index=i) for i in range(pages)
    ]
    story = finished(store, "story", {"summary": "a cat at sea"}, followups=followups)
    children = store.children(story.id)
    for child in children:
        assert store.claim("w", ["story_page"]).id == child.id
        store.complete(child.id, "w", [PICTURE])
    return story.id, [child.id for child in children]


def fix(store: JobStore, page_job: int) -> int:
    """A region job on the page and the inpaint job that redrew it: the fixed page's job."""
    region = finished(store, "region", {"region": "the hat", "prompt": "a crown"}, parent_id=page_job)
    return finished(store, "inpaint", {"page": 0}, parent_id=region.id).id


def pages_of(store: JobStore, story_id: int) -> dict[int, int]:
    return {page: job.id for page, job in store.story_versions(story_id).pages.items()}


def test_a_chosen_picture_replaces_its_page_until_the_page_is_drawn_again(store: JobStore, clock: Clock) -> None:
    story, (first, second) = story_with_pages(store, 2)
    fixed = fix(store, first)
    assert pages_of(store, story) == {0: first, 1: second}  # a fix alone changes nothing

    clock.now += 1
    store.choose_page_picture(story, 0, fixed)
    assert pages_of(store, story) == {0: fixed, 1: second}

    clock.now += 1
    redraw = finished(store, "story_page", {"page": 0, "text": "page 0", "prompt": "p"}, parent_id=story).id
    assert pages_of(store, story) == {0: redraw, 1: second}  # drawn again after the choice: the new drawing

    clock.now += 1
    store.choose_page_picture(story, 0, fixed)  # chosen again: the fix is back
    assert pages_of(store, story) == {0: fixed, 1: second}


def test_a_chosen_picture_deleted_since_gives_the_page_back_its_drawing(store: JobStore, clock: Clock) -> None:
    story, (first,) = story_with_pages(store, 1)
    fixed = fix(store, first)
    store.choose_page_picture(story, 0, fixed)
    assert pages_of(store, story) == {0: fixed}
    store.delete_results(fixed)
    assert pages_of(store, story) == {0: first}


def test_a_later_chapter_keeps_its_own_page_over_an_earlier_chapters_choice(store: JobStore, clock: Clock) -> None:
    first_story, (page_zero,) = story_with_pages(store, 1)
    store.choose_page_picture(first_story, 0, fix(store, page_zero))
    followups = [NewJob(JobKind.STORY_PAGE, {"page": 0, "text": "again", "prompt": "p"}, page_index=0)]
    second = finished(store, "story", {"summary": "more", "continue_from": first_story}, followups=followups)
    [later_page] = store.children(second.id)
    assert store.claim("w", ["story_page"]).id == later_page.id
    store.complete(later_page.id, "w", [])
    assert pages_of(store, second.id) == {0: later_page.id}


def test_only_finished_pictures_of_existing_stories_can_be_chosen(store: JobStore) -> None:
    story, (first,) = story_with_pages(store, 1)
    waiting = store.enqueue("inpaint", {"page": 0}, user_id=1, parent_id=first)
    with pytest.raises(InvalidInput, match="no finished picture"):
        store.choose_page_picture(story, 0, waiting.id)
    with pytest.raises(InvalidInput, match="not a story"):
        store.choose_page_picture(first, 0, first)
    with pytest.raises(InvalidInput, match="numbered 0 to 999"):
        store.choose_page_picture(story, 1000, first)
    with pytest.raises(JobNotFound):
        store.choose_page_picture(999_999, 0, first)
    assert pages_of(store, story) == {0: first}
