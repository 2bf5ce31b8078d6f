"""The bot as its own process, the way ``storyloom run --bot-only`` starts it: it connects to the fake Discord,
answers a command, stops cleanly on SIGTERM, never imports torch and never prints its token."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path

from storyloom.config import load_config
from storyloom.queue.job import JobKind, JobStatus
from storyloom.queue.store import JobStore
from storyloom.worker.spawn import config_environment
from tests.support.bot import job_of
from tests.support.fakediscord import FakeDiscord

# Reports at exit whether torch (or anything that pulls it in) was ever imported into the bot process.
BOT_PROCESS = textwrap.dedent(
    """
    import atexit, sys
    atexit.register(lambda: print("IMPORTED", *sorted(m for m in ("torch", "diffusers", "transformers") if m in sys.modules), flush=True))
    from storyloom.cli.main import main
    sys.exit(main(sys.argv[1:]))
    """
)


async def run_process(*args: str, env: dict[str, str], timeout: float = 30) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, stdout.decode(), stderr.decode()


async def test_without_a_token_run_explains_in_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DISCORD_TOKEN"}
    code, stdout, stderr = await run_process("-m", "storyloom", "run", "--bot-only", env=env)
    assert code == 2 and stdout == ""
    [line] = stderr.strip().splitlines()
    assert "DISCORD_TOKEN" in line and "discord.com/developers" in line


async def test_the_bot_process_serves_commands_without_torch_and_stops_on_sigterm(tmp_path: Path) -> None:
    config = load_config(None, environ={}, overrides={"paths": {"data_dir": str(tmp_path / "data")}})
    async with FakeDiscord() as fake:
        env = {**fake.subprocess_env(tmp_path / "site"), **config_environment(config)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BOT_PROCESS, "-v", "run", "--bot-only", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await fake.wait_for(
                lambda: fake.command("imagine") and fake.connected, timeout=30, what="the bot to connect"
            )
            handle = await fake.invoke_command("imagine", {"prompt": "a paper boat"})
            assert (await handle.wait_ack(timeout=10)).type == 5
            status = await handle.wait_original(timeout=10)
            [thread] = await fake.wait_for(lambda: fake.threads_of(fake.text_channel), timeout=10)
            assert thread.id == status.id
            process.send_signal(signal.SIGTERM)
            stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr.decode()[-3000:]
    assert stdout.decode().split() == ["IMPORTED"]  # none of torch, diffusers, transformers
    assert fake.token not in stdout.decode() + stderr.decode()
    assert "discord.gateway" in stderr.decode()  # -v: the debug log was on, and still no token
    with JobStore.from_config(config) as store:
        [job] = store.list_jobs((JobStatus.QUEUED,))
        assert (job.id, job.kind, job.message_id, job.thread_id) == (
            job_of(status),
            JobKind.IMAGINE,
            status.id,
            thread.id,
        )


async def test_run_starts_the_bot_and_a_supervised_worker_and_stops_both(tmp_path: Path) -> None:
    config = load_config(None, environ={}, overrides={"paths": {"data_dir": str(tmp_path / "data")}})
    async with FakeDiscord() as fake:
        env = {**fake.subprocess_env(tmp_path / "site"), **config_environment(config)}
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "storyloom", "run", "--devices", "cpu", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            await fake.wait_for(lambda: fake.connected, timeout=30, what="the bot to connect")
            with JobStore.from_config(config) as store:
                for _ in range(600):
                    live = [w for w in store.list_workers() if w.stopped_at is None]
                    if live:
                        break
                    await asyncio.sleep(0.1)
                assert live and live[0].device == "cpu" and live[0].pid != process.pid
            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr.decode()[-3000:]
    with JobStore.from_config(config) as store:
        assert all(w.stopped_at is not None for w in store.list_workers())
    assert fake.token not in stderr.decode()
