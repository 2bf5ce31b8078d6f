"""The positions users are told match the order workers really take jobs in, and the ETA arithmetic."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyloom.config import QueueConfig
from storyloom.queue import JobKind, JobStore
from storyloom.queue.fairness import Running, Waiting, estimate_waits, serving_order

KINDS = [kind.value for kind in JobKind]

# A script: positive numbers enqueue a job for that user, 0 lets a worker take (and finish) one job.
scripts = st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(scripts)
def test_predicted_positions_equal_the_claim_order(script: list[int]) -> None:
    with JobStore.open(":memory:", QueueConfig(max_waiting_per_user=1000)) as store:
        for step in script:
            if step:
                store.enqueue("imagine", {"prompt": "x"}, user_id=step)
            elif (job := store.claim("w", KINDS)) is not None:
                store.complete(job.id, "w")
        positions = store.positions()
        predicted = sorted(positions, key=lambda job_id: positions[job_id].position)
        actual = []
        while (job := store.claim("w", KINDS)) is not None:
            actual.append(job.id)
            store.complete(job.id, "w")
        assert predicted == actual


def test_serving_order_is_round_robin_by_last_service() -> None:
    # (job, user, kind, last served): user 20 never served, then user 30, then user 10's two jobs.
    waiting = [Waiting(1, 10, "imagine", 5), Waiting(2, 10, "imagine", 5), Waiting(3, 20, "imagine", 0), Waiting(4, 30, "imagine", 2)]  # fmt: skip
    assert [w.job_id for w in serving_order(waiting)] == [3, 4, 1, 2]


def test_estimates_share_the_work_ahead_between_workers() -> None:
    order = [Waiting(1, 1, "imagine", 0), Waiting(2, 2, "story", 0), Waiting(3, 3, "vary", 0)]
    running = [Running(9, "imagine", started_at=95.0)]
    averages = {"imagine": 10.0, "story": 30.0}
    one = estimate_waits(order, running, averages, workers=1, now=100.0)
    assert [one[i].wait_seconds for i in (1, 2, 3)] == [5.0, 15.0, 45.0]
    assert one[3].eta_seconds == pytest.approx(45.0 + 20.0)  # an unseen kind takes the mean of the known ones
    two = estimate_waits(order, running, averages, workers=2, now=100.0)
    assert two[3].wait_seconds == pytest.approx(22.5)
    assert estimate_waits(order, running, {}, workers=1, now=100.0)[1].eta_seconds is None
