"""Workers start without the bot's secrets: a worker child's environment (readable in /proc/<pid>/environ)
holds the config it needs and never the Discord token."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from storyloom.config import load_config
from storyloom.worker.spawn import worker_environment
from storyloom.worker.supervisor import Supervisor
from storyloom.worker.testing import wait_until

TOKEN = "MTIzNDU2Nzg5.secret.token-of-the-bot"


def child_environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.decode().split("=", 1) for entry in raw.split(b"\0") if b"=" in entry)


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_a_supervised_worker_starts_without_the_discord_token(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", TOKEN)
    monkeypatch.setenv("DISCORD_APPLICATION_NOTE", "bot only too")
    monkeypatch.setenv("SPAWN_PROBE", "inherited")
    config = load_config(None, environ={}, overrides={"paths": {"data_dir": str(tmp_path)}})
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor(config, ["cpu"], command=lambda device: sleeper, shutdown_timeout=5)
    thread = threading.Thread(target=supervisor.run, daemon=True)
    thread.start()
    try:
        process = wait_until(lambda: supervisor.slots[0].process, 10, what="the worker to start")
        environment = child_environment(process.pid)
    finally:
        supervisor.stop()
        thread.join(15)
    assert "DISCORD_TOKEN" not in environment and "DISCORD_APPLICATION_NOTE" not in environment
    assert TOKEN not in "".join(environment.values())
    assert environment["SPAWN_PROBE"] == "inherited"  # everything else is inherited as before
    assert environment["STORYLOOM_PATHS__DATA_DIR"] == f'"{tmp_path.resolve()}"'  # and the resolved config


def test_explicit_extra_variables_cannot_bring_the_token_back(tmp_path: Path) -> None:
    config = load_config(None, environ={}, overrides={"paths": {"data_dir": str(tmp_path)}})
    environment = worker_environment({"PATH": "/bin", "DISCORD_TOKEN": TOKEN}, config, {"DISCORD_TOKEN": TOKEN})
    assert "DISCORD_TOKEN" not in environment and environment["PATH"] == "/bin"
