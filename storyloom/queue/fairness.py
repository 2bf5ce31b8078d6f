"""Who goes next, and how long everyone waits: pure functions over plain values.

The claim query (``sql.SELECT_NEXT_JOB``) takes the oldest job of the user served least recently. To tell
a user their position, :func:`serving_order` replays that rule over all waiting jobs; a property test
checks that the two agree.
"""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Waiting:
    job_id: int
    user_id: int
    kind: str
    last_served: int  # 0 = never served


@dataclass(frozen=True)
class Running:
    job_id: int
    kind: str
    started_at: float


@dataclass(frozen=True)
class Estimate:
    position: int  # 1 = next
    jobs_ahead: int  # waiting jobs that start before this one
    wait_seconds: float | None
    eta_seconds: float | None


def serving_order(waiting: Iterable[Waiting]) -> list[Waiting]:
    """Waiting jobs in the order workers will claim them (if nothing else is enqueued meanwhile)."""
    per_user: dict[int, deque[Waiting]] = defaultdict(deque)
    turns: dict[int, int] = {}
    for item in sorted(waiting, key=lambda w: w.job_id):
        per_user[item.user_id].append(item)
        turns[item.user_id] = item.last_served
    heap = [(turns[user], jobs[0].job_id, user) for user, jobs in per_user.items()]
    heapq.heapify(heap)
    later = itertools.count(max(turns.values(), default=0) + 1)
    order = []
    while heap:
        _, _, user = heapq.heappop(heap)
        jobs = per_user[user]
        order.append(jobs.popleft())
        if jobs:
            heapq.heappush(heap, (next(later), jobs[0].job_id, user))
    return order


def estimate_waits(
    order: Sequence[Waiting],
    running: Sequence[Running],
    averages: Mapping[str, float],
    *,
    workers: int,
    now: float,
) -> dict[int, Estimate]:
    """Position and times for every waiting job, from per-kind average run times.

    Work ahead (what is left of running jobs plus the waiting jobs in front) is shared by ``workers``.
    Kinds never seen finish borrow the mean of the known kinds; with no history at all there is no ETA.
    """
    fallback = sum(averages.values()) / len(averages) if averages else None

    def average(kind: str) -> float | None:
        return averages.get(kind, fallback)

    workers = max(1, workers)
    ahead: float | None = 0.0
    for job in running:
        seconds = average(job.kind)
        ahead = None if ahead is None or seconds is None else ahead + max(0.0, seconds - (now - job.started_at))
    estimates = {}
    for index, queued in enumerate(order):
        own = average(queued.kind)
        wait = None if ahead is None else ahead / workers
        eta = None if wait is None or own is None else wait + own
        estimates[queued.job_id] = Estimate(index + 1, index, wait, eta)
        ahead = None if ahead is None or own is None else ahead + own
    return estimates


def remaining_seconds(job: Running, averages: Mapping[str, float], now: float) -> float | None:
    seconds = averages.get(job.kind)
    return None if seconds is None else max(0.0, seconds - (now - job.started_at))
