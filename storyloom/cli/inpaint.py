"""``storyloom inpaint IMAGE`` (redraw a region named in words or chosen by grid cells) and ``storyloom outpaint
IMAGE`` (Zoom Out or Pan): Vary (Region) and the growing buttons on the terminal.

The picture, the region's choice, the zoom or direction and the result's size are checked before any model loads.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from storyloom.config import Config
from storyloom.errors import InvalidInput


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    inpaint = subparsers.add_parser(
        "inpaint",
        help="redraw part of a picture (Vary Region)",
        description="Redraw the part of IMAGE named by --region (found by CLIPSeg) or covered by --cells of the 3×3 "
        "grid, as --prompt describes; everything outside it stays exactly as it was. Prints how much of the picture "
        "the region covers and saves the redrawn picture and a preview of the region.",
    )
    inpaint.add_argument("image", type=Path, help="the picture (PNG, JPEG or WebP)")
    where = inpaint.add_mutually_exclusive_group(required=True)
    where.add_argument("--region", help='what to change, in a few words ("the hat")')
    where.add_argument("--cells", help="cells of the 3×3 grid, 1–9 row by row from the top-left (e.g. 1,2)")
    inpaint.add_argument("--prompt", required=True, help='what to draw there ("a golden crown")')
    inpaint.add_argument("--negative", default="", help="negative prompt")
    inpaint.add_argument("--seed", type=int, default=None, help="seed (random when omitted)")
    inpaint.add_argument("--out", type=Path, default=None, help="output directory (default: <data_dir>/images/<time>)")
    add_common_options(inpaint)
    inpaint.set_defaults(handler=run_inpaint)

    outpaint = subparsers.add_parser(
        "outpaint",
        help="grow a picture (Zoom Out or Pan)",
        description="Grow IMAGE: --zoom 1.1 to 2 zooms out around it, --pan extends one side by half; the new area "
        "is drawn from --prompt (default: the prompt stored in the picture) and the picture itself stays exact.",
    )
    outpaint.add_argument("image", type=Path, help="the picture (PNG, JPEG or WebP)")
    growth = outpaint.add_mutually_exclusive_group(required=True)
    growth.add_argument("--zoom", help="Zoom Out factor from 1.1 to 2 (e.g. 1.5 or 2)")
    growth.add_argument("--pan", choices=("left", "right", "up", "down"), help="the side to extend")
    outpaint.add_argument("--prompt", default=None, help="prompt of the new area (default: the one stored in IMAGE)")
    outpaint.add_argument("--negative", default=None, help="negative prompt (default: the one stored in IMAGE)")
    outpaint.add_argument("--seed", type=int, default=None, help="seed (random when omitted)")
    outpaint.add_argument(
        "--fit", action="store_true",
        help="when the grown picture would be larger than [inpaint] allows, grow a scaled-down copy instead",
    )  # fmt: skip
    outpaint.add_argument("--out", type=Path, default=None, help="output directory (default: <data_dir>/images/<time>)")
    add_common_options(outpaint)
    outpaint.set_defaults(handler=run_outpaint)


def run_inpaint(config: Config, args: argparse.Namespace) -> int:
    from storyloom.domain.prompts import validate_prompt
    from storyloom.domain.regions import EMPTY_REGION, check_region_words, parse_cells
    from storyloom.domain.seeds import check_seed

    picture = _open(args.image)
    words = check_region_words(args.region) if args.region is not None else None
    cells = parse_cells(args.cells) if args.cells is not None else None
    max_chars = config.image.max_prompt_chars
    validate_prompt(args.prompt, max_chars=max_chars)
    validate_prompt(args.negative, max_chars=max_chars, name="negative prompt", allow_empty=True, negative=True)
    check_seed(args.seed)

    from storyloom.cli.progress_bar import ProgressBar
    from storyloom.domain.parameters import save_png
    from storyloom.models.image.inpaint import Inpaint, RegionFinder
    from storyloom.models.runtime.loading import ModelCache

    cache = ModelCache()
    region = RegionFinder.from_config(config, cache).find(picture, words=words, cells=cells)
    out = args.out or config.paths.data_dir / "images" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    preview_path = out / f"{args.image.stem}_region.png"
    region.preview.save(preview_path)
    print(f"region: {region.coverage:.1%} of the picture (preview: {preview_path})")
    if region.empty:
        raise InvalidInput(EMPTY_REGION)
    with ProgressBar("inpaint") as bar:
        batch = Inpaint.from_config(config, cache)(
            picture, region.mask, args.prompt, args.negative, seed=args.seed, progress=bar
        )
    path = out / f"{args.image.stem}_inpainted.png"
    save_png(batch.images[0], path, batch.parameters[0])
    note = "  (flagged by the safety checker: blurred)" if batch.nsfw[0] else ""
    print(f"redrawn {picture.width}x{picture.height}: {path}  seed {batch.seeds[0]}{note}")
    return 0


def run_outpaint(config: Config, args: argparse.Namespace) -> int:
    from PIL import Image

    from storyloom.domain.prompts import validate_prompt
    from storyloom.domain.regions import check_result_size, fitted_source, outpaint_canvas, parse_zoom
    from storyloom.domain.seeds import check_seed

    picture = _open(args.image, keep_parameters=True)
    zoom = parse_zoom(args.zoom) if args.zoom is not None else None
    limits = config.inpaint
    if args.fit:
        size = fitted_source(
            picture.size, zoom=zoom, pan=args.pan, max_side=limits.max_result_side, max_pixels=limits.max_result_pixels
        )
        if size != picture.size:
            print(f"growing a copy scaled down from {picture.width}x{picture.height} to {size[0]}x{size[1]}")
            picture = picture.resize(size, Image.Resampling.LANCZOS)  # Pillow keeps the stored prompt in info
    canvas = outpaint_canvas(picture.size, zoom=zoom, pan=args.pan)
    try:
        check_result_size(canvas, max_side=limits.max_result_side, max_pixels=limits.max_result_pixels)
    except InvalidInput as exc:
        raise InvalidInput(f"{exc}; --fit grows a scaled-down copy instead") from None
    max_chars = config.image.max_prompt_chars
    if args.prompt is not None:
        validate_prompt(args.prompt, max_chars=max_chars)
    if args.negative is not None:
        validate_prompt(args.negative, max_chars=max_chars, name="negative prompt", allow_empty=True, negative=True)
    check_seed(args.seed)

    from storyloom.cli.progress_bar import ProgressBar
    from storyloom.domain.parameters import save_png
    from storyloom.models.image.inpaint import Outpaint

    with ProgressBar("outpaint") as bar:
        batch = Outpaint.from_config(config)(
            picture,
            zoom=zoom,
            pan=args.pan,
            prompt=args.prompt,
            negative_prompt=args.negative,
            seed=args.seed,
            progress=bar,
        )
    grown = batch.images[0]
    out = args.out or config.paths.data_dir / "images" / time.strftime("%Y%m%d-%H%M%S")
    out.mkdir(parents=True, exist_ok=True)
    how = f"zoom{zoom:g}" if zoom is not None else f"pan-{args.pan}"
    path = out / f"{args.image.stem}_{how}.png"
    save_png(grown, path, batch.parameters[0])
    note = "  (flagged by the safety checker: blurred)" if batch.nsfw[0] else ""
    print(
        f"grown {picture.width}x{picture.height} -> {grown.width}x{grown.height}: {path}  seed {batch.seeds[0]}{note}"
    )
    return 0


def _open(path: Path, *, keep_parameters: bool = False):
    """The picture at ``path``, checked as an upload is; with ``keep_parameters`` its PNG generation parameters
    (the prompt it was drawn from) stay attached."""
    from storyloom.domain.pictures import open_picture

    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    data = path.read_bytes()
    picture = open_picture(data, str(path))
    if keep_parameters:
        from storyloom.domain.parameters import PNG_KEY, read_png_parameters

        found = read_png_parameters(path)
        if found is not None:
            picture.info[PNG_KEY] = found.to_infotext()
    return picture
