"""``storyloom describe IMAGE``: four prompts that could have made a picture (a BLIP caption and CLIP-ranked words).

The picture is checked as the bot checks an upload before any model loads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from storyloom.config import Config
from storyloom.errors import InvalidInput


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    describe = subparsers.add_parser(
        "describe",
        help="suggest prompts for a picture",
        description="Suggest prompts that could have made IMAGE, best first: a caption of what is in it, then the "
        "mediums, artists, movements and flavours CLIP finds closest to it.",
    )
    describe.add_argument("image", type=Path, help="the picture (PNG, JPEG, WebP or a still GIF)")
    describe.add_argument("--count", type=int, default=4, help="how many suggestions (1 to 8, default 4)")
    describe.add_argument("--json", action="store_true", help="print the caption, prompts and scores as JSON")
    add_common_options(describe)
    describe.set_defaults(handler=run_describe)


def run_describe(config: Config, args: argparse.Namespace) -> int:
    from storyloom.domain.pictures import open_picture
    from storyloom.models.image.describe import MAX_SUGGESTIONS

    if not 1 <= args.count <= MAX_SUGGESTIONS:
        raise InvalidInput(f"--count must be between 1 and {MAX_SUGGESTIONS} (got {args.count})")
    path: Path = args.image
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    picture = open_picture(path.read_bytes(), str(path))

    from storyloom.models.image.describe import Describer

    described = Describer.from_config(config)(picture, args.count)
    if args.json:
        print(json.dumps(described.as_dict(), ensure_ascii=False, indent=2))
        return 0
    print(f"caption: {described.caption}")
    for number, prompt in enumerate(described.prompts, start=1):
        print(f"{number}. {prompt}")
    return 0
