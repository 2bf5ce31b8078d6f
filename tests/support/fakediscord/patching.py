"""Pointing an unmodified discord.py at the fake, in this process or in a child process.

discord.py has three hard-coded bases: ``Route.BASE`` (REST, webhooks and interaction callbacks),
``DiscordWebSocket.DEFAULT_GATEWAY`` (a plain Client never asks ``/gateway/bot``) and ``Asset.BASE``; READY's
``resume_gateway_url`` covers reconnects. A child process is patched at start-up by a generated
``sitecustomize`` module put first on ``PYTHONPATH``; it patches lazily, right after ``import discord``, so
other processes inheriting the environment (workers) never import discord because of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ENV_VAR = "FAKE_DISCORD_URL"
API_VERSION = 10
_LOOPBACK_PREFIXES = ("http://127.", "http://localhost:", "http://[::1]:")


def ws_url_for(base_url: str) -> str:
    """``http://127.0.0.1:1234`` → ``ws://127.0.0.1:1234/``."""
    return "ws" + base_url.rstrip("/")[len("http") :] + "/"


def _check_loopback(base_url: str) -> str:
    base = base_url.rstrip("/")
    if not base.startswith(_LOOPBACK_PREFIXES):
        raise ValueError(f"the fake Discord must be on a loopback address, not {base_url!r}")
    return base


@contextmanager
def point_discord_at(base_url: str) -> Iterator[None]:
    """Patch discord.py's base URLs to ``base_url`` for the duration of the block, then restore them."""
    import discord.asset
    import discord.gateway
    import discord.http
    import yarl

    base = _check_loopback(base_url)
    route, socket, asset = discord.http.Route, discord.gateway.DiscordWebSocket, discord.asset.Asset
    saved = (route.BASE, socket.DEFAULT_GATEWAY, asset.BASE)
    route.BASE = f"{base}/api/v{API_VERSION}"
    socket.DEFAULT_GATEWAY = yarl.URL(ws_url_for(base))
    asset.BASE = base
    try:
        yield
    finally:
        route.BASE, socket.DEFAULT_GATEWAY, asset.BASE = saved


_SITECUSTOMIZE = '''"""Generated test helper: points discord.py at the fake Discord named by ${env_var}.

Installed by putting this directory first on PYTHONPATH. Patches only after ``import discord`` and only for
loopback URLs; without ${env_var} it does nothing.
"""

import importlib.abc
import importlib.util
import os
import sys

_URL = os.environ.get("${env_var}", "").rstrip("/")


def _patch():
    import discord.asset
    import discord.gateway
    import discord.http
    import yarl

    discord.http.Route.BASE = _URL + "/api/v${api_version}"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL("ws" + _URL[len("http"):] + "/")
    discord.asset.Asset.BASE = _URL


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name != "discord":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("discord")
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _patch()

        spec.loader.exec_module = exec_module
        return spec


if _URL:
    if not _URL.startswith(${prefixes}):
        raise SystemExit("${env_var} must be a loopback URL, got " + repr(_URL))
    if "discord" in sys.modules:
        _patch()
    else:
        sys.meta_path.insert(0, _PatchAfterImport())
'''


def write_sitecustomize(directory: str | os.PathLike[str]) -> Path:
    """Write ``sitecustomize.py`` into ``directory`` (created if needed) and return the directory."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    source = (
        _SITECUSTOMIZE.replace("${env_var}", ENV_VAR)
        .replace("${api_version}", str(API_VERSION))
        .replace("${prefixes}", repr(_LOOPBACK_PREFIXES))
    )
    (target / "sitecustomize.py").write_text(source)
    return target


def subprocess_env(
    base_url: str, sitecustomize_dir: str | os.PathLike[str], *, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """An environment for a child Python process whose discord.py talks to the fake at ``base_url``."""
    env = dict(os.environ if base is None else base)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = os.pathsep.join([str(sitecustomize_dir), *([existing] if existing else [])])
    env[ENV_VAR] = _check_loopback(base_url)
    return env
