"""``storyloom imagine`` and ``storyloom vary``: the image commands, on the terminal.

Arguments are checked before any model loads, so a typo costs no waiting; torch and diffusers are imported
only when a command actually runs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyloom.cli.progress_bar import ProgressBar
from storyloom.config import Config
from storyloom.errors import InvalidInput

if TYPE_CHECKING:
    from storyloom.models.image.txt2img import ImageBatch


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    imagine = subparsers.add_parser(
        "imagine",
        help="make a 2x2 grid of four images from a prompt",
        description="Make four images from PROMPT (AUTOMATIC1111 syntax: ((x)), (x:1.3), [x], [from:to:0.5], "
        "[a|b], a AND b; Midjourney flags at its end: --no, --ar, --seed, --chaos, --stylize, --tile, --repeat; "
        "{a, b} permutations); writes grid.png and image_1..4.png with their parameters.",
    )
    imagine.add_argument("prompt", help="what to draw")
    imagine.add_argument("--negative", default="", help="what to avoid (negative prompt)")
    imagine.add_argument(
        "--seed", type=int, default=None, help="seed of the first image (the others use seed+1..seed+3)"
    )
    imagine.add_argument("--steps", type=int, default=None, help="denoising steps (default from the config)")
    imagine.add_argument(
        "--ar", dest="aspect_ratio", default=None, metavar="W:H", help="aspect ratio, e.g. 16:9 or 2:3"
    )
    imagine.add_argument(
        "--character", default=None, help="a registered character (its LoRA and words, its reference picture)"
    )
    imagine.add_argument(
        "--model", default=None, help="one of the extra checkpoints named in the config (models.checkpoints)"
    )
    imagine.add_argument("--out", type=Path, default=None, help="output directory (default: <data_dir>/images/<time>)")
    add_common_options(imagine)
    imagine.set_defaults(handler=run_imagine)

    vary = subparsers.add_parser(
        "vary",
        help="make four variations of an image",
        description="Make four variations of IMAGE, steered by the prompt stored in it (or --prompt).",
    )
    vary.add_argument("image", type=Path, help="source image (PNG, JPEG or WebP)")
    vary.add_argument(
        "--strength", default="subtle", choices=("subtle", "strong"), help="how far the variations may wander"
    )
    vary.add_argument("--prompt", default=None, help="prompt to use instead of the one stored in the image")
    vary.add_argument("--negative", default=None, help="negative prompt to use instead of the stored one")
    vary.add_argument("--seed", type=int, default=None, help="seed of the first variation")
    vary.add_argument("--out", type=Path, default=None, help="output directory (default: <data_dir>/images/<time>)")
    add_common_options(vary)
    vary.set_defaults(handler=run_vary)


def run_imagine(config: Config, args: argparse.Namespace) -> int:
    from storyloom.domain.prompt_flags import either, guidance_for_stylize, imagine_requests, joined_negative
    from storyloom.domain.prompts import validate_prompt
    from storyloom.domain.sizes import size_for_aspect_ratio

    # Fail fast on bad input, before seconds of model loading. Flags in the prompt (--ar, --no, --chaos, …)
    # and {a, b} permutations work as in /imagine: one grid per permutation and --repeat.
    max_chars = config.image.max_prompt_chars
    jobs = []
    for request in imagine_requests(args.prompt):
        negative = joined_negative(args.negative, request.negative)
        aspect_ratio = either("aspect ratio", "ar", args.aspect_ratio, request.aspect_ratio)
        seed = either("seed", "seed", args.seed, request.seed)
        validate_prompt(request.prompt, max_chars=max_chars, known_loras=config.models.loras)
        validate_prompt(negative, max_chars=max_chars, name="negative prompt", allow_empty=True, negative=True)
        if aspect_ratio:
            size_for_aspect_ratio(aspect_ratio, config.image.width, config.image.height)
        _check_numbers(config, args.steps, seed)
        guidance = (
            None if request.stylize is None else guidance_for_stylize(request.stylize, config.image.guidance_scale)
        )
        jobs.append((request, negative, aspect_ratio, seed, guidance))
    if args.model is not None and args.model not in config.models.checkpoints:
        known = ", ".join(sorted(config.models.checkpoints)) or "none are configured"
        raise InvalidInput(f"unknown model {args.model!r}; the known models: {known}")
    from storyloom.worker.handlers.characters import stored_reference_picture

    record = _character(config, args.character) if args.character else None
    picture = None if record is None else stored_reference_picture(config, record)

    from storyloom.models.image.txt2img import Txt2Img
    from storyloom.worker.handlers.characters import drawing_placed

    # A character's reference picture guides the whole picture, as its LoRA does (both when it has both).
    placed = [] if record is None else [(record, "whole")]
    txt2img = Txt2Img.from_config(config, checkpoint=args.model)
    out = args.out or _default_out(config)
    for number, (request, negative, aspect_ratio, seed, guidance) in enumerate(jobs, start=1):
        with (
            ProgressBar("imagine") as bar,
            drawing_placed(txt2img, placed, lambda _record: picture, config) as character,
        ):
            batch = txt2img(
                character.prompt(request.prompt),
                negative,
                num_inference_steps=args.steps,
                guidance_scale=guidance,
                aspect_ratio=aspect_ratio,
                seed=seed,
                chaos=request.chaos,
                tile=request.tile,
                progress=bar,
            )
        batch = character.tagged(batch)
        _report(batch, batch.save(out if len(jobs) == 1 else out / f"{number:02d}"))
    return 0


def run_vary(config: Config, args: argparse.Namespace) -> int:
    from storyloom.domain.prompts import validate_prompt
    from storyloom.models.image.imaging import read_image_file

    source = read_image_file(args.image)
    max_chars = config.image.max_prompt_chars
    if args.prompt is not None:
        validate_prompt(args.prompt, max_chars=max_chars, allow_empty=True)
    if args.negative is not None:
        validate_prompt(args.negative, max_chars=max_chars, name="negative prompt", allow_empty=True, negative=True)
    _check_numbers(config, None, args.seed)

    from storyloom.models.image.variations import Variations

    variations = Variations.from_config(config)
    with ProgressBar("vary") as bar:
        batch = variations(source, args.prompt, args.negative, strength=args.strength, seed=args.seed, progress=bar)
    _report(batch, batch.save(args.out or _default_out(config)))
    return 0


def _character(config: Config, name: str) -> Any:
    """A character registered on this machine (``storyloom character list``): trained, from a picture, or both."""
    from storyloom.queue.store import JobStore

    with JobStore.from_config(config) as store:
        return store.character(name)


def _check_numbers(config: Config, steps: int | None, seed: int | None) -> None:
    from storyloom.models.image.sd_task import check_common_inputs

    check_common_inputs(
        num_inference_steps=config.image.steps if steps is None else steps,
        guidance_scale=config.image.guidance_scale,
        seed=seed,
        num_images=config.image.batch_size,
    )


def _default_out(config: Config) -> Path:
    return config.paths.data_dir / "images" / time.strftime("%Y%m%d-%H%M%S")


def _report(batch: ImageBatch, paths: list[Path]) -> None:
    print(f"grid: {paths[0]}")
    for number, (path, seed, flagged) in enumerate(zip(paths[1:], batch.seeds, batch.nsfw), start=1):
        note = "  (flagged by the safety checker: blurred)" if flagged else ""
        print(f"image {number}: {path}  seed {seed}{note}")
