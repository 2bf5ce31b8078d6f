"""The container files: the Dockerfile's base really provides Python 3.11 and a free UID 1000, and compose gives
a clean shutdown the time it takes (no Docker daemon needed: the files are read as text)."""

from __future__ import annotations

import re
from pathlib import Path

from storyloom.cli.run import SUPERVISOR_JOIN_SECONDS
from storyloom.config import QueueConfig

ROOT = Path(__file__).resolve().parents[1]


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(number) * units[unit] for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value))


def test_dockerfile_base_provides_python_3_11_and_a_free_uid_1000() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    [base] = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    # Ubuntu 24.04 has no python3.11 package and its images already have UID 1000 (ubuntu); the official Python
    # image is Debian with the interpreter built in and no user 1000.
    assert re.fullmatch(r"python:3\.11(\.\d+)?-(slim-)?(bookworm|trixie)", base), base
    assert not re.search(r"apt-get install[^\n]*python3\.11", dockerfile)
    assert re.search(r"useradd [^\n]*--uid 1000", dockerfile)
    assert "python3.11 -m venv" in dockerfile


def test_compose_waits_longer_than_a_clean_shutdown_takes() -> None:
    # The supervisor waits for each worker up to a lease to hand its job back; the bot then waits for it.
    shutdown = max(10.0, QueueConfig().lease_seconds)
    for name in ("docker-compose.yml", "docker-compose.postgres.yml"):
        path = ROOT / name
        if not path.exists():
            continue
        graces = re.findall(r"^\s+stop_grace_period:\s*(\S+)", path.read_text(encoding="utf-8"), re.MULTILINE)
        assert graces, f"{name} leaves Docker's 10 s default, shorter than a clean shutdown"
        assert all(_seconds(grace) > SUPERVISOR_JOIN_SECONDS >= shutdown for grace in graces), (name, graces)
