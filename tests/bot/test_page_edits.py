"""✏️ Edit and ✏️ Edit title against the fake Discord with a fast stand-in worker: the forms are filled with the
story as it now reads, an edit redraws its page with the new words (same seed unless asked), an emptied page or
title is refused with nothing queued, and the book follows both."""

from __future__ import annotations

from pathlib import Path

from storyloom.bot.page_edits import edited_page_request
from storyloom.bot.stories import Stories
from storyloom.domain.story.edits import EMPTY_PAGE
from storyloom.domain.story.plan import CastMember, PagePlan, StoryPlan
from storyloom.domain.story.scenes import page_prompt
from storyloom.errors import InvalidInput
from storyloom.queue.job import JobKind, JobStatus
from storyloom.queue.params import StoryPageParams
from tests.support.bot import bot_config, fast_worker, job_of, running_bot
from tests.support.fakediscord import FakeDiscord


def fields(modal: dict) -> dict[str, str]:
    """custom ID -> pre-filled value of a form's text fields."""
    found = {}
    for row in modal["components"]:
        for component in row.get("components", [row.get("component")] if row.get("component") else []):
            if component and component.get("type") == 4:
                found[component["custom_id"]] = component.get("value", "")
    return found


async def filled(fake: FakeDiscord, message, custom_id: str, values: dict[str, str]):
    """Open a message's form with its button and submit ``values`` (a form is answered once)."""
    click = await fake.click_button(message, custom_id)
    assert (await click.wait_ack()).type == 9
    submitted = await click.submit_modal(values)
    await submitted.wait_ack()
    return submitted


async def story_in_thread(fake: FakeDiscord, pages: int = 2):
    handle = await fake.invoke_command("story", {"summary": "a cat and a kite", "pages": pages})
    story_id = job_of(await handle.wait_original())
    thread = await fake.wait_for(lambda: next(iter(fake.threads_of(fake.text_channel)), None))
    await fake.wait_for_message(thread, lambda m: any(a.filename.endswith(".pdf") for a in m.attachments), timeout=10)
    opening = next(m for m in fake.messages_in(thread) if job_of(m) == story_id)
    page_posts = [m for m in fake.messages_in(thread) if m.content.startswith("**Page")]
    return story_id, thread, opening, page_posts


async def test_an_edit_redraws_its_page_with_the_new_words_and_the_same_seed(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        story_id, thread, _, pages = await story_in_thread(fake)
        page_id = job_of(pages[1])
        assert f"sl:ed:{page_id}" in pages[1].custom_ids()
        click = await fake.click_button(pages[1], f"sl:ed:{page_id}")
        assert (await click.wait_ack()).type == 9  # the form
        assert fields(click.modal) == {"text": "Text of page 2.", "scene": "a garden", "new_seed": "no"}
        jobs_before = len(await store.list_jobs(tuple(JobStatus)))

        emptied = await click.submit_modal({"text": "   ", "scene": "a garden", "new_seed": "no"})
        await emptied.wait_ack()
        assert emptied.original_response().ephemeral and EMPTY_PAGE in emptied.original_response().content
        values = {"text": "Pip flies a kite.", "scene": "", "new_seed": "maybe"}
        unsure = await filled(fake, pages[1], f"sl:ed:{page_id}", values)
        assert "new seed: answer yes or no" in unsure.original_response().content
        assert len(await store.list_jobs(tuple(JobStatus))) == jobs_before  # nothing queued

        values = {"text": "Pip flies a kite.", "scene": "a robot with a kite", "new_seed": ""}
        saved = await filled(fake, pages[1], f"sl:ed:{page_id}", values)
        assert saved.ack.type == 5
        edit_id = job_of((await saved.wait_followups(1))[0])
        edit = await store.get(edit_id)
        assert (edit.kind, edit.parent_id, edit.params["page"]) == (JobKind.STORY_PAGE, story_id, 1)
        assert edit.params["text"] == "Pip flies a kite." and edit.params["plan"]["scene"] == "a robot with a kite"
        assert edit.params["seed"] == 1  # the page's planned seed: the same noise, the new words
        assert edit.params["prompt"].startswith("watercolor") and "a robot with a kite" in edit.params["prompt"]
        redrawn = await fake.wait_for_message(thread, lambda m: job_of(m) == edit_id and bool(m.attachments))
        assert redrawn.content.startswith("**Page 2** (edited)\nPip flies a kite.")
        assert f"sl:bk:{story_id}" in redrawn.custom_ids()

        plan = await Stories(store).plan(story_id)
        assert plan.pages[1].text == "Pip flies a kite." and plan.pages[0].text == "Text of page 1."
        again = await fake.click_button(pages[1], f"sl:ed:{page_id}")  # the form now shows the edited page
        await again.wait_ack()
        assert fields(again.modal)["text"] == "Pip flies a kite."
        fresh = await filled(fake, redrawn, f"sl:ed:{edit_id}", {"text": "Pip.", "scene": "a kite", "new_seed": "yes"})
        fresh_id = job_of((await fresh.wait_followups(1))[0])
        assert (await store.get(fresh_id)).params["seed"] != 1


async def test_a_title_edit_renames_the_book_and_an_empty_title_is_refused(
    fake: FakeDiscord, store, tmp_path: Path
) -> None:
    async with running_bot(bot_config(tmp_path), store, fake), fast_worker(store):
        story_id, thread, opening, _ = await story_in_thread(fake)
        assert f"sl:et:{story_id}" in opening.custom_ids()
        click = await fake.click_button(opening, f"sl:et:{story_id}")
        await click.wait_ack()
        assert fields(click.modal) == {"title": "The Cat and the Red Ball"}
        empty = await click.submit_modal({"title": "  "})
        await empty.wait_ack()
        assert empty.original_response().ephemeral and "needs a title" in empty.original_response().content
        assert (await Stories(store).plan(story_id)).title == "The Cat and the Red Ball"

        renamed = await filled(fake, opening, f"sl:et:{story_id}", {"title": "The Kite Cat"})
        answer = renamed.original_response()
        assert "**The Kite Cat**" in answer.content and f"sl:bk:{story_id}" in answer.custom_ids()
        book = await fake.click_button(answer, f"sl:bk:{story_id}")
        [updated] = await book.wait_followups(1)
        assert "📕 **The Kite Cat**" in updated.content and updated.attachments[0].filename == "The-Kite-Cat.pdf"
        assert (await Stories(store).plan(story_id)).title == "The Kite Cat"
        assert fake.channel(thread.id).name == "The Kite Cat"  # the thread follows the title


def test_an_edited_page_keeps_its_characters_and_places_and_builds_its_prompt_as_the_planner_does() -> None:
    page = PagePlan(
        number=2, chapter=1, text="Bhna and Pip.", scene="a beach", prompt="old", negative_prompt="", seed=5,
        characters=["Bhna", "Pip"], positions={"Bhna": "left", "Pip": "right"},
    )  # fmt: skip
    cast = [CastMember(name="Bhna", description="a cat"), CastMember(name="Pip", description="a robot")]
    plan = StoryPlan(title="T", summary="s", style="crayon", base_seed=1, cast=cast, pages=[page, page])
    newest = StoryPageParams(
        page=1, text="Bhna and Pip.", prompt="old", seed=5, plan={"number": 2, "scene": "a beach"},
        characters=[{"name": "Bhna", "position": "left"}, {"name": "Pip", "position": "right"}],
        reference={"job": 3, "index": 1},
    )  # fmt: skip
    request = edited_page_request(plan, 3, newest, "They dig.", "a sandcastle", new_seed=False, safety=None)
    params = request.params
    assert isinstance(params, StoryPageParams) and request.parent_id == 3
    assert params.prompt == page_prompt("crayon", cast, page, "a sandcastle")
    assert "Bhna, a cat on the left; Pip, a robot on the right" in params.prompt
    assert (params.text, params.seed, params.characters, params.reference) == (
        "They dig.", 5, newest.characters, newest.reference,
    )  # fmt: skip
    try:
        edited_page_request(plan, 3, newest, " \n ", "a sandcastle", new_seed=False, safety=None)
    except InvalidInput as exc:
        assert str(exc) == EMPTY_PAGE
    else:
        raise AssertionError("an emptied page was queued")
