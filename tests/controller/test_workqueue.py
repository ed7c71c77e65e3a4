"""The work queue's rules: one entry per key, one worker per key, earliest time wins, backoff."""

from __future__ import annotations

import asyncio

import pytest

from recluster.controller.workqueue import BACKOFF_MAX, BACKOFF_START, ShutDown, WorkQueue

pytestmark = pytest.mark.asyncio


async def test_a_key_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ("a", "b", "a", "a"):
        queue.add(key)
    assert len(queue) == 2
    assert [await queue.get(), await queue.get()] == ["a", "b"]


async def test_a_key_added_while_in_work_comes_back_after_done_never_twice_at_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key = await queue.get()
    queue.add("a")  # changed while a worker has it
    assert len(queue) == 0, "not handed to a second worker"
    queue.done(key)
    assert len(queue) == 1
    assert await queue.get() == "a"


async def test_add_after_keeps_the_earliest_time() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add_after("late", 0.3)
    queue.add_after("soon", 60)
    queue.add_after("soon", 0.05)  # earlier: replaces
    queue.add_after("soon", 30)  # later: ignored
    assert queue.waiting == 2
    assert await asyncio.wait_for(queue.get(), 5) == "soon"
    assert await asyncio.wait_for(queue.get(), 5) == "late"
    assert queue.waiting == 0


async def test_many_waiting_keys_share_one_timer() -> None:
    queue: WorkQueue[int] = WorkQueue()
    for i in range(10_000):
        queue.add_after(i, 3600 + i)
    queue.add_after(-1, 0.01)
    assert await asyncio.wait_for(queue.get(), 5) == -1
    assert queue.waiting == 10_000 and len(queue) == 0


async def test_failures_back_off_exponentially_and_success_forgets() -> None:
    queue: WorkQueue[str] = WorkQueue()
    delays = [queue.add_failed("a") for _ in range(4)]
    assert delays == [BACKOFF_START * 2**i for i in range(4)]
    for _ in range(40):
        last = queue.add_failed("a")
    assert last == BACKOFF_MAX
    queue.forget("a")
    assert queue.add_failed("a") == BACKOFF_START


async def test_shut_down_releases_waiting_workers() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiting = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.shut_down()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiting, 5)
