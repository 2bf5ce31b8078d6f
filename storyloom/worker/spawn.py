"""How a supervisor starts a worker process with exactly its own configuration.

The resolved ``Config`` is handed down as ``STORYLOOM_<SECTION>__<KEY>`` variables (TOML literals), which
win over any ``config.toml`` the child might find: parent and children can never disagree about the
database or the models, whatever built the parent's config (file, profile, programmatic overrides).

A worker never talks to Discord, so it starts without the bot's secrets: ``storyloom run`` holds the bot
token in its own environment, and a child's environment is readable by anyone who can read
``/proc/<pid>/environ`` of a process that runs untrusted models and user pictures.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from storyloom.config import ENV_PREFIX, Config


def toml_literal(value: Any) -> str:
    """``value`` as a TOML literal: JSON's scalars and arrays are TOML already (``ensure_ascii=False`` keeps them
    so); objects become inline tables (``{ "key" = value }``)."""
    if isinstance(value, dict):
        items = ", ".join(
            f"{json.dumps(str(key), ensure_ascii=False)} = {toml_literal(item)}" for key, item in value.items()
        )
        return f"{{ {items} }}" if items else "{}"
    if isinstance(value, list):
        return f"[{', '.join(toml_literal(item) for item in value)}]"
    return json.dumps(value, ensure_ascii=False)


def config_environment(config: Config) -> dict[str, str]:
    data = config.model_dump(mode="json")
    environment: dict[str, str] = {f"{ENV_PREFIX}PROFILE": config.profile}
    for section, values in data.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if value is not None:
                environment[f"{ENV_PREFIX}{section.upper()}__{key.upper()}"] = toml_literal(value)
    # Resolved and absolute, so a child with another working directory still finds the same file.
    environment[f"{ENV_PREFIX}QUEUE__DATABASE"] = toml_literal(config.database)
    environment[f"{ENV_PREFIX}PATHS__DATA_DIR"] = toml_literal(str(config.paths.data_dir.expanduser().resolve()))
    return environment


# Variables only the bot uses (the token above all); a worker is started without any of them.
BOT_ONLY_PREFIXES = ("DISCORD_",)


def worker_environment(
    inherited: Mapping[str, str], config: Config, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """A worker's environment: what the parent has, less the bot's secrets, plus the resolved config."""
    environment = {**inherited, **config_environment(config), **(extra or {})}
    return {name: value for name, value in environment.items() if not name.startswith(BOT_ONLY_PREFIXES)}


def worker_command(device: str, handler_specs: Iterable[str] = ()) -> list[str]:
    """``python -m storyloom.worker --device D``: the worker alone, without the rest of the CLI's imports."""
    command = [sys.executable, "-m", "storyloom.worker", "--device", device, "--supervised"]
    for spec in handler_specs:
        command += ["--handlers", spec]
    return command
