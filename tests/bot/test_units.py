"""The bot's pure parts: fitting uploads, safety rules, validation, texts, custom IDs, nonces, redaction."""

from __future__ import annotations

import io
import logging

import pytest
from PIL import Image

from storyloom.bot import buttons, texts
from storyloom.bot.attachments import SizeLimits, fit_image
from storyloom.bot.delivery import part_nonce
from storyloom.bot.errors import RedactSecrets, user_line
from storyloom.bot.safety import BannedWords, safety_checker_for, story_screen
from storyloom.bot.validation import STEPS_MAX, STEPS_MIN, imagine_params, parse_pages, story_params
from storyloom.config import load_config
from storyloom.errors import InvalidInput, QueueFull
from storyloom.queue.ops.delivery import new_nonce
from tests.support.images import noisy_png


@pytest.fixture
def config():
    return load_config(None, environ={})


# ------------------------------------------------------------------------------------------------ uploads
def test_a_picture_that_fits_is_sent_unchanged() -> None:
    data = noisy_png(32, 32)
    fitted = fit_image(data, "grid.png", len(data))
    assert (fitted.data, fitted.filename, fitted.note) == (data, "grid.png", "")


@pytest.mark.parametrize("limit", [20_000, 3_000, 900])
def test_a_picture_too_large_is_reencoded_or_scaled_to_fit_and_says_so(limit: int) -> None:
    data = noisy_png(128, 128)
    fitted = fit_image(data, "grid.png", limit)
    assert len(data) > limit >= len(fitted.data) > 0
    assert (
        fitted.filename.endswith((".webp", ".jpg"))
        and "re-encoded" in fitted.note
        and "full PNG is kept" in fitted.note
    )
    with Image.open(io.BytesIO(fitted.data)) as image:
        assert image.width <= 128 and ("scaled down" in fitted.note) == (image.width < 128)


def test_when_nothing_fits_the_picture_is_left_out_with_a_note() -> None:
    fitted = fit_image(noisy_png(64, 64), "grid.png", 40)
    assert fitted.data == b"" and "does not fit" in fitted.note


def test_size_limits_are_learned_per_guild_and_shrink_after_a_refusal() -> None:
    limits = SizeLimits(default=10_000)
    limits.learn(1, 5, 8_000)
    limits.learn(None, 7, 500_000)  # a DM is keyed by its channel
    assert (limits.limit(1, 6), limits.limit(None, 7), limits.limit(2, 9)) == (8_000, 500_000, 10_000)
    assert limits.shrink(1, 5, 6_000) == 3_000 == limits.limit(1, 99)


# ------------------------------------------------------------------------------------------------ safety
def test_banned_words_match_whole_words_whatever_the_case_or_width() -> None:
    banned = BannedWords(["spoiler", "Big Word"])
    assert banned.find("a SPOILER alert") == "spoiler"
    assert banned.find("ｓｐｏｉｌｅｒ") == "spoiler"  # full-width letters
    assert banned.find("a big   word") is None and banned.find("a big word!") == "big word"
    assert banned.find("spoilers and unspoiled") is None
    assert BannedWords([]).find("anything") is None
    with pytest.raises(InvalidInput, match="does not allow"):
        banned.ensure_allowed("no spoiler please")


class Channel:
    def __init__(self, nsfw: bool | None) -> None:
        self._nsfw = nsfw

    def is_nsfw(self) -> bool:
        if self._nsfw is None:
            raise AttributeError("parent not cached")
        return self._nsfw


def test_the_safety_checker_is_forced_on_outside_age_restricted_channels() -> None:
    assert safety_checker_for(Channel(False)) is True
    assert safety_checker_for(Channel(True)) is None  # the configured default
    assert safety_checker_for(Channel(None)) is True  # cannot tell: safe side
    assert safety_checker_for(object()) is True  # a DM or partial channel


def test_story_screen_refuses_unkind_summaries_and_banned_words() -> None:
    screen = story_screen(["broccoli"])
    assert not screen.check("a kid who hates broccoli").allowed
    assert not screen.check("a story with a gun").allowed
    assert screen.check("a cat finds a ball").allowed


# ------------------------------------------------------------------------------------------------ validation
def test_imagine_parameters_are_validated_and_normalised(config) -> None:
    params = imagine_params(
        config, BannedWords([]), prompt="  a (cat:1.2)  ", negative=None, aspect_ratio=" 16:9 ", steps=STEPS_MAX
    )
    assert (params.prompt, params.negative_prompt, params.aspect_ratio, params.num_inference_steps) == (
        "a (cat:1.2)",
        "",
        "16:9",
        STEPS_MAX,
    )
    assert params.safety_checker is True
    for bad in [
        dict(prompt=""),
        dict(prompt="a", steps=STEPS_MIN - 1),
        dict(prompt="a", aspect_ratio="wide"),
        dict(prompt="a", seed=2**32),
        dict(prompt="(a:9)"),
        dict(prompt="a" * (config.image.max_prompt_chars + 1)),
    ]:
        with pytest.raises(InvalidInput):
            imagine_params(config, BannedWords([]), **bad)


def test_story_parameters_are_validated(config) -> None:
    screen = story_screen([])
    params = story_params(config, screen, summary=" a duck learns to swim ", pages=2, style="CRAYON", character=" ")
    assert (params.summary, params.pages, params.style, params.character) == (
        "a duck learns to swim",
        2,
        "crayon",
        None,
    )
    assert story_params(config, screen, summary="a duck", continue_from=4).continue_from == 4
    for bad in [
        dict(summary=""),
        dict(summary="a duck", pages=0),
        dict(summary="a duck", style="oil"),
        dict(summary="bloody duck"),
    ]:
        with pytest.raises(InvalidInput):
            story_params(config, screen, **bad)
    assert parse_pages(" 3 ") == 3 and parse_pages("") is None
    with pytest.raises(InvalidInput):
        parse_pages("three")


# ------------------------------------------------------------------------------------------------ texts and errors
def test_user_text_cannot_mention_everyone_or_break_markdown() -> None:
    quoted = texts.quote("@everyone look at **this** <@123>")
    assert "@everyone" not in quoted and "\\*\\*" in quoted
    assert len(texts.fit("x" * 5000)) == texts.MAX_CONTENT
    assert len(texts.thread_name("word " * 100)) <= 100 and texts.thread_name("   ") == "storyloom"
    assert texts.duration(42) == "about 42 s" and texts.duration(150) == "about 2 min" and texts.duration(None) == ""


def test_errors_are_one_short_line_with_the_job() -> None:
    assert user_line(QueueFull("you already have 5 jobs waiting"), 12) == "⚠️ you already have 5 jobs waiting (job 12)"
    assert user_line(KeyError("secret internals")) == "⚠️ something went wrong on our side; it has been logged"
    assert len(user_line(InvalidInput("x" * 1000))) < 320


def test_the_token_is_scrubbed_from_log_records() -> None:
    token = "MTIz.abc.defghijklmnopqrstuvwxyz"
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "token is %s", (token,), None)
    record.exc_text = f"Traceback: {token}"
    RedactSecrets([token]).filter(record)
    assert token not in record.getMessage() + record.exc_text and "<redacted>" in record.getMessage()


# ------------------------------------------------------------------------------------------------ buttons and nonces
async def test_every_button_round_trips_through_its_custom_id() -> None:
    items = [
        *buttons.grid_buttons(12345),
        *buttons.upscaled_buttons(7),
        *buttons.page_buttons(99),
        *buttons.book_buttons(5),
        *buttons.describe_buttons(77, 4),
        *buttons.square_picker(41, 1, 0b100_010_001),
        *buttons.region_preview_buttons(42),
        *buttons.region_retry_buttons(43, 2),
        *buttons.fixed_page_buttons(44),
    ]
    for item in items:
        custom_id = item.custom_id
        assert custom_id.startswith("sl:") and len(custom_id) <= 100
        matches = [cls for cls in buttons.ALL_BUTTONS if cls.__discord_ui_compiled_template__.fullmatch(custom_id)]
        assert matches == [type(item)], custom_id
        match = type(item).__discord_ui_compiled_template__.fullmatch(custom_id)
        again = await type(item).from_custom_id(None, item.item, match)
        assert again.custom_id == custom_id and again.job_id == item.job_id
    view = buttons.frozen_view(buttons.grid_buttons(3))
    assert view.is_finished()  # so discord.py does not keep it and dispatch presses twice
    rows = view.to_components()
    assert [[c["custom_id"] for c in row["components"]] for row in rows] == [
        ["sl:u:3:1", "sl:u:3:2", "sl:u:3:3", "sl:u:3:4", "sl:r:3"],
        ["sl:v:3:1", "sl:v:3:2", "sl:v:3:3", "sl:v:3:4"],
        ["sl:dm:3", "sl:del:3"],
    ]


def test_part_nonces_fit_discord_and_differ_per_message() -> None:
    nonce = new_nonce(123456789)
    parts = {part_nonce(nonce, index) for index in range(20)}
    assert len(parts) == 20 and all(len(p) <= 25 for p in parts)
