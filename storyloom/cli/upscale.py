"""``storyloom upscale IMAGE``: the upscale chain (or Real-ESRGAN alone) on the terminal.

The image and prompt are checked before any model loads, so a wrong path costs no waiting.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from storyloom.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    parser = subparsers.add_parser(
        "upscale",
        help="upscale an image 8x (ControlNet img2img 2x, then Real-ESRGAN 4x) or 4x with Real-ESRGAN only",
        description="Upscale IMAGE. The chain re-draws it at 2x with its own prompt (stored in the PNG, or --prompt) "
        "guided by a ControlNet, then enlarges it 4x with Real-ESRGAN; --mode esrgan only enlarges it.",
    )
    parser.add_argument("image", type=Path, help="source image (PNG, JPEG or WebP)")
    parser.add_argument("--prompt", default=None, help="prompt to use instead of the one stored in the image")
    parser.add_argument("--negative", default=None, help="negative prompt to use instead of the stored one")
    parser.add_argument("--mode", choices=("chain", "esrgan"), default=None, help="default from the config (chain)")
    parser.add_argument(
        "--controlnet", choices=("tile", "hed"), default=None, help="ControlNet of the chain (default from the config)"
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the re-drawing (random when omitted)")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: <data_dir>/images/<time>)")
    add_common_options(parser)
    parser.set_defaults(handler=run_upscale)


def run_upscale(config: Config, args: argparse.Namespace) -> int:
    from storyloom.domain.prompts import validate_prompt
    from storyloom.models.image.sd_task import check_common_inputs
    from storyloom.models.image.upscale import Upscaler, open_upscale_source

    mode = args.mode or config.upscale.mode
    # Fail fast on bad input, before seconds of model loading.
    source = open_upscale_source(args.image, mode=mode)
    max_chars = config.image.max_prompt_chars
    if args.prompt is not None:
        validate_prompt(args.prompt, max_chars=max_chars)
    if args.negative is not None:
        validate_prompt(args.negative, max_chars=max_chars, name="negative prompt", allow_empty=True, negative=True)
    check_common_inputs(
        num_inference_steps=config.upscale.steps,
        guidance_scale=config.image.guidance_scale,
        seed=args.seed,
        num_images=1,
    )

    from storyloom.cli.progress_bar import ProgressBar

    upscaler = Upscaler.from_config(config, controlnet=args.controlnet, mode=mode)
    with ProgressBar(f"upscale ({mode})") as bar:
        result = upscaler(
            source, prompt=args.prompt, negative_prompt=args.negative, mode=mode, seed=args.seed, progress=bar
        )
    out = args.out or config.paths.data_dir / "images" / time.strftime("%Y%m%d-%H%M%S")
    path = result.save(out / f"{args.image.stem}_{mode}_x{result.image.width // source.width}.png")
    note = "  (flagged by the safety checker: blurred)" if result.nsfw else ""
    seed = f"  seed {result.parameters.seed}" if mode == "chain" else ""
    print(f"upscaled {source.width}x{source.height} -> {result.image.width}x{result.image.height}: {path}{seed}{note}")
    return 0
