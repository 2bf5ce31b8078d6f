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
| ``sl:ed:<job>``       | ✏️ Edit            | a form: the page's text and scene, then a redraw with them |
| ``sl:et:<job>``       | ✏️ Edit title      | a form: the story's title in the book   |
| ``sl:c:<job>``        | ➕ Continue        | the next chapter of the story           |
| ``sl:bk:<job>``       | 📕 Updated book    | the book PDF again, with redrawn pages  |
| ``sl:d:<job>:<n>``    | 1️⃣–4️⃣              | /imagine on /describe's suggestion n    |
| ``sl:del:<job>``      | ❌                 | deletes the result (requester, managers)|
| ``sl:dm:<job>``       | ✉️                 | a copy of the result by direct message  |
| ``sl:vr:<job>:<n>``   | 🖌️ Vary (Region)   | the region form for image n (words)     |
| ``sl:sq:<job>:<n>``   | 🔲 Pick squares    | a private 3×3 square picker for image n |
| ``sl:sc:<job>:<n>:<b>:<c>`` | a square     | flips square c (b: the squares so far)  |
| ``sl:sn:<job>:<n>:<b>`` | Next             | the region form for squares b           |
| ``sl:rr:<job>``       | ✅ Redraw          | redraws a region preview's part         |
| ``sl:rx:<job>``       | ✖ Cancel          | ends a region preview, nothing redrawn  |
| ``sl:zo:<job>:<n>:<z>`` | Zoom Out 1.5×/2× | image n grown (z: 15 or 20 tenths)      |
| ``sl:zc:<job>:<n>``   | 🔍 Custom Zoom     | a form for the zoom and the prompt      |
| ``sl:pn:<job>:<n>:<d>`` | ⬅️ ➡️ ⬆️ ⬇️       | image n extended one way (d: l r u d)   |
| ``sl:ub:<job>``       | ✅ Use in the book | a fixed page goes in its book           |

With Remix on (``/settings``), V1–V4, 🔄, Vary and ✅ Redraw open a form for the prompt first (``remix``).
| ``sl:n:<job>``        | 🔊                | the page read aloud (Ogg/Opus)          |
| ``sl:ab:<job>``       | 🎧 Audiobook       | the book as an M4A, a chapter per page  |
| ``sl:mv:<job>``       | 🎬 Video           | an MP4 of the pages, read aloud         |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import discord
from discord.ui import Button, DynamicItem

from storyloom.bot import actions, own_results, texts
from storyloom.bot.errors import report
from storyloom.bot.remix import remixable
from storyloom.domain.regions import ZOOM_MIN, PanDirection

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


class EditPageButton(_JobButton, template=r"sl:ed:(?P<job>[0-9]+)"):
    """✏️ Edit under a page: a form with its text and scene; saving redraws the page with them."""

    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:ed:{job_id}", job_id, label="✏️ Edit", row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> EditPageButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot.page_edits import open_page_form

        await open_page_form(interaction, self.job_id)


class EditTitleButton(_JobButton, template=r"sl:et:(?P<job>[0-9]+)"):
    """✏️ Edit title under a story's title post (its job): a form for the title the book uses."""

    def __init__(self, story_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:et:{story_id}", story_id, label="✏️ Edit title", row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> EditTitleButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot.page_edits import open_title_form

        await open_title_form(interaction, self.job_id)


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


class RegionButton(_JobButton, template=r"sl:(?P<what>vr|sq):(?P<job>[0-9]+):(?P<n>[1-9])"):
    """🖌️ Vary (Region) (the form: words and a prompt) and 🔲 Pick squares (the private square picker)."""

    LABELS = {"vr": "🖌️ Vary (Region)", "sq": "🔲 Pick squares"}

    def __init__(self, job_id: int, n: int, what: str, *, label: str | None = None, row: int | None = None) -> None:
        super().__init__(f"sl:{what}:{job_id}:{n}", job_id, label=label or self.LABELS[what], row=row)
        self.n, self.what = n, what

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RegionButton:
        return cls(int(match["job"]), int(match["n"]), match["what"])

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot import regions

        if self.what == "sq":
            await regions.open_square_picker(interaction, self.job_id, self.n - 1)
        else:
            await regions.open_region_form(interaction, self.job_id, self.n - 1)


class SquareButton(_JobButton, template=r"sl:sc:(?P<job>[0-9]+):(?P<n>[1-9]):(?P<bits>[0-9]{1,3}):(?P<cell>[1-9])"):
    """One square of the private 3×3 picker: green when picked; a press flips it (the choice is in the ID)."""

    def __init__(self, job_id: int, n: int, bits: int, cell: int, *, row: int | None = None) -> None:
        picked = bool(bits >> (cell - 1) & 1)
        super().__init__(
            f"sl:sc:{job_id}:{n}:{bits}:{cell}",
            job_id,
            label=texts.keycap(cell),
            style=discord.ButtonStyle.success if picked else GREY,
            row=row,
        )
        self.n, self.bits, self.cell = n, bits, cell

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> SquareButton:
        return cls(int(match["job"]), int(match["n"]), int(match["bits"]) & ALL_SQUARES, int(match["cell"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot import regions

        await regions.toggle_square(interaction, self.job_id, self.n - 1, self.bits, self.cell)


class SquaresNextButton(_JobButton, template=r"sl:sn:(?P<job>[0-9]+):(?P<n>[1-9]):(?P<bits>[0-9]{1,3})"):
    """Next on the square picker: the region form for the squares picked (disabled while none are)."""

    def __init__(self, job_id: int, n: int, bits: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:sn:{job_id}:{n}:{bits}", job_id, label="Next", style=BLUE, row=row)
        self.item.disabled = not bits
        self.n, self.bits = n, bits

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> SquaresNextButton:
        return cls(int(match["job"]), int(match["n"]), int(match["bits"]) & ALL_SQUARES)

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot import regions

        await regions.open_region_form(interaction, self.job_id, self.n - 1, regions.cells_of(self.bits))


class RegionPreviewButton(_JobButton, template=r"sl:r(?P<what>[rx]):(?P<job>[0-9]+)"):
    """Under a region preview: ✅ Redraw (the inpaint job) and ✖ Cancel."""

    LABELS = {"r": ("✅ Redraw", BLUE), "x": ("✖ Cancel", GREY)}

    def __init__(self, job_id: int, what: str, *, row: int | None = None) -> None:
        label, style = self.LABELS[what]
        super().__init__(f"sl:r{what}:{job_id}", job_id, label=label, style=style, row=row)
        self.what = what

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> RegionPreviewButton:
        return cls(int(match["job"]), match["what"])

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot import regions

        if self.what == "r":
            await regions.redraw_region(interaction, self.job_id)
        else:
            await regions.cancel_region(interaction, self.job_id)


class ZoomOutButton(_JobButton, template=r"sl:zo:(?P<job>[0-9]+):(?P<n>[1-9]):(?P<tenths>15|20)"):
    """Zoom Out 1.5× and 2×: the picture grown on every side, the original in the middle."""

    def __init__(self, job_id: int, n: int, tenths: int, *, row: int | None = None) -> None:
        self.zoom = tenths / 10
        super().__init__(f"sl:zo:{job_id}:{n}:{tenths}", job_id, label=f"Zoom Out {self.zoom:g}×", row=row)
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ZoomOutButton:
        return cls(int(match["job"]), int(match["n"]), int(match["tenths"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot import regions

        await actions.press(interaction, self.job_id, regions.outpaint_request(self.n - 1, zoom=self.zoom))


class CustomZoomButton(_JobButton, template=r"sl:zc:(?P<job>[0-9]+):(?P<n>[1-9])"):
    def __init__(self, job_id: int, n: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:zc:{job_id}:{n}", job_id, label="🔍 Custom Zoom", row=row)
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CustomZoomButton:
        return cls(int(match["job"]), int(match["n"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot import regions

        await regions.open_zoom_form(interaction, self.job_id, self.n - 1)


class PanButton(_JobButton, template=r"sl:pn:(?P<job>[0-9]+):(?P<n>[1-9]):(?P<way>[lrud])"):
    """⬅️ ➡️ ⬆️ ⬇️: the picture extended one way, the original kept against the opposite side."""

    WAYS: dict[str, tuple[str, PanDirection]] = {
        "l": ("⬅️", "left"), "r": ("➡️", "right"), "u": ("⬆️", "up"), "d": ("⬇️", "down"),
    }  # fmt: skip

    def __init__(self, job_id: int, n: int, way: str, *, row: int | None = None) -> None:
        label, self.direction = self.WAYS[way]
        super().__init__(f"sl:pn:{job_id}:{n}:{way}", job_id, label=label, row=row)
        self.n = n

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> PanButton:
        return cls(int(match["job"]), int(match["n"]), match["way"])

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot import regions

        await actions.press(interaction, self.job_id, regions.outpaint_request(self.n - 1, pan=self.direction))


class UseInBookButton(_JobButton, template=r"sl:ub:(?P<job>[0-9]+)"):
    """Under a fixed story page: the book takes this picture for the page (and is posted again)."""

    def __init__(self, job_id: int, *, row: int | None = None) -> None:
        super().__init__(f"sl:ub:{job_id}", job_id, label="✅ Use in the book", style=BLUE, row=row)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str]
    ) -> UseInBookButton:
        return cls(int(match["job"]))

    async def pressed(self, interaction: discord.Interaction) -> None:
        from storyloom.bot import regions

        await regions.use_in_book(interaction, self.job_id)


ALL_BUTTONS: tuple[type[DynamicItem[Any]], ...] = (
    UpscaleButton,
    VaryButton,
    RerollButton,
    VaryStrengthButton,
    EsrganButton,
    RedrawButton,
    EditPageButton,
    EditTitleButton,
    ContinueButton,
    BookButton,
    ReadAloudButton,
    SuggestionButton,
    DeleteButton,
    DirectMessageButton,
    RegionButton,
    SquareButton,
    SquaresNextButton,
    RegionPreviewButton,
    ZoomOutButton,
    CustomZoomButton,
    PanButton,
    UseInBookButton,
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


# (zoom, pan) -> whether a picture can grow so: exactly one of the two is given
GrowthCheck = Callable[[float | None, PanDirection | None], bool]


def upscaled_buttons(job_id: int, *, esrgan: bool = True, grows: GrowthCheck | None = None) -> list[DynamicItem[Any]]:
    """Under one picture (an upscale, a redrawn region, a grown picture), at most five to a row as Discord
    allows: the Vary buttons and 4× Real-ESRGAN; Zoom Out; Pan; ✉️ and ❌. ``grows`` says which Zoom Out and
    Pan the picture can take (its result within the largest allowed); None offers them all."""
    items: list[DynamicItem[Any]] = [
        VaryStrengthButton(job_id, 1, "s", row=0),
        VaryStrengthButton(job_id, 1, "x", row=0),
        RegionButton(job_id, 1, "vr", row=0),
        RegionButton(job_id, 1, "sq", row=0),
    ]
    if esrgan:
        items.append(EsrganButton(job_id, 1, row=0))
    return [*items, *growth_buttons(job_id, rows=(1, 2), grows=grows), *own_result_buttons(job_id, row=3)]


def growth_buttons(job_id: int, *, rows: tuple[int, int], grows: GrowthCheck | None = None) -> list[DynamicItem[Any]]:
    """Zoom Out 2×, 1.5× and 🔍 Custom Zoom (from the smallest zoom) on one row; ⬅️ ➡️ ⬆️ ⬇️ on the next; each
    only when ``grows`` allows it."""

    def offered(zoom: float | None = None, pan: PanDirection | None = None) -> bool:
        return grows is None or grows(zoom, pan)

    zooms = [ZoomOutButton(job_id, 1, tenths, row=rows[0]) for tenths in (20, 15) if offered(zoom=tenths / 10)]
    custom = [CustomZoomButton(job_id, 1, row=rows[0])] if offered(zoom=ZOOM_MIN) else []
    pans = [PanButton(job_id, 1, way, row=rows[1]) for way, (_, pan) in PanButton.WAYS.items() if offered(pan=pan)]
    return [*zooms, *custom, *pans]


ALL_SQUARES = 0b111_111_111


def square_picker(job_id: int, n: int, bits: int) -> list[DynamicItem[Any]]:
    """The 3×3 squares of image n as three rows of toggles laid out like the picture, and Next below."""
    return [
        *(SquareButton(job_id, n, bits, cell, row=(cell - 1) // 3) for cell in range(1, 10)),
        SquaresNextButton(job_id, n, bits, row=3),
    ]


def region_preview_buttons(region_id: int) -> list[DynamicItem[Any]]:
    """✅ Redraw and ✖ Cancel under a preview of the region found."""
    return [RegionPreviewButton(region_id, "r", row=0), RegionPreviewButton(region_id, "x", row=0)]


def region_retry_buttons(source_id: int, n: int) -> list[DynamicItem[Any]]:
    """Under a preview that found nothing (there is nothing to redraw): choose again, by other words or by
    squares, on the picture the region was looked for in."""
    return [RegionButton(source_id, n, "vr", label="🖌️ Other words", row=0), RegionButton(source_id, n, "sq", row=0)]


def fixed_page_buttons(job_id: int) -> list[DynamicItem[Any]]:
    """Under a fixed page: ✅ Use in the book, fix another part, ✉️ and ❌."""
    return [
        UseInBookButton(job_id, row=0),
        RegionButton(job_id, 1, "vr", label="🖌️ Fix part of this page", row=0),
        RegionButton(job_id, 1, "sq", row=0),
        *own_result_buttons(job_id, row=1),
    ]


def describe_buttons(job_id: int, suggestions: int) -> list[DynamicItem[Any]]:
    """1️⃣–4️⃣ (draw that suggestion) on the first row, ✉️ and ❌ on the second."""
    numbers = range(1, min(suggestions, 5) + 1)
    return [*(SuggestionButton(job_id, n, row=0) for n in numbers), *own_result_buttons(job_id, row=1)]


def page_buttons(job_id: int, *, story_id: int | None = None) -> list[DynamicItem[Any]]:
    """🔁, ✏️, ⬆️ and 🔊 under a page, with ``story_id`` (a redrawn page) also 📕 for the book with the new picture;
    on the next row 🖌️ Fix part of this page and 🔲 Pick squares."""
    items: list[DynamicItem[Any]] = [
        RedrawButton(job_id, row=0),
        EditPageButton(job_id, row=0),
        UpscaleButton(job_id, 1, label="⬆️ Upscale", row=0),
        ReadAloudButton(job_id, "n", row=0),
    ]
    if story_id is not None:
        items.append(BookButton(story_id, row=0))
    return [
        *items,
        RegionButton(job_id, 1, "vr", label="🖌️ Fix part of this page", row=1),
        RegionButton(job_id, 1, "sq", row=1),
    ]


def book_buttons(story_id: int) -> list[DynamicItem[Any]]:
    return [
        ContinueButton(story_id, row=0),
        ReadAloudButton(story_id, "ab", row=0),
        ReadAloudButton(story_id, "mv", row=0),
    ]
