"""Result buttons that keep working after a restart.

Each button is a ``discord.ui.DynamicItem``: its custom ID carries the source job's ID and, for the picture
buttons, the image number (``sl:u:<job>:<n>``, ``n`` from 1 as on the label). discord.py matches the custom ID
against the templates registered at start-up, so no view has to be kept in memory, and an old message's
buttons work in a new process. Views sent with results are stopped before sending for the same reason:
otherwise discord.py would also keep them and dispatch every press twice.

| custom ID             | button            | makes                                   |
| --------------------- | ----------------- | --------------------------------------- |
| ``sl:u:<job>:<n>``    | U1–U4, ⬆️ Upscale | upscale of image n (the configured chain)|
| ``sl:v:<job>:<n>``    | V1–V4             | subtle variations of image n            |
| ``sl:r:<job>``        | 🔄                | the same grid with new seeds            |
| ``sl:vs:<job>:<n>``   | Vary (Subtle)     | subtle variations of an upscaled image  |
| ``sl:vx:<job>:<n>``   | Vary (Strong)     | strong variations of an upscaled image  |
| ``sl:x4:<job>:<n>``   | 4× Real-ESRGAN    | Real-ESRGAN 4× of an upscaled image     |
| ``sl:rd:<job>``       | 🔁 Redraw          | the story page again with a new seed    |
| ``sl:c:<job>``        | ➕ Continue        | the next chapter of the story           |
| ``sl:bk:<job>``       | 📕 Updated book    | the book PDF again, with redrawn pages  |
| ``sl:d:<job>:<n>``    | 1️⃣–4️⃣              | /imagine on /describe's suggestion n    |
| ``sl:del:<job>``      | ❌                 | deletes the result (requester, managers)|
| ``sl:dm:<job>``       | ✉️                 | a copy of the result by direct message  |

With Remix on (``/settings``), V1–V4, 🔄 and Vary open a form for the prompt first (``remix``).
| ``sl:n:<job>``        | 🔊                | the page read aloud (Ogg/Opus)          |
| ``sl:ab:<job>``       | 🎧 Audiobook       | the book as an M4A, a chapter per page  |
| ``sl:mv:<job>``       | 🎬 Video           | an MP4 of the pages, read aloud         |
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import discord
from discord.ui import Button, DynamicItem

from storyloom.bot import actions, own_results, texts
from storyloom.bot.errors import report
from storyloom.bot.remix import remixable

GREY = discord.ButtonStyle.secondary
BLUE = discord.ButtonStyle.primary


class _JobButton(DynamicItem[Button], template=r"sl:-:(?P<job>[0-9]+)"):
    """Common parts: the job ID from the custom ID, and errors reported through ``errors.report``."""

    def __init__(
        self, custom_id: str, job_id: int, *, label: str, style: discord.ButtonStyle = GREY, row: int | None = None
    ) -> None:
        super().__init__(Button(label=label, style=style, custom_id=custom_id, row=row))
        self.job_id = job_id

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self.pressed(interaction)
        except Exception as exc:
            await report(interaction, exc, job_id=self.job_id)

    async def pressed(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class UpscaleButton(_JobButton, template=r"sl:u:(?P<job>[0-9]+):(?P<n>[1-9])"):
    def __init__(self, job_id: int, n: int, *, label: str | None = None, row: int | None = None) -> None:
        super().__init__(f"sl:u:{job_id}:{n}", job_id, label=label or f"U{n}", row=row)
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> UpscaleButton:
        return cls(int(match["job"]), int(match["n"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        await actions.press(interaction, self.job_id, actions.upscale(self.n - 1))


class VaryButton(_JobButton, template=r"sl:v:(?P<job>[0-9]+):(?P<n>[1-9])"):
    def __init__(self, job_id: int, n: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:v:{job_id}:{n}", job_id, label=f"V{n}", row=row)
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VaryButton:
        return cls(int(match["job"]), int(match["n"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        await remixable(interaction, self.job_id, actions.vary(self.n - 1, "subtle"))


class RerollButton(_JobButton, template=r"sl:r:(?P<job>[0-9]+)"):
    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:r:{job_id}", job_id, label="🔄", style=BLUE, row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RerollButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        await remixable(interaction, self.job_id, actions.reroll)


class VaryStrengthButton(_JobButton, template=r"sl:v(?P<strength>[sx]):(?P<job>[0-9]+):(?P<n>[1-9])"):
    LABELS = {"s": ("Vary (Subtle)", "subtle"), "x": ("Vary (Strong)", "strong")}

    def __init__(self, job_id: int, n: int, strength: str, *, row: int | None = None) -> None:
        label, self.strength = self.LABELS[strength]
        super().__init__(f"sl:v{strength}:{job_id}:{n}", job_id, label=label, row=row)
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> VaryStrengthButton:
        return cls(int(match["job"]), int(match["n"]), match["strength"])

    async def pressed(self, interaction: discord.Interaction) -> None:
        await remixable(interaction, self.job_id, actions.vary(self.n - 1, self.strength))


class EsrganButton(_JobButton, template=r"sl:x4:(?P<job>[0-9]+):(?P<n>[1-9])"):
    def __init__(self, job_id: int, n: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:x4:{job_id}:{n}", job_id, label="4× Real-ESRGAN", row=row)
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> EsrganButton:
        return cls(int(match["job"]), int(match["n"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        await actions.press(interaction, self.job_id, actions.upscale(self.n - 1, "esrgan"))


class RedrawButton(_JobButton, template=r"sl:rd:(?P<job>[0-9]+)"):
    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:rd:{job_id}", job_id, label="🔁 Redraw", row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RedrawButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        await actions.press(interaction, self.job_id, actions.redraw)


class ContinueButton(_JobButton, template=r"sl:c:(?P<job>[0-9]+)"):
    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:c:{job_id}", job_id, label="➕ Continue", style=BLUE, row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ContinueButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot.continuation import ContinueModal

        await actions.load_source(interaction, self.job_id)
        await interaction.response.send_modal(ContinueModal(self.job_id))


class BookButton(_JobButton, template=r"sl:bk:(?P<job>[0-9]+)"):
    """Under a redrawn page: the whole book again, now with that page (no job; the bot lays it out)."""

    def __init__(self, story_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:bk:{story_id}", story_id, label="📕 Updated book", row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> BookButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot.book import send_book

        await send_book(interaction, self.job_id)


class ReadAloudButton(_JobButton, template=r"sl:(?P<what>n|ab|mv):(?P<job>[0-9]+)"):
    """🔊 under a page (its job), 🎧 Audiobook and 🎬 Video under a book (the story's job)."""

    KINDS = {"n": ("🔊", "pages"), "ab": ("🎧 Audiobook", "audiobook"), "mv": ("🎬 Video", "video")}

    def __init__(self, job_id: int, what: str, *, row: int | None = None) -> None:
        label, self.output = self.KINDS[what]
        super().__init__(f"sl:{what}:{job_id}", job_id, label=label, row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ReadAloudButton:
        return cls(int(match["job"]), match["what"])

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot.narration import press

        await press(interaction, self.job_id, self.output)  # type: ignore[arg-type]  # one of KINDS' outputs


class SuggestionButton(_JobButton, template=r"sl:d:(?P<job>[0-9]+):(?P<n>[1-9])"):
    """Under a /describe result: /imagine on suggestion n."""

    def __init__(self, job_id: int, n: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:d:{job_id}:{n}", job_id, label=texts.keycap(n), row=row)
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> SuggestionButton:
        return cls(int(match["job"]), int(match["n"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        await actions.imagine_suggestion(interaction, self.job_id, self.n - 1)


class DeleteButton(_JobButton, template=r"sl:del:(?P<job>[0-9]+)"):
    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:del:{job_id}", job_id, label="❌", row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> DeleteButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        await own_results.delete_result(interaction, self.job_id)


class DirectMessageButton(_JobButton, template=r"sl:dm:(?P<job>[0-9]+)"):
    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:dm:{job_id}", job_id, label="✉️", row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> DirectMessageButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        await own_results.send_copy(interaction, self.job_id)


ALL_BUTTONS: tuple[type[DynamicItem[Any]], ...] = (
    UpscaleButton,
    VaryButton,
    RerollButton,
    VaryStrengthButton,
    EsrganButton,
    RedrawButton,
    ContinueButton,
    BookButton,
    ReadAloudButton,
    SuggestionButton,
    DeleteButton,
    DirectMessageButton,
)


def frozen_view(items: Iterable[DynamicItem[Any]]) -> discord.ui.View | None:
    """A view to send with a message, stopped so discord.py does not keep it (the dynamic items answer)."""
    items = list(items)
    if not items:
        return None
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    view.stop()
    return view


def own_result_buttons(job_id: int, *, row: int) -> list[DynamicItem[Any]]:
    """✉️ (a copy by direct message) and ❌ (delete) under a result."""
    return [DirectMessageButton(job_id, row=row), DeleteButton(job_id, row=row)]


def grid_buttons(job_id: int, images: int = 4) -> list[DynamicItem[Any]]:
    """U1–U4 and 🔄 on the first row, V1–V4 on the second, ✉️ and ❌ on the third."""
    numbers = range(1, min(images, 4) + 1)
    return [
        *(UpscaleButton(job_id, n, row=0) for n in numbers),
        RerollButton(job_id, row=0),
        *(VaryButton(job_id, n, row=1) for n in numbers),
        *own_result_buttons(job_id, row=2),
    ]


def upscaled_buttons(job_id: int, *, esrgan: bool = True) -> list[DynamicItem[Any]]:
    items: list[DynamicItem[Any]] = [
        VaryStrengthButton(job_id, 1, "s", row=0),
        VaryStrengthButton(job_id, 1, "x", row=0),
    ]
    if esrgan:
        items.append(EsrganButton(job_id, 1, row=0))
    return [*items, *own_result_buttons(job_id, row=1)]


def describe_buttons(job_id: int, suggestions: int) -> list[DynamicItem[Any]]:
    """1️⃣–4️⃣ (draw that suggestion) on the first row, ✉️ and ❌ on the second."""
    numbers = range(1, min(suggestions, 5) + 1)
    return [*(SuggestionButton(job_id, n, row=0) for n in numbers), *own_result_buttons(job_id, row=1)]


def page_buttons(job_id: int, *, story_id: int | None = None) -> list[DynamicItem[Any]]:
    """🔁 and ⬆️ under a page; with ``story_id`` (a redrawn page) also 📕 for the book with the new picture."""
    items: list[DynamicItem[Any]] = [
        RedrawButton(job_id, row=0),
        UpscaleButton(job_id, 1, label="⬆️ Upscale", row=0),
        ReadAloudButton(job_id, "n", row=0),
    ]
    if story_id is not None:
        items.append(BookButton(story_id, row=0))
    return items


def book_buttons(story_id: int) -> list[DynamicItem[Any]]:
    return [
        ContinueButton(story_id, row=0),
        ReadAloudButton(story_id, "ab", row=0),
        ReadAloudButton(story_id, "mv", row=0),
    ]
