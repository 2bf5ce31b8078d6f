"""Vary (Region) end to end: the bot against the fake Discord with a real worker on the tiny models (CLIPSeg finds
the region, the 9-channel inpainting UNet redraws it): an upscale's region form, its preview and the redraw; a
region that matches nothing; a story page fixed in place and the updated book carrying the fixed picture."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from storyloom.bot.stories import Stories
from storyloom.models.runtime.tiny import TINY_REGION_FOUND, TINY_REGION_MISSED, make_tiny_config
from storyloom.queue.job import ArtifactKind, JobKind, JobStatus
from tests.support.bot import SupervisedWorker, job_of, open_store, start_bot
from tests.support.fakediscord import FakeDiscord, FakeMessage
from tests.support.jobs import wait_job

pytestmark = pytest.mark.asyncio(loop_scope="module")

WORK_TIMEOUT = 240.0  # the worker loads SD, the inpainting UNet and CLIPSeg on a shared 2-core machine


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def backend(tmp_path_factory, tiny_models) -> AsyncIterator[tuple]:
    data = tmp_path_factory.mktemp("regions-e2e") / "data"
    config = make_tiny_config(
        data, tiny_models,
        image={"steps": 2}, upscale={"steps": 2}, story={"max_new_tokens": 24},
        bot={"progress_edit_interval": 0.5, "delivery_poll_interval": 0.05},
        worker={"progress_interval": 0.1},
    )  # fmt: skip
    store = await open_store(config)
    worker = SupervisedWorker(config).start()
    try:
        yield config, store
    finally:
        worker.stop()
        await store.close()


def everywhere(fake: FakeDiscord) -> list:
    return [fake.text_channel, *fake.threads_of(fake.text_channel)]


async def delivered(fake: FakeDiscord, job_id: int) -> FakeMessage:
    """The message with job ``job_id``'s picture, in the channel or one of its threads."""

    def find():
        return next(
            (m for c in everywhere(fake) for m in fake.messages_in(c) if job_of(m) == job_id and m.attachments), None
        )

    return await fake.wait_for(find, timeout=WORK_TIMEOUT)


async def queued_by(handle) -> int:
    [status] = await handle.wait_followups(1)
    job_id = job_of(status)
    assert job_id is not None, status.content
    return job_id


def pixels(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def pdf_pictures(pdf: bytes) -> list[list[Image.Image]]:
    """The pictures placed on each sheet of a PDF, as their own pixels (not rendered)."""
    import pypdfium2
    import pypdfium2.raw as pdfium_c

    document = pypdfium2.PdfDocument(pdf)
    sheets = []
    for sheet in document:
        objects = sheet.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,))
        sheets.append([obj.get_bitmap(render=False).to_pil().convert("RGB") for obj in objects])
    return sheets


async def test_an_upscale_redrawn_in_a_region_and_a_region_that_matches_nothing(backend) -> None:
    config, store = backend
    async with FakeDiscord() as fake:
        running = await start_bot(config, store, fake)
        try:
            imagine = await fake.invoke_command("imagine", {"prompt": "a small red house", "seed": 3, "steps": 2})
            grid = await delivered(fake, job_of(await imagine.wait_original()))
            upscale = await fake.click_button(grid, f"sl:u:{job_of(grid)}:1")
            upscaled = await delivered(fake, await queued_by(upscale))
            up = job_of(upscaled)
            source = await store.artifact(up, 0, ArtifactKind.IMAGE)

            form = await fake.click_button(upscaled, f"sl:vr:{up}:1")
            assert (await form.wait_ack()).type == 9
            region_id = await queued_by(await form.submit_modal({"region": TINY_REGION_FOUND, "prompt": "a crown"}))
            preview = await delivered(fake, region_id)
            assert preview.custom_ids() == [f"sl:rr:{region_id}", f"sl:rx:{region_id}"]
            assert pixels(preview.attachments[0].data).size == pixels(source.data).size  # the picture, tinted
            assert "100% of the picture" in preview.content

            redraw = await fake.click_button(preview, f"sl:rr:{region_id}")
            inpaint_id = await queued_by(redraw)
            redrawn = await delivered(fake, inpaint_id)
            assert (await store.get(inpaint_id)).status is JobStatus.SUCCEEDED
            assert pixels(redrawn.attachments[0].data).size == pixels(source.data).size
            assert redrawn.attachments[0].data != source.data  # drawn again where the region was
            assert (
                f"sl:vr:{inpaint_id}:1" in redrawn.custom_ids() and f"sl:zo:{inpaint_id}:1:20" in redrawn.custom_ids()
            )
            assert "**a crown**" in redrawn.content

            # Words that match nothing: the preview and the reason, no ✅ Redraw, and no inpaint job.
            form = await fake.click_button(upscaled, f"sl:vr:{up}:1")
            assert (await form.wait_ack()).type == 9
            missed_id = await queued_by(await form.submit_modal({"region": TINY_REGION_MISSED, "prompt": "birds"}))
            missed = await delivered(fake, missed_id)
            assert f"nothing in the picture matched “{TINY_REGION_MISSED}”" in missed.content
            assert f"sl:rr:{missed_id}" not in missed.custom_ids()
            assert not [j for j in await store.children(missed_id)]
        finally:
            await running.stop()


async def test_a_story_page_fixed_in_place_goes_into_the_updated_book(backend) -> None:
    config, store = backend
    async with FakeDiscord() as fake:
        running = await start_bot(config, store, fake)
        try:
            handle = await fake.invoke_command("story", {"summary": "a cat finds a red ball in the garden", "pages": 2})
            story_id = job_of(await handle.wait_original())
            thread = await fake.wait_for(
                lambda: fake.threads_of(fake.text_channel) and fake.threads_of(fake.text_channel)[0]
            )
            book = await fake.wait_for_message(
                thread, lambda m: any(a.filename.endswith(".pdf") for a in m.attachments), timeout=WORK_TIMEOUT
            )
            page = next(m for m in fake.messages_in(thread) if m.content.startswith("**Page 2**"))
            page_id = job_of(page)
            drawn = await store.artifact(page_id, 0, ArtifactKind.IMAGE)

            # The top row of squares, picked on the private grid, then what to draw there.
            opened = await fake.click_button(page, f"sl:sq:{page_id}:1")
            assert (await opened.wait_ack()).type == 4
            picker = opened.original_response()
            bits = 0
            for cell in (1, 2, 3):
                toggle = await fake.click_button(picker, f"sl:sc:{page_id}:1:{bits}:{cell}")
                assert (await toggle.wait_ack()).type == 7
                bits |= 1 << (cell - 1)
                picker = fake.message(picker.id)
            form = await fake.click_button(picker, f"sl:sn:{page_id}:1:{bits}")
            assert (await form.wait_ack()).type == 9
            region_id = await queued_by(await form.submit_modal({"prompt": "a night sky full of stars"}))
            preview = await delivered(fake, region_id)
            assert (await store.get(region_id)).params["cells"] == [1, 2, 3]

            redraw = await fake.click_button(preview, f"sl:rr:{region_id}")
            inpaint_id = await queued_by(redraw)
            fixed = await fake.wait_for_message(
                thread, lambda m: job_of(m) == inpaint_id and bool(m.attachments), timeout=WORK_TIMEOUT
            )
            assert fixed.content.startswith("**Page 2** (fixed")
            fixed_picture = await store.artifact(inpaint_id, 0, ArtifactKind.IMAGE)
            before, after = pixels(drawn.data), pixels(fixed_picture.data)
            assert after.size == before.size
            top, bottom = (
                (0, 0, before.width, before.height // 3),
                (0, before.height // 3 + 8, before.width, before.height),
            )
            assert after.crop(bottom).tobytes() == before.crop(bottom).tobytes()  # outside the squares: untouched
            assert after.crop(top).tobytes() != before.crop(top).tobytes()  # the top row is drawn again

            used = await fake.click_button(fixed, f"sl:ub:{inpaint_id}")
            [updated] = await used.wait_followups(1)
            assert updated.attachments[0].data.startswith(b"%PDF")
            assert (await Stories(store).page_images(story_id))[1] == fixed_picture.data
            old_sheets, new_sheets = pdf_pictures(book.attachments[0].data), pdf_pictures(updated.attachments[0].data)
            old_pictures = [p.tobytes() for sheet in old_sheets for p in sheet]
            new_pictures = [p.tobytes() for sheet in new_sheets for p in sheet]
            assert after.tobytes() in new_pictures and after.tobytes() not in old_pictures  # the fixed page is in
            assert before.tobytes() in old_pictures and before.tobytes() not in new_pictures  # the old one is not
            inpaint = await wait_job(store, inpaint_id, lambda j: j.is_finished)
            assert (inpaint.kind, inpaint.params["page"]) == (JobKind.INPAINT, 1)
        finally:
            await running.stop()
