"""Handlers for tests and benchmarks: real worker processes running instant, slow, failing or crashing jobs.

Never a default. They are loaded only by import path (``storyloom worker --handlers
storyloom.worker.testing:handlers``), so nothing Discord can send reaches them. They stand in for
``imagine`` (the prompt says what to do), ``story`` (the summary ``pages:N`` makes N page follow-ups) and
``story_page``:

- ``noop``: return at once;
- ``sleep:SECONDS``: work in 10 ms steps, reporting progress with a preview and honouring cancellation;
- ``crash``: kill the worker process (SIGKILL), as a driver fault would;
- ``hang``: never return and never look at cancellation, as a job stuck in a driver call would;
- ``fail``: raise a user-facing error; ``error``: raise an unexpected one.

Every run appends ``<job id> <pid>`` to the file named by ``$STORYLOOM_TEST_RUN_LOG`` (when set), so a test
can prove that no job ran twice.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

from storyloom.config import Config
from storyloom.domain.story.plan import PLAN_FILE
from storyloom.errors import InvalidInput
from storyloom.models.runtime.step_progress import StepProgress
from storyloom.queue.job import JobKind, NewJob
from storyloom.worker.context import Handler, HandlerResult, JobContext
from storyloom.worker.handlers.artifacts import text_artifact

if TYPE_CHECKING:
    from storyloom.queue.store import JobStore
    from storyloom.worker.resources import ModelResources
    from storyloom.worker.runner import Worker

RUN_LOG = "STORYLOOM_TEST_RUN_LOG"
STEP_SECONDS = 0.01
SPEC = "storyloom.worker.testing:handlers"

T = TypeVar("T")


def handlers() -> dict[JobKind, Handler]:
    return {JobKind.IMAGINE: scripted, JobKind.STORY: story, JobKind.STORY_PAGE: scripted}


def scripted(context: JobContext) -> HandlerResult:
    script = getattr(context.params, "prompt", "noop")
    _log_run(context)
    action, _, argument = script.partition(":")
    if action == "sleep":
        _sleep(context, float(argument or 1.0))
    elif action == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "hang":
        while True:  # the heartbeat thread keeps the lease; only the supervisor's watchdog ends this
            time.sleep(STEP_SECONDS)
    elif action == "fail":
        raise InvalidInput("this job fails on purpose")
    elif action == "error":
        raise RuntimeError("an unexpected error, on purpose")
    context.check_canceled()
    return HandlerResult((text_artifact(0, "run.txt", f"{context.job.id} {os.getpid()}"),))


def story(context: JobContext) -> HandlerResult:
    _log_run(context)
    summary = getattr(context.params, "summary", "")
    count = int(summary.partition("pages:")[2] or 1)
    pages = tuple(
        NewJob(JobKind.STORY_PAGE, {"page": index, "text": f"page {index + 1}", "prompt": "noop"}, page_index=index)
        for index in range(count)
    )
    return HandlerResult((text_artifact(0, PLAN_FILE, '{"title": "test"}', "application/json"),), pages)


def _sleep(context: JobContext, seconds: float) -> None:
    from PIL import Image

    total = max(1, round(seconds / STEP_SECONDS))
    preview = Image.new("RGB", (64, 64), (200, 120, 40))
    for step in range(total):
        context.check_canceled()
        time.sleep(STEP_SECONDS)
        context.progress(StepProgress(step + 1, total, preview=preview, stage="sleeping"))


def _log_run(context: JobContext) -> None:
    path = os.environ.get(RUN_LOG)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{context.job.id} {os.getpid()}\n")


def start_worker_process(
    config: Config,
    *,
    device: str = "cpu",
    devices: Sequence[str] | None = None,
    handler_specs: Sequence[str] = (SPEC,),
    environment: Mapping[str, str] | None = None,
    **popen: object,
) -> subprocess.Popen:
    """``python -m storyloom.worker`` with ``config``: one worker on ``device``, or a supervisor of ``devices``."""
    from storyloom.worker.spawn import config_environment

    where = ["--devices", ",".join(devices)] if devices else ["--device", device]
    command = [sys.executable, "-m", "storyloom.worker", *where]
    for spec in handler_specs:
        command += ["--handlers", spec]
    env = {**os.environ, **config_environment(config), **(environment or {})}
    return subprocess.Popen(command, env=env, **popen)  # type: ignore[call-overload]


def wait_until(check: Callable[[], T], timeout: float, *, interval: float = 0.02, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; ``TimeoutError`` naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


@contextlib.contextmanager
def worker_in_thread(
    config: Config,
    *,
    handlers: Mapping[JobKind, Handler] | None = None,
    resources: ModelResources | None = None,
    open_store: Callable[[], JobStore] | None = None,
    device: str = "cpu",
) -> Iterator[Worker]:
    """A real ``Worker`` running in a thread of this process (the test handlers unless told otherwise);
    stopped, and its running job handed back, when the block ends."""
    from storyloom.queue.store import JobStore
    from storyloom.worker.registry import build_handlers
    from storyloom.worker.resources import ModelResources
    from storyloom.worker.runner import Worker

    worker = Worker(
        config,
        open_store or (lambda: JobStore.from_config(config)),
        build_handlers([SPEC]) if handlers is None else handlers,
        resources or ModelResources(config),
        device=device,
    )
    thread = threading.Thread(target=worker.run, name="worker")
    thread.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        thread.join(timeout=30)
        if thread.is_alive():
            raise RuntimeError("the worker thread did not stop")
