"""Turning slash-command options into job parameters, refusing bad input before anything is queued.

Everything here is pure and fast (no store, no network), so it runs before the interaction is acknowledged
and a refusal can be an ephemeral message. The rules are the ones the pipelines apply (reused from the
torch-free parts of ``storyloom.models``), checked early so a worker never meets a request it would refuse.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from storyloom.bot.safety import BannedWords
from storyloom.config import Config, ImageConfig
from storyloom.domain.prompt_flags import either, guidance_for_stylize, imagine_requests, joined_negative
from storyloom.domain.prompts import validate_prompt
from storyloom.domain.seeds import check_seed
from storyloom.domain.sizes import parse_aspect_ratio
from storyloom.domain.story.checks import character_names, check_story_inputs
from storyloom.domain.story.plan import Character
from storyloom.domain.story.safety import SafetyScreen
from storyloom.errors import InvalidInput
from storyloom.queue.params import ImagineParams, StoryParams


def field_bounds(model: type[BaseModel], name: str) -> tuple[int, int]:
    """The ``ge``/``le`` bounds pydantic declares for ``model.name`` (one source of truth for limits)."""
    low, high = 1, 10_000
    for item in model.model_fields[name].metadata:
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    return int(low), int(high)


STEPS_MIN, STEPS_MAX = field_bounds(ImageConfig, "steps")


def imagine_params(
    config: Config,
    banned: BannedWords,
    *,
    prompt: str,
    negative: str | None = None,
    aspect_ratio: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    safety_checker: bool | None = True,
    character: str | None = None,
    model: str | None = None,
) -> ImagineParams:
    """Validated ``imagine`` parameters, or ``InvalidInput`` with a message fit for the user.

    Whether ``character`` names a trained character is checked by the command against the store; ``model`` and
    the prompt's ``<lora:…>`` tags must name configured checkpoints and LoRAs."""
    limit = config.image.max_prompt_chars
    validate_prompt(prompt, max_chars=limit, known_loras=config.models.loras)
    model = model.strip() if model and model.strip() else None
    if model is not None and model not in config.models.checkpoints:
        known = ", ".join(sorted(config.models.checkpoints)) or "none are configured"
        raise InvalidInput(f"unknown model {model!r}; the known models: {known}")
    banned.ensure_allowed(prompt)
    negative = negative or ""
    validate_prompt(negative, max_chars=limit, name="negative prompt", allow_empty=True, negative=True)
    if aspect_ratio is not None and aspect_ratio.strip():
        parse_aspect_ratio(aspect_ratio)
        aspect_ratio = aspect_ratio.strip()
    else:
        aspect_ratio = None
    check_seed(seed)
    if steps is not None and not STEPS_MIN <= steps <= STEPS_MAX:
        raise InvalidInput(f"steps must be between {STEPS_MIN} and {STEPS_MAX} (got {steps})")
    return ImagineParams(
        prompt=prompt.strip(),
        negative_prompt=negative.strip(),
        seed=seed,
        num_inference_steps=steps,
        aspect_ratio=aspect_ratio,
        safety_checker=safety_checker,
        character=character.strip() if character and character.strip() else None,
        model=model,
    )


def imagine_jobs(
    config: Config,
    banned: BannedWords,
    *,
    prompt: str,
    negative: str | None = None,
    aspect_ratio: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    safety_checker: bool | None = True,
    character: str | None = None,
    model: str | None = None,
) -> list[ImagineParams]:
    """``imagine`` parameters for each job the prompt asks for: Midjourney's flags at its end (``--ar 16:9
    --no people --chaos 20 --stylize 250 --tile --seed 7``) and ``{a, b}`` permutations and ``--repeat N``,
    which make several jobs. A flag and the command's own option for the same thing must not disagree."""
    jobs = []
    for request in imagine_requests(prompt):
        params = imagine_params(
            config, banned, prompt=request.prompt,
            negative=joined_negative(negative, request.negative) or None,
            aspect_ratio=either("aspect ratio", "ar", aspect_ratio, request.aspect_ratio),
            seed=either("seed", "seed", seed, request.seed),
            steps=steps, safety_checker=safety_checker, character=character, model=model,
        )  # fmt: skip
        guidance = None
        if request.stylize is not None:
            guidance = guidance_for_stylize(request.stylize, config.image.guidance_scale)
        jobs.append(
            params.model_copy(update={"guidance_scale": guidance, "chaos": request.chaos, "tile": request.tile})
        )
    cap = config.queue.max_waiting_per_user
    if len(jobs) > cap:
        raise InvalidInput(f"this prompt makes {len(jobs)} jobs, more than the {cap} you can have waiting at once")
    return jobs


def story_params(
    config: Config,
    screen: SafetyScreen,
    *,
    summary: str,
    pages: int | None = None,
    style: str | None = None,
    character: str | None = None,
    seed: int | None = None,
    continue_from: int | None = None,
    safety_checker: bool | None = None,
    characters: Sequence[str | None] = (),
    consistent: bool | None = None,
) -> StoryParams:
    """Validated ``story`` parameters (kid-safety screened), or ``InvalidInput``; ``characters`` (and the one
    ``character``) are up to three registered names, a fourth refused naming the limit.

    Whether the names are registered characters is checked by the caller against the store (and again by the
    workers)."""
    names = character_names([*characters, character])
    inputs = check_story_inputs(config.story, screen, _any_character, summary, pages, style or None, names, seed)
    return StoryParams(
        summary=inputs.summary,
        pages=pages,
        style=inputs.style.name if style else None,
        characters=names,
        consistent=consistent,
        seed=seed,
        continue_from=continue_from,
        safety_checker=safety_checker,
    )


def parse_pages(text: str | None) -> int | None:
    """A page count typed into a form (blank: the default)."""
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise InvalidInput(f"pages must be a whole number (got {text.strip()!r})") from None


def _any_character(name: str) -> Character:
    return Character(name=name, identifier="", class_name="")
