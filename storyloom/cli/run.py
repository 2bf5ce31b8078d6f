"""``storyloom run``: the Discord bot and a supervisor keeping one worker per device, in one command.

``storyloom run --bot-only`` runs just the bot, for when workers run elsewhere on the same store. The bot
process itself never imports torch: workers are separate processes. The token is read from ``DISCORD_TOKEN``
only (never from the config) and is scrubbed from every log line.

The supervisor runs in a daemon thread of the bot's process, watched from the bot's event loop: if it dies the
log says so, ``/status`` shows it, and it is started again; after ``MAX_SUPERVISOR_RESTARTS`` deaths within
``SUPERVISOR_RESTART_WINDOW`` seconds the command stops with status 1 instead of queueing jobs that no worker
will run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from storyloom.config import Config
from storyloom.errors import StoryloomError

if TYPE_CHECKING:
    from storyloom.worker.supervisor import Supervisor

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "DISCORD_TOKEN"
NO_TOKEN = (
    "storyloom run: DISCORD_TOKEN is not set. Create an application and its bot at "
    "https://discord.com/developers/applications (Bot → Reset Token), invite it with the 'bot' and "
    "'applications.commands' scopes, then run: export DISCORD_TOKEN=<the bot token>"
)
SUPERVISOR_JOIN_SECONDS = 60.0
SUPERVISOR_WATCH_SECONDS = 1.0
MAX_SUPERVISOR_RESTARTS = 3
SUPERVISOR_RESTART_WINDOW = 600.0


def register(subparsers: argparse._SubParsersAction) -> None:
    from storyloom.cli.main import add_common_options

    parser = subparsers.add_parser(
        "run",
        help="run the Discord bot and its workers",
        description="Run the Discord bot and one supervised worker per device (worker.devices). "
        "The bot token is read from the DISCORD_TOKEN environment variable.",
    )
    parser.add_argument(
        "--bot-only", action="store_true", help="run only the bot; workers run elsewhere on the same store"
    )
    parser.add_argument("--devices", default=None, help="comma-separated worker devices (default: worker.devices)")
    add_common_options(parser)
    parser.set_defaults(handler=run_command)


def run_command(config: Config, args: argparse.Namespace) -> int:
    token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        print(NO_TOKEN, file=sys.stderr)
        return 2
    from storyloom.bot.errors import install_redaction
    from storyloom.queue.store import JobStore

    install_redaction(token)
    # A corrupt, foreign or newer database stops the command here with its one line, before any thread starts.
    JobStore.from_config(config).close()
    supervision = None if args.bot_only else WorkerSupervision(_supervisor_factory(config, args.devices))
    if supervision is not None:
        supervision.start()
    try:
        code = asyncio.run(_serve(config, token, supervision))
    finally:
        if supervision is not None:
            logger.info("stopping the workers")
            supervision.stop(SUPERVISOR_JOIN_SECONDS)
    if supervision is not None and supervision.gave_up:
        print(f"storyloom run: {supervision.problem()}", file=sys.stderr)
        return 1
    return code


def _supervisor_factory(config: Config, devices_arg: str | None) -> Callable[[], Supervisor]:
    from storyloom.worker.supervisor import Supervisor

    devices = [d.strip() for d in devices_arg.split(",") if d.strip()] if devices_arg else list(config.worker.devices)
    if not devices:
        raise StoryloomError("no worker devices; use --devices cpu, set worker.devices, or run with --bot-only")
    return lambda: Supervisor(config, devices)


class WorkerSupervision:
    """The workers' supervisor in a daemon thread, restarted from the bot's event loop when it dies."""

    def __init__(
        self,
        make_supervisor: Callable[[], Supervisor],
        *,
        max_restarts: int = MAX_SUPERVISOR_RESTARTS,
        restart_window: float = SUPERVISOR_RESTART_WINDOW,
        watch_seconds: float = SUPERVISOR_WATCH_SECONDS,
    ) -> None:
        self._make_supervisor = make_supervisor
        self._max_restarts = max_restarts
        self._restart_window = restart_window
        self._watch_seconds = watch_seconds
        self._supervisor: Supervisor | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._last_error = ""  # why the last supervisor died, written by its thread
        self._deaths: list[float] = []
        self._problem: str | None = None
        self.gave_up = False

    def start(self) -> None:
        supervisor = self._make_supervisor()
        self._supervisor = supervisor
        self._thread = threading.Thread(target=self._supervise, args=(supervisor,), name="storyloom-supervisor")
        self._thread.daemon = True
        self._thread.start()

    def _supervise(self, supervisor: Supervisor) -> None:
        try:
            supervisor.run()
        except Exception as exc:
            self._last_error = f"{type(exc).__name__}: {exc}"
            logger.exception("the workers' supervisor failed")
        else:
            self._last_error = "it stopped without being asked to"

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def problem(self) -> str | None:
        """What ``/status`` shows about the workers' supervisor (None while it has never failed)."""
        return self._problem

    def check(self) -> bool:
        """Restart a dead supervisor; False once it died too often (and is left dead)."""
        if self._stopping or self.alive or self.gave_up:
            return not self.gave_up
        now = time.monotonic()
        self._deaths = [when for when in self._deaths if now - when < self._restart_window] + [now]
        reason = self._last_error or "unknown reason"
        if len(self._deaths) > self._max_restarts:
            self.gave_up = True
            self._problem = (
                f"the workers' supervisor failed {len(self._deaths)} times within {self._restart_window:g} s "
                f"(last: {reason}); stopping"
            )
            logger.error("%s", self._problem)
            return False
        stamp = time.strftime("%H:%M:%S")
        self._problem = f"the workers' supervisor failed at {stamp} ({reason}) and was restarted"
        logger.error("the workers' supervisor died (%s); restarting it", reason)
        self.start()
        return True

    async def watch(self, stop: asyncio.Event) -> None:
        """Check every ``watch_seconds`` until ``stop``; set ``stop`` when the supervisor cannot be kept alive."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self._watch_seconds)
            except TimeoutError:
                pass
            if not stop.is_set() and not self.check():
                stop.set()

    def stop(self, timeout: float) -> None:
        self._stopping = True
        if self._supervisor is not None:
            self._supervisor.stop()
        if self._thread is not None:
            self._thread.join(timeout)


async def _serve(config: Config, token: str, supervision: WorkerSupervision | None) -> int:
    import discord

    from storyloom.bot.app import run_bot

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.create_task(supervision.watch(stop)) if supervision is not None else None
    try:
        await run_bot(config, token, stop=stop, worker_health=supervision.problem if supervision else None)
    except discord.LoginFailure:
        print(
            "storyloom run: Discord refused the token in DISCORD_TOKEN; copy it again from the developer portal",
            file=sys.stderr,
        )
        return 2
    except discord.PrivilegedIntentsRequired:
        print("storyloom run: Discord refused the gateway intents the bot asked for", file=sys.stderr)
        return 2
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
    return 0
