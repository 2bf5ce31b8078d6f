"""``storyloom models make-tiny DIR`` and ``storyloom models download``."""

from __future__ import annotations

import argparse
from pathlib import Path

from storyloom.config import Config


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    parser = subparsers.add_parser("models", help="build tiny models or download the real ones")
    actions = parser.add_subparsers(dest="models_command", required=True, metavar="ACTION")

    make_tiny = actions.add_parser("make-tiny", help="build seeded tiny models (seconds, no downloads)")
    make_tiny.add_argument("directory", type=Path, nargs="?", default=None, help="default: <data_dir>/tiny-models")
    make_tiny.add_argument("--seed", type=int, default=0)
    make_tiny.add_argument("--force", action="store_true", help="rebuild models that already exist")
    add_common_options(make_tiny)
    make_tiny.set_defaults(handler=make_tiny_command)

    download = actions.add_parser("download", help="fetch the configured models into the Hugging Face cache")
    add_common_options(download)
    download.set_defaults(handler=download_command)


def make_tiny_command(config: Config, args: argparse.Namespace) -> int:
    from storyloom.models.runtime.tiny import make_tiny_models

    paths = make_tiny_models(args.directory or config.tiny_models_dir, args.seed, force=args.force)
    for path in (
        paths.sd15,
        paths.controlnet,
        paths.hed_annotator,
        paths.esrgan,
        paths.llama,
        paths.vits_en,
        paths.vits_zh,
        paths.ip_adapter,
        paths.blip,
        paths.clip,
    ):
        print(path)
    return 0


def download_command(config: Config, args: argparse.Namespace) -> int:
    from storyloom.models.runtime.download import configured_models, download_model

    for spec in configured_models(config):
        print(f"{spec.role}: {spec.name}")
        print(f"  -> {download_model(spec)}")
    return 0
