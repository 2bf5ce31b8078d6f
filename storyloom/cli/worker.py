"""``storyloom worker``: run jobs from the queue.

- ``storyloom worker --device cuda:0``: one worker process on one device, in the foreground.
- ``storyloom worker [--devices cpu,cpu]``: a supervisor that keeps one worker per device running
  (default: ``worker.devices`` from the config) and restarts any that dies.

SIGTERM or Ctrl-C stops cleanly: the running job goes back to the queue and nothing is lost.
``python -m storyloom.worker`` is the same command without the rest of the CLI (what the supervisor spawns).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence

from storyloom.config import Config
from storyloom.errors import StoryloomError

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker",
        help="run queued jobs (one process per device, supervised)",
        description="Run queued jobs. With --device, one worker on that device; otherwise one supervised "
        "worker per device (--devices, or worker.devices from the config).",
    )
    add_worker_arguments(parser)
    parser.set_defaults(handler=run_worker_command)


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    from storyloom.cli.main import add_common_options

    where = parser.add_mutually_exclusive_group()
    where.add_argument("--device", default=None, help="run one worker on this device (cpu, cuda, cuda:1, mps, auto)")
    where.add_argument("--devices", default=None, help="comma-separated devices, one supervised worker each")
    parser.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)  # set by the supervisor
    parser.add_argument(
        "--handlers",
        action="append",
        default=[],
        metavar="MODULE:NAME",
        help="replace job handlers with the mapping MODULE:NAME (tests and benchmarks)",
    )
    add_common_options(parser)


def run_worker_command(config: Config, args: argparse.Namespace) -> int:
    stop = threading.Event()
    _stop_on_signals(stop)
    if args.device is not None:
        return run_single_worker(config, args.device, args.handlers, stop, supervised=args.supervised)
    devices = [d.strip() for d in args.devices.split(",") if d.strip()] if args.devices else list(config.worker.devices)
    if not devices:
        raise StoryloomError("no devices given; use --devices cpu or set worker.devices in the config")
    from storyloom.worker.supervisor import Supervisor

    Supervisor(config, devices, handler_specs=args.handlers, stop=stop).run()
    return 0


def run_single_worker(
    config: Config, device: str, handler_specs: Sequence[str], stop: threading.Event, *, supervised: bool = False
) -> int:
    from storyloom.queue.store import JobStore
    from storyloom.worker.registry import build_handlers
    from storyloom.worker.resources import ModelResources
    from storyloom.worker.runner import Worker

    if device != "auto":
        config = config.model_copy(update={"device": config.device.model_copy(update={"device": device})})
    handlers = build_handlers(handler_specs)
    JobStore.from_config(config).close()  # a corrupt or newer database stops us here, with its message
    resources = ModelResources(config)
    parent = os.getppid() if supervised else None
    try:
        Worker(
            config,
            lambda: JobStore.from_config(config),
            handlers,
            resources,
            device=device,
            stop=stop,
            parent_pid=parent,
        ).run()
    finally:
        resources.close()
    return 0


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, frame: object) -> None:
        logger.info("received %s; stopping after handing back the running job", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m storyloom.worker``."""
    from storyloom.cli.main import config_from_args

    parser = argparse.ArgumentParser(prog="storyloom worker", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s",
    )
    try:
        return run_worker_command(config_from_args(args), args)
    except StoryloomError as exc:
        print(f"storyloom worker: {exc}", file=sys.stderr)
        return 2
