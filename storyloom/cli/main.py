"""The ``storyloom`` command: one sub-command per module, each registering itself."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from storyloom.config import Config, load_config
from storyloom.errors import StoryloomError

# Each module has ``register(subparsers)``; a sub-command's handler is ``args.handler(config, args)``.
COMMAND_MODULES = (
    "storyloom.cli.images",
    "storyloom.cli.describe",
    "storyloom.cli.models",
    "storyloom.cli.upscale",
    "storyloom.cli.inpaint",
    "storyloom.cli.queue",
    "storyloom.cli.worker",
    "storyloom.cli.story",
    "storyloom.cli.narrate",
    "storyloom.cli.train",
    "storyloom.cli.run",
)

DEFAULT_CONFIG = Path("config.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="storyloom", description="Write and illustrate stories; Midjourney-style images."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """``--config`` and ``--profile``, accepted by every sub-command."""
    parser.add_argument("--config", type=Path, default=None, help="config file (default: ./config.toml if present)")
    parser.add_argument(
        "--profile", choices=("default", "tiny"), default=None, help="model profile; tiny runs on CPU with no downloads"
    )


def config_from_args(args: argparse.Namespace) -> Config:
    path = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    return load_config(path, profile=args.profile)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = config_from_args(args)
        return int(args.handler(config, args) or 0)
    except StoryloomError as exc:
        print(f"storyloom: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("storyloom: interrupted", file=sys.stderr)
        return 130
