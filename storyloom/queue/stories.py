"""A story as its readers left it: which drawing of each page is the newest, and the title as edited.

Read by the bot (the book follows redrawn and edited pages) and by a continuation's worker (the next chapter is
written on from the edited pages), so both see the same story, from the store alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from storyloom.queue.job import Job, JobKind

MAX_STORY_CHAIN = 50  # chapters followed back through continue_from


@dataclass(frozen=True)
class StoryVersions:
    """``pages``: page index -> the job of its newest successful drawing, following earlier chapters (a later
    chapter's page wins); ``title``: the newest title edit along the chapters, or None."""

    pages: Mapping[int, Job] = field(default_factory=lambda: MappingProxyType({}))
    title: str | None = None

    @property
    def page_words(self) -> dict[int, Mapping[str, Any]]:
        """Page index -> the parameters (text, scene, prompt, seed) of the page's newest drawing, where that is
        a page job (a picture chosen by hand keeps the words the page had)."""
        return {page: job.params for page, job in self.pages.items() if job.kind is JobKind.STORY_PAGE}


def page_of(job: Job) -> int | None:
    """The page a story's child job draws: its place in the book, or for a redraw the page it redraws."""
    if job.kind is not JobKind.STORY_PAGE:
        return None
    if job.page_index is not None:
        return job.page_index
    page = job.params.get("page")
    return page if isinstance(page, int) else None
