"""``storyloom run``: the Discord bot and a supervisor keeping one worker per device, in one command.

``storyloom run --bot-only`` runs just the bot, for when workers run elsewhere on the same store. The bot
process itself never imports torch: workers are separate processes. The token is read from ``DISCORD_TOKEN``
only (never from the config) and is scrubbed from every log line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading

from storyloom.config import Config
from storyloom.errors import StoryloomError

logger = logging.getLogger(__name__)

TOKEN_VARIABLE = "DISCORD_TOKEN"
NO_TOKEN = (
    "storyloom run: DISCORD_TOKEN is not set. Create an application and its bot at "
    "https://discord.com/developers/applications (Bot → Reset Token), invite it with the 'bot' and "
    "'applications.commands' scopes, then run: export DISCORD_TOKEN=<the bot token>"
)
SUPERVISOR_JOIN_SECONDS = 60.0


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

    install_redaction(token)
    supervisor, thread = None, None
    if not args.bot_only:
        supervisor, thread = _start_workers(config, args.devices)
    try:
        return asyncio.run(_serve(config, token))
    finally:
        if supervisor is not None and thread is not None:
            logger.info("stopping the workers")
            supervisor.stop()
            thread.join(SUPERVISOR_JOIN_SECONDS)


def _start_workers(config: Config, devices_arg: str | None):
    from storyloom.worker.supervisor import Supervisor

    devices = [d.strip() for d in devices_arg.split(",") if d.strip()] if devices_arg else list(config.worker.devices)
    if not devices:
        raise StoryloomError("no worker devices; use --devices cpu, set worker.devices, or run with --bot-only")
    supervisor = Supervisor(config, devices)
    thread = threading.Thread(target=supervisor.run, name="storyloom-supervisor", daemon=True)
    thread.start()
    return supervisor, thread


async def _serve(config: Config, token: str) -> int:
    import discord

    from storyloom.bot.app import run_bot

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await run_bot(config, token, stop=stop)
    except discord.LoginFailure:
        print(
            "storyloom run: Discord refused the token in DISCORD_TOKEN; copy it again from the developer portal",
            file=sys.stderr,
        )
        return 2
    except discord.PrivilegedIntentsRequired:
        print("storyloom run: Discord refused the gateway intents the bot asked for", file=sys.stderr)
        return 2
    return 0
