"""Vary (Region), Zoom Out and Pan from Discord: the forms, the 3×3 square picker, the region preview's ✅ Redraw
and ✖ Cancel, and a fixed story page taken into its book.

A ``region`` job finds the part of a picture to redraw (from words like “the hat”, or from squares of a 3×3
grid) and posts it back as a preview; ✅ Redraw queues the ``inpaint`` job that redraws that part. Zoom Out
and Pan queue an ``outpaint`` job. The square picker is a private message of toggle buttons whose custom IDs
carry the squares chosen so far, so the bot keeps nothing in memory for it and it works across a restart.
The rules on what a user gives (words, squares, zoom, the size of a grown picture) are ``domain/regions.py``'s,
checked before anything is queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import discord

from storyloom.bot import actions, texts
from storyloom.bot.errors import JobFailure, report
from storyloom.bot.own_results import may_delete
from storyloom.bot.remix import FORM_PROMPT_CHARS, Prompts, RemixMaker, remixable, source_prompts
from storyloom.bot.safety import safety_checker_for
from storyloom.bot.submit import Request
from storyloom.domain.prompts import validate_prompt
from storyloom.domain.regions import (
    GRID_CELLS,
    MAX_REGION_CHARS,
    PanDirection,
    check_cells,
    check_region_words,
    describe_growth,
    fitted_source,
    parse_zoom,
)
from storyloom.errors import InvalidInput, StoryloomError
from storyloom.queue.job import Artifact, ArtifactKind, Job, JobKind, JobStatus
from storyloom.queue.params import InpaintParams, OutpaintParams, RegionParams
from storyloom.queue.stories import page_of

if TYPE_CHECKING:
    from storyloom.bot.app import StoryloomBot
    from storyloom.config import Config

NO_REGION = (
    "write what to change (like “the hat”) in “What to change”, or pick squares of the picture with 🔲 Pick squares"
)
NOT_YOURS_TO_CANCEL = (
    "only the person who asked for this preview, or someone who may manage messages here, can cancel it"
)
ZOOM_FORM_CHARS = 10
PAN_ICONS: dict[str, str] = {"left": "⬅️", "right": "➡️", "up": "⬆️", "down": "⬇️"}


# ------------------------------------------------------------------------------------------ the region
def chosen_region(words: str | None, cells: Iterable[int] = ()) -> tuple[str | None, tuple[int, ...] | None]:
    """(region words, squares): squares when some were picked, else the words, which must then say something."""
    picked = tuple(cells)
    if picked:
        return None, check_cells(picked)
    if not (words or "").strip():
        raise InvalidInput(NO_REGION)
    return check_region_words(words or ""), None


def region_request(
    index: int, words: str | None, cells: tuple[int, ...] | None, prompts: Prompts
) -> actions.MakeRequest:
    """Find the region of image ``index`` to draw ``prompts`` into (a preview comes back first)."""

    def make(source: Job, interaction: discord.Interaction) -> Request:
        params = RegionParams(
            index=index,
            region=words,
            cells=list(cells) if cells else None,
            prompt=prompts.prompt,
            negative_prompt=prompts.negative_prompt,
        )
        where = f"“{texts.quote(words, 60)}”" if words else f"squares {', '.join(map(str, cells or ()))}"
        head = f"🖌️ finding {where} in image {index + 1} of job {source.id}"
        return Request(JobKind.REGION, params, head, parent_id=source.id)

    return make


async def open_region_form(
    interaction: discord.Interaction, source_id: int, index: int, cells: tuple[int, ...] = ()
) -> None:
    """🖌️ Vary (Region) (or Next on the square picker): the form, pre-filled with the picture's prompt."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    try:
        if cells:
            check_cells(cells)
        source = await actions.load_source(interaction, source_id)
        prompts = await source_prompts(bot, source)
    except StoryloomError as exc:
        await report(interaction, exc, job_id=source_id)
        return
    await interaction.response.send_modal(RegionModal(source_id, index, prompts, cells=cells))


class RegionModal(discord.ui.Modal, title="Vary (Region)"):
    """What to change (words; absent when squares were picked) and what to draw there instead."""

    def __init__(self, source_id: int, index: int, prompts: Prompts, *, cells: tuple[int, ...] = ()) -> None:
        super().__init__(timeout=900, custom_id=f"sl:rf:{source_id}")
        if cells:
            self.title = texts.shorten(f"Vary (Region): squares {', '.join(map(str, cells))}", 45)
        self.source_id, self.index, self.cells = source_id, index, cells
        self.negative_prompt = prompts.negative_prompt
        self.region: discord.ui.TextInput[RegionModal] | None = None
        if not cells:
            self.region = discord.ui.TextInput(
                label="What to change",
                placeholder="the hat (or leave empty and pick squares with 🔲)",
                required=False,
                max_length=MAX_REGION_CHARS,
                custom_id="region",
            )
            self.add_item(self.region)
        self.prompt: discord.ui.TextInput[RegionModal] = discord.ui.TextInput(
            label="Draw there instead",
            style=discord.TextStyle.paragraph,
            default=prompts.prompt[:FORM_PROMPT_CHARS],
            required=True,
            max_length=FORM_PROMPT_CHARS,
            custom_id="prompt",
        )
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot: StoryloomBot = interaction.client  # type: ignore[assignment]
        try:
            words, cells = chosen_region(self.region.value if self.region is not None else None, self.cells)
            prompt = _checked_prompt(bot, self.prompt.value)
        except StoryloomError as exc:
            await report(interaction, exc, job_id=self.source_id)
            return
        make = region_request(self.index, words, cells, Prompts(prompt, self.negative_prompt))
        await actions.press(interaction, self.source_id, make)

    # discord.py's Modal.on_error has no ``item`` argument, unlike the BaseView.on_error it overrides.
    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await report(interaction, error, job_id=self.source_id)


def _checked_prompt(bot: StoryloomBot, text: str | None) -> str:
    prompt = (text or "").strip()
    validate_prompt(prompt, max_chars=bot.config.image.max_prompt_chars)
    bot.banned.ensure_allowed(prompt)
    return prompt


# ------------------------------------------------------------------------------------ the square picker
def cells_of(bits: int) -> tuple[int, ...]:
    """The squares a picker's bit set holds (square n is bit n - 1)."""
    return tuple(cell for cell in GRID_CELLS if bits >> (cell - 1) & 1)


def picker_text(source_id: int, index: int, bits: int) -> str:
    picked = cells_of(bits)
    chosen = f"picked: {', '.join(map(str, picked))}" if picked else "none picked yet"
    return (
        f"🔲 pick the squares of image {index + 1} of job {source_id} to draw again ({chosen}), then press Next\n"
        "-# the squares are laid out as the picture: 1 2 3 on top, 7 8 9 at the bottom"
    )


async def open_square_picker(interaction: discord.Interaction, source_id: int, index: int) -> None:
    """🔲 Pick squares: a private 3×3 grid of toggles and Next, for the presser only."""
    from storyloom.bot.buttons import frozen_view, square_picker

    try:
        await actions.load_source(interaction, source_id)
    except StoryloomError as exc:
        await report(interaction, exc, job_id=source_id)
        return
    view = frozen_view(square_picker(source_id, index + 1, 0))
    assert view is not None
    await interaction.response.send_message(picker_text(source_id, index, 0), view=view, ephemeral=True)


async def toggle_square(interaction: discord.Interaction, source_id: int, index: int, bits: int, cell: int) -> None:
    """A square pressed on the picker: it flips, and the picker is redrawn with the new choice."""
    from storyloom.bot.buttons import frozen_view, square_picker

    bits ^= 1 << (cell - 1)
    view = frozen_view(square_picker(source_id, index + 1, bits))
    await interaction.response.edit_message(content=picker_text(source_id, index, bits), view=view)


# ---------------------------------------------------------------------------------- the region's preview
async def found_region(bot: StoryloomBot, region: Job) -> None:
    """Refuse a redraw of anything but a finished region job that found something to redraw."""
    if region.kind is not JobKind.REGION:
        raise JobFailure("✅ Redraw works under a region preview", region.id)
    if region.status is not JobStatus.SUCCEEDED:
        raise JobFailure("this region was not found (the job did not finish)", region.id)
    preview = await bot.store.artifact(region.id, 0, ArtifactKind.IMAGE)
    if preview is None:
        raise JobFailure("this preview is gone (deleted or expired); choose the region again", region.id)
    if preview.metadata.get("empty"):
        raise JobFailure(nothing_matched(region), region.id)


def nothing_matched(region: Job) -> str:
    words = region.params.get("region")
    what = f"“{texts.quote(str(words), 80)}”" if words else "the squares you picked"
    return f"nothing in the picture matched {what}; try other words or pick squares with 🔲"


async def redraw_region(interaction: discord.Interaction, region_id: int) -> None:
    """✅ Redraw: the inpaint job for the previewed region (with Remix on, the prompt form first)."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    try:
        region = await actions.load_source(interaction, region_id)
        await found_region(bot, region)
        page = await fixed_page(bot, region)
    except StoryloomError as exc:
        await report(interaction, exc, job_id=region_id)
        return
    await remixable(interaction, region_id, inpaint_request(page))


def inpaint_request(page: int | None) -> RemixMaker:
    """Redraw a region job's part; ``page`` when the picture is a story page (the result can go in the book)."""

    def make(source: Job, interaction: discord.Interaction, remix: Prompts | None = None) -> Request:
        if source.kind is not JobKind.REGION:
            raise JobFailure("✅ Redraw works under a region preview", source.id)
        prompts = {}
        if remix is not None and remix.prompt:
            prompts = {"prompt": remix.prompt, "negative_prompt": remix.negative_prompt}
        params = InpaintParams(safety_checker=safety_checker_for(interaction.channel), page=page, **prompts)
        where = (
            f"page {page + 1}"
            if page is not None
            else f"image {source.params.get('index', 0) + 1} of job {source.parent_id}"
        )
        return Request(JobKind.INPAINT, params, f"🖌️ redrawing part of {where}", parent_id=source.id)

    return make


async def fixed_page(bot: StoryloomBot, job: Job) -> int | None:
    """The story page a picture is, when it is one: a page job's, or a fixed page's (region and inpaint jobs
    back to the page); None for any other picture."""
    origin = await bot.stories.page_origin(job)
    return page_of(origin) if origin is not None else None


async def cancel_region(interaction: discord.Interaction, region_id: int) -> None:
    """✖ Cancel: the preview stays, without its buttons, and nothing is redrawn."""
    try:
        region = await actions.load_source(interaction, region_id)
        if not may_delete(interaction, region):
            raise JobFailure(NOT_YOURS_TO_CANCEL, region_id)
    except StoryloomError as exc:
        await report(interaction, exc, job_id=region_id)
        return
    before = interaction.message.content if interaction.message is not None else ""
    await interaction.response.edit_message(content=texts.fit(f"{before}\n✖ canceled: nothing was redrawn"), view=None)


# ------------------------------------------------------------------------------------- Zoom Out and Pan
def outpaint_request(
    index: int, *, zoom: float | None = None, pan: PanDirection | None = None, prompt: str | None = None
) -> actions.MakeRequest:
    """Grow image ``index``: Zoom Out by ``zoom`` or Pan one way; ``prompt`` None keeps the picture's. A picture
    too large to grow as it is (an upscale, say) is grown from a scaled-down copy, as a Midjourney user expects."""

    def make(source: Job, interaction: discord.Interaction) -> Request:
        params = OutpaintParams(
            index=index, zoom=zoom, pan=pan, prompt=prompt, fit=True,
            safety_checker=safety_checker_for(interaction.channel),
        )  # fmt: skip
        icon = PAN_ICONS.get(pan or "", "🔍")
        head = f"{icon} {describe_growth(zoom=zoom, pan=pan)} of image {index + 1} of job {source.id}"
        return Request(JobKind.OUTPAINT, params, head, parent_id=source.id)

    return make


def growth_check(config: Config, picture: Artifact | None) -> Callable[[float | None, PanDirection | None], bool]:
    """Which Zoom Out and Pan a picture can take: those whose result stays within ``[inpaint]``'s largest, if need
    be grown from a scaled-down copy (all of them when the picture's size is not recorded: the press checks
    again)."""
    width = picture.metadata.get("width") if picture else None
    height = picture.metadata.get("height") if picture else None
    limits = config.inpaint

    def grows(zoom: float | None, pan: PanDirection | None) -> bool:
        if not (isinstance(width, int) and isinstance(height, int)):
            return True
        try:
            fitted_source(
                (width, height), zoom=zoom, pan=pan,
                max_side=limits.max_result_side, max_pixels=limits.max_result_pixels,
            )  # fmt: skip
        except InvalidInput:
            return False
        return True

    return grows


async def open_zoom_form(interaction: discord.Interaction, source_id: int, index: int) -> None:
    """🔍 Custom Zoom: a form for the zoom and the prompt (pre-filled with the picture's)."""
    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    try:
        source = await actions.load_source(interaction, source_id)
        prompts = await source_prompts(bot, source)
    except StoryloomError as exc:
        await report(interaction, exc, job_id=source_id)
        return
    await interaction.response.send_modal(ZoomModal(source_id, index, prompts))


class ZoomModal(discord.ui.Modal, title="Custom Zoom"):
    def __init__(self, source_id: int, index: int, prompts: Prompts) -> None:
        super().__init__(timeout=900, custom_id=f"sl:zf:{source_id}")
        self.source_id, self.index = source_id, index
        self.zoom: discord.ui.TextInput[ZoomModal] = discord.ui.TextInput(
            label="Zoom out (1.1 to 2)", default="1.5", required=True, max_length=ZOOM_FORM_CHARS, custom_id="zoom"
        )
        self.prompt: discord.ui.TextInput[ZoomModal] = discord.ui.TextInput(
            label="Prompt",
            style=discord.TextStyle.paragraph,
            default=prompts.prompt[:FORM_PROMPT_CHARS],
            required=True,
            max_length=FORM_PROMPT_CHARS,
            custom_id="prompt",
        )
        self.add_item(self.zoom)
        self.add_item(self.prompt)

    async def on_submit(self, interaction: discord.Interaction) -> None:
        bot: StoryloomBot = interaction.client  # type: ignore[assignment]
        try:
            zoom = parse_zoom(self.zoom.value or "")
            prompt = _checked_prompt(bot, self.prompt.value)
        except StoryloomError as exc:
            await report(interaction, exc, job_id=self.source_id)
            return
        await actions.press(interaction, self.source_id, outpaint_request(self.index, zoom=zoom, prompt=prompt))

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:  # type: ignore[override]
        await report(interaction, error, job_id=self.source_id)


# ------------------------------------------------------------------------------------ a fixed story page
async def use_in_book(interaction: discord.Interaction, job_id: int) -> None:
    """✅ Use in the book under a fixed page: the book takes this picture for that page, and comes back at once.

    A fix is accepted by hand, unlike 🔁 Redraw: a writer fixing one detail compares the result with the page
    first, and an unlucky fix must not quietly replace a page that was fine apart from that detail."""
    from storyloom.bot.book import send_book

    bot: StoryloomBot = interaction.client  # type: ignore[assignment]
    job = await actions.load_source(interaction, job_id)
    if job.kind is not JobKind.INPAINT or job.status is not JobStatus.SUCCEEDED:
        raise JobFailure("only a fixed story page can go in its book", job_id)
    origin = await bot.stories.page_origin(job)
    page = page_of(origin) if origin is not None else None
    if origin is None or origin.parent_id is None or page is None:
        raise JobFailure("the story page this picture fixes is gone (deleted or expired)", job_id)
    await bot.store.choose_page_picture(origin.parent_id, page, job_id)
    await send_book(interaction, origin.parent_id)
