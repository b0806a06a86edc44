"""transfer/workers.py: the thread pool push and pull use instead of concurrent.futures."""

from __future__ import annotations

import threading

import pytest

from lamina.transfer.workers import TaskCancelled, Workers

WAIT = 30  # seconds: a bound for a loaded machine, never expected to run out


def test_results_and_errors_reach_the_caller():
    boom = ValueError("worker failed")

    def fail():
        raise boom

    with Workers(3) as pool:
        tasks = [pool.submit(pow, 2, n) for n in range(10)]
        failed = pool.submit(fail)
        assert [t.result() for t in tasks] == [2 ** n for n in range(10)]
        with pytest.raises(ValueError) as e:
            failed.result()
        assert e.value is boom
        assert failed.exception() is boom and tasks[0].exception() is None


def test_a_queued_task_is_cancelled_a_running_one_is_not():
    started, release = threading.Event(), threading.Event()
    ran = []

    def block():
        started.set()
        assert release.wait(WAIT)
        return "first"

    with Workers(1) as pool:
        first = pool.submit(block)
        queued = pool.submit(ran.append, "queued")
        assert started.wait(WAIT)
        assert not pool.cancel(first)  # already running: it runs to its end
        assert pool.cancel(queued)
        release.set()
        assert first.result() == "first"
        with pytest.raises(TaskCancelled):
            queued.result()
    assert ran == []


def test_leaving_waits_for_tasks_and_for_what_they_submit():
    done = []
    inner = Workers(2)

    def outer(i):
        return inner.submit(done.append, i)

    with inner, Workers(2) as pool:  # the pool that is submitted to is left last
        for i in range(6):
            pool.submit(outer, i)
    assert sorted(done) == list(range(6))
    assert not [t for t in threading.enumerate() if t.name == "lamina-worker"]
