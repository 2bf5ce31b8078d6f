"""Stories as edited: the newest drawing of every page along a story's chapters (or the picture chosen for it by
hand, when that is newer), and its edited title."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from storyloom.errors import InvalidInput
from storyloom.queue import sql
from storyloom.queue.job import ArtifactKind, Job, JobKind, JobStatus
from storyloom.queue.operation import Steps, one, query, reads, scalar, writes
from storyloom.queue.stories import MAX_STORY_CHAIN, StoryVersions, page_of
from storyloom.queue.transitions import load_job


@reads
def story_versions(story_id: int) -> Steps[StoryVersions]:
    """The newest successful drawing of each page and the newest title edit, following ``continue_from`` back
    through the earlier chapters (a chapter that was purged ends the walk)."""
    pages: dict[int, Job] = {}
    title: tuple[float, str] | None = None
    current: int | None = story_id
    for _ in range(MAX_STORY_CHAIN):
        if current is None:
            break
        story_row = yield from one(sql.SELECT_JOB, (current,))
        if story_row is None:
            break
        chapter: dict[int, Job] = {}
        children = [Job.from_row(row) for row in (yield from query(sql.SELECT_CHILDREN, (current,)))]
        for child in sorted(children, key=lambda job: job.id, reverse=True):
            page = page_of(child)
            if page is None or page in chapter or page in pages or child.status is not JobStatus.SUCCEEDED:
                continue
            chapter[page] = child
        yield from _chosen_pictures(current, chapter, later=pages)
        pages.update(chapter)
        edited = yield from one(sql.SELECT_STORY_TITLE, (current,))
        if edited is not None and (title is None or edited["edited_at"] > title[0]):
            title = (float(edited["edited_at"]), str(edited["title"]))
        following = Job.from_row(story_row).params.get("continue_from")
        current = following if isinstance(following, int) else None
    return StoryVersions(MappingProxyType(pages), title[1] if title else None)


def _chosen_pictures(story_id: int, chapter: dict[int, Job], *, later: Mapping[int, Job]) -> Steps[None]:
    """Put the pictures chosen by hand for a chapter's pages (✅ Use in the book) into ``chapter``, unless the
    page was drawn again since the choice or a ``later`` chapter has the page."""
    for row in (yield from query(sql.SELECT_PAGE_PICTURES, (story_id,))):
        page, drawn = int(row["page"]), chapter.get(int(row["page"]))
        if page in later:
            continue
        if drawn is not None and drawn.finished_at is not None and drawn.finished_at > float(row["chosen_at"]):
            continue
        found = yield from one(sql.SELECT_JOB, (row["job_id"],))
        if found is None or (picture := Job.from_row(found)).status is not JobStatus.SUCCEEDED:
            continue
        # A chosen picture deleted since (❌ under it) gives the page back its own drawing.
        if (yield from scalar(sql.HAS_ARTIFACT, (picture.id, ArtifactKind.IMAGE.value, 0))):
            chapter[page] = picture


@writes
def choose_page_picture(story_id: int, page: int, job_id: int, now: float) -> Steps[None]:
    story = yield from load_job(story_id)  # JobNotFound for a story that is gone
    if story.kind is not JobKind.STORY:
        raise InvalidInput(f"job {story_id} is not a story; only a story's pages can be given a picture")
    picture = yield from load_job(job_id)
    if picture.status is not JobStatus.SUCCEEDED:
        raise InvalidInput(f"job {job_id} has no finished picture to put in the book")
    yield from query(sql.UPSERT_PAGE_PICTURE, {"story_id": story_id, "page": page, "job_id": job_id, "now": now})


@writes
def set_story_title(story_id: int, title: str, now: float) -> Steps[None]:
    story = yield from load_job(story_id)  # JobNotFound for a story that is gone
    if story.kind is not JobKind.STORY:
        raise InvalidInput(f"job {story_id} is not a story; only a story's title can be edited")
    yield from query(sql.UPSERT_STORY_TITLE, {"story_id": story_id, "title": title, "now": now})
