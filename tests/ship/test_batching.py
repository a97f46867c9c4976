"""MicroBatcher on its own: merging, order, max_batch, the wait window, and failures that do not stop it."""

from __future__ import annotations

import asyncio

import pytest

from distilkit.ship.serve.batching import MicroBatcher


def test_concurrent_submits_merge_up_to_max_batch_and_keep_their_order():
    calls: list[list[int]] = []

    def predict(items: list[int]) -> list[int]:
        calls.append(list(items))
        return [2 * x for x in items]

    async def main() -> list[list[int]]:
        batcher = MicroBatcher(predict, max_batch=4, max_wait_ms=50)
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(10)), batcher.submit([100, 101]))
        await batcher.aclose()
        return results

    results = asyncio.run(main())
    assert results == [[2 * i] for i in range(10)] + [[200, 202]]
    assert calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 100, 101]]


def test_a_lone_request_waits_at_most_the_window():
    async def main() -> float:
        batcher = MicroBatcher(lambda items: items, max_batch=32, max_wait_ms=30)
        start = asyncio.get_running_loop().time()
        assert await batcher.submit(["a"]) == ["a"]
        elapsed = asyncio.get_running_loop().time() - start
        await batcher.aclose()
        return elapsed

    assert 0.025 <= asyncio.run(main()) < 2.0


def test_a_failing_batch_fails_its_callers_and_the_next_batch_is_served():
    def predict(items: list[str]) -> list[str]:
        if "bad" in items:
            raise RuntimeError("model failed")
        return [s.upper() for s in items]

    async def main() -> list[str]:
        batcher = MicroBatcher(predict, max_batch=8, max_wait_ms=1)
        with pytest.raises(RuntimeError, match="model failed"):
            await batcher.submit(["ok", "bad"])
        result = await batcher.submit(["fine"])
        stats = batcher.stats()
        await batcher.aclose()
        assert stats["batches"] == 2 and stats["items"] == 3 and stats["largest_batch"] == 2
        return result

    assert asyncio.run(main()) == ["FINE"]


def test_a_batcher_survives_a_new_event_loop():
    batcher = MicroBatcher(lambda items: items, max_batch=2, max_wait_ms=1)
    assert asyncio.run(batcher.submit([1])) == [1]
    assert asyncio.run(batcher.submit([2, 3])) == [2, 3]  # the first loop is gone: worker and queue restart


def test_with_max_wait_zero_no_batch_waits_but_queued_requests_still_merge():
    calls: list[list[int]] = []

    def predict(items: list[int]) -> list[int]:
        calls.append(list(items))
        return items

    async def main() -> dict:
        batcher = MicroBatcher(predict, max_batch=4, max_wait_ms=0)
        for i in range(3):  # one at a time: each runs alone, at once
            assert await batcher.submit([i]) == [i]
        # Submitted together, they are all queued before the worker runs: merged up to max_batch, no waiting.
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(10, 16)))
        stats = batcher.stats()
        await batcher.aclose()
        assert results == [[i] for i in range(10, 16)]
        return stats

    stats = asyncio.run(main())
    assert calls == [[0], [1], [2], [10, 11, 12, 13], [14, 15]]
    assert stats["mean_wait_ms"] == 0.0 and stats["max_wait_ms"] == 0.0


def test_a_wait_window_is_spent_waiting_for_company_and_reported():
    async def main() -> dict:
        batcher = MicroBatcher(lambda items: items, max_batch=8, max_wait_ms=20)
        await batcher.submit(["alone"])
        stats = batcher.stats()
        await batcher.aclose()
        return stats

    stats = asyncio.run(main())
    assert stats["batches"] == 1 and stats["mean_wait_ms"] > 0.0


@pytest.mark.parametrize(("max_batch", "max_wait_ms"), [(0, 5.0), (-1, 5.0), (4, -1.0), (4, float("nan"))])
def test_bad_settings_are_refused(max_batch, max_wait_ms):
    with pytest.raises(ValueError, match="max_batch must be ≥ 1 and max_wait_ms ≥ 0"):
        MicroBatcher(lambda items: items, max_batch, max_wait_ms)
