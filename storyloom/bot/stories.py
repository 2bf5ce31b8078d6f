"""What the bot needs to know about a story job: its title, its page count, its plan and its pictures.

All of it comes from the store (the story job's ``story.json`` artifact and its page jobs), so it survives
restarts; titles are cached because every progress edit of a story's status message shows one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from storyloom.domain.story.edits import edited_plan
from storyloom.domain.story.plan import PLAN_FILE, StoryPlan
from storyloom.queue import JobNotFound
from storyloom.queue.async_store import AsyncJobStore
from storyloom.queue.job import ArtifactKind, Job, JobKind
from storyloom.queue.stories import StoryVersions

CACHE_SIZE = 256
MAX_CHAIN = 50  # chapters followed back through continue_from (narration reads them too)
MAX_FIXES = 100  # region and inpaint jobs followed back to the page they fix


@dataclass(frozen=True)
class StorySummary:
    title: str
    pages: int


class Stories:
    def __init__(self, store: AsyncJobStore) -> None:
        self._store = store
        self._summaries: OrderedDict[int, StorySummary] = OrderedDict()
        self._status: OrderedDict[int, tuple[int, int]] = OrderedDict()

    async def status_message(self, story_id: int) -> tuple[int, int] | None:
        """(channel, message) of a story's status message, which its pages report on."""
        found = self._status.get(story_id)
        if found is None:
            story = await self._store.get(story_id)
            if story.message_id is None or story.channel_id is None:
                return None  # not placed yet
            found = self._status[story_id] = (story.channel_id, story.message_id)
            while len(self._status) > CACHE_SIZE:
                self._status.popitem(last=False)
        return found

    async def summary(self, story_id: int) -> StorySummary | None:
        """Title and page count of a finished story job (None while it is still being written)."""
        cached = self._summaries.get(story_id)
        if cached is not None:
            return cached
        artifact = await self._store.artifact(story_id, 0, ArtifactKind.TEXT)
        if artifact is None or artifact.name != PLAN_FILE:
            return None
        found = StorySummary(str(artifact.metadata.get("title") or "A story"), int(artifact.metadata.get("pages") or 0))
        self._summaries[story_id] = found
        while len(self._summaries) > CACHE_SIZE:
            self._summaries.popitem(last=False)
        return found

    async def plan(self, story_id: int, versions: StoryVersions | None = None) -> StoryPlan | None:
        """The story as it now reads: its plan with the edited title and every page's newest words (from
        ``versions`` when the caller has read them)."""
        artifact = await self._store.artifact(story_id, 0, ArtifactKind.TEXT)
        if artifact is None or artifact.name != PLAN_FILE:
            return None
        if versions is None:
            versions = await self.versions(story_id)
        return edited_plan(StoryPlan.model_validate_json(artifact.data), versions.title, versions.page_words)

    async def versions(self, story_id: int) -> StoryVersions:
        """The newest drawing of each page and the edited title, following earlier chapters."""
        return await self._store.story_versions(story_id)

    async def page_images(self, story_id: int, versions: StoryVersions | None = None) -> dict[int, bytes]:
        """Page index → PNG of every illustrated page, following earlier chapters through ``continue_from``
        (from ``versions`` when the caller has read them).

        A page that was redrawn shows its newest successful drawing (or the picture chosen for it by hand, when
        that is newer), so the book follows the thread."""
        if versions is None:
            versions = await self.versions(story_id)
        images: dict[int, bytes] = {}
        for page, job in versions.pages.items():
            picture = await self._store.artifact(job.id, 0, ArtifactKind.IMAGE)
            if picture is not None:
                images[page] = picture.data
        return images

    async def page_origin(self, job: Job) -> Job | None:
        """The story page a picture is: the page job itself, or for a fixed page (a region job and the inpaint
        job that redrew it, maybe several times over) the page job the fixes started from; None otherwise."""
        current: Job | None = job
        for _ in range(MAX_FIXES):
            if current is None or current.kind is JobKind.STORY_PAGE:
                return current
            if current.kind not in (JobKind.REGION, JobKind.INPAINT) or current.parent_id is None:
                return None
            try:
                current = await self._store.get(current.parent_id)
            except JobNotFound:
                return None
        return None
