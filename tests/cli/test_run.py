"""``storyloom run``: the supervisor thread is watched (restarted when it dies, the command stops with status 1
when it keeps dying), and a damaged database is one line on stderr, not a traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import psutil

from storyloom.cli.run import WorkerSupervision
from storyloom.config import Config, load_config
from storyloom.worker.spawn import config_environment
from storyloom.worker.supervisor import Supervisor

IDLE_CHILD = [sys.executable, "-c", "import time; time.sleep(60)"]


def config_in(tmp_path: Path) -> Config:
    return load_config(None, environ={}, overrides={"paths": {"data_dir": str(tmp_path / "data")}})


def supervisors(config: Config, *, failing: int):
    """Makes supervisors whose first ``failing`` ones die at once (their worker program does not exist)."""
    made: list[Supervisor] = []

    def make() -> Supervisor:
        broken = len(made) < failing
        program = [str(config.paths.data_dir / "no-such-program")] if broken else IDLE_CHILD
        supervisor = Supervisor(config, ["cpu"], command=lambda device: program, shutdown_timeout=5)
        made.append(supervisor)
        return supervisor

    return make, made


async def test_a_dead_supervisor_is_noticed_logged_reported_and_restarted(tmp_path: Path, caplog) -> None:
    config = config_in(tmp_path)
    make, made = supervisors(config, failing=1)
    supervision = WorkerSupervision(make, watch_seconds=0.05)
    stop = asyncio.Event()
    with caplog.at_level(logging.ERROR, logger="storyloom"):
        supervision.start()
        watcher = asyncio.create_task(supervision.watch(stop))
        try:
            for _ in range(200):
                if len(made) == 2 and supervision.alive and made[1].slots[0].process is not None:
                    break
                await asyncio.sleep(0.05)
            assert len(made) == 2 and supervision.alive, "the dead supervisor was not started again"
            problem = supervision.problem()
            assert problem is not None and "FileNotFoundError" in problem and "was restarted" in problem
            assert not stop.is_set() and not supervision.gave_up
        finally:
            stop.set()
            await watcher
            supervision.stop(10)
    assert "the workers' supervisor failed" in caplog.text and "restarting it" in caplog.text
    [child] = made[1].slots[0].pids
    assert not psutil.pid_exists(child)  # the restarted supervisor's worker was stopped with it


async def test_a_supervisor_that_keeps_dying_stops_the_bot_with_a_reason(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    make, made = supervisors(config, failing=100)
    supervision = WorkerSupervision(make, max_restarts=2, watch_seconds=0.02)
    stop = asyncio.Event()
    supervision.start()
    await asyncio.wait_for(supervision.watch(stop), 20)
    assert stop.is_set() and supervision.gave_up and len(made) == 3
    assert "failed 3 times" in (supervision.problem() or "")


async def test_a_damaged_database_is_one_line_without_a_traceback(tmp_path: Path) -> None:
    config = config_in(tmp_path)
    config.paths.data_dir.mkdir(parents=True)
    config.database_path.write_bytes(b"this is not a database, " * 100)
    env = {**os.environ, **config_environment(config), "DISCORD_TOKEN": "not-a-real-token"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "storyloom", "run", "--devices", "cpu", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = stderr.decode().strip().splitlines()
    assert process.returncode == 2 and stdout == b""
    assert len(lines) == 1 and "Traceback" not in stderr.decode(), stderr.decode()
    assert "damaged or is not a SQLite file" in lines[0]
