"""Server-side micro-batching: concurrent requests to one model are merged into one forward pass.

The first waiting item opens a batch; the batch closes when it holds ``max_batch`` items or ``max_wait_ms``
have passed (with 0 it never waits: it takes what is already queued, up to ``max_batch``, and runs). The model
runs in one worker thread per model, so the event loop keeps accepting requests while a batch computes (what
Triton's dynamic batcher and TorchServe's batch_size/max_batch_delay do).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence
from typing import Any


class MicroBatcher:
    """``await submit(items)`` → one result per item, computed in batches shared with concurrent callers."""

    def __init__(self, predict: Callable[[list[Any]], list[Any]], max_batch: int = 32, max_wait_ms: float = 5.0):
        if max_batch < 1 or not max_wait_ms >= 0:
            raise ValueError(f"max_batch must be ≥ 1 and max_wait_ms ≥ 0, got {max_batch} and {max_wait_ms}")
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self.batch_sizes: collections.deque[int] = collections.deque(maxlen=1000)  # recent batches, for /info
        self.batches = 0
        self.items = 0
        self.waited = 0.0  # seconds batches were held open waiting for company (0 when max_wait_ms is 0)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def _start(self) -> asyncio.Queue:
        """Start (or, under a new event loop, restart) the worker on the running loop."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="distilkit-model")
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._run(self._queue))
        return self._queue

    async def submit(self, items: Sequence[Any]) -> list[Any]:
        queue = self._start()
        futures = []
        for item in items:
            future = asyncio.get_running_loop().create_future()
            queue.put_nowait((item, future))
            futures.append(future)
        return list(await asyncio.gather(*futures))

    async def _run(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                if not queue.empty():
                    batch.append(queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if self.max_wait <= 0 or remaining <= 0:
                    break
                waiting_since = loop.time()
                try:
                    batch.append(await asyncio.wait_for(queue.get(), remaining))
                except asyncio.TimeoutError:
                    break
                finally:
                    self.waited += loop.time() - waiting_since
            live = [(item, future) for item, future in batch if not future.done()]  # drop abandoned requests
            if not live:
                continue
            self.batch_sizes.append(len(live))
            self.batches += 1
            self.items += len(live)
            try:
                results = await loop.run_in_executor(self._executor, self.predict, [item for item, _ in live])
            except Exception as exc:  # the callers turn it into an HTTP error; the worker keeps serving
                for _, future in live:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(live, results, strict=True):
                if not future.done():
                    future.set_result(result)

    def stats(self) -> dict[str, Any]:
        recent = list(self.batch_sizes)
        return {
            "max_batch": self.max_batch, "max_wait_ms": 1e3 * self.max_wait, "batches": self.batches,
            "items": self.items, "largest_batch": max(recent, default=0),
            "mean_batch": sum(recent) / len(recent) if recent else 0.0,
            "mean_wait_ms": 1e3 * self.waited / self.batches if self.batches else 0.0,
        }  # fmt: skip

    async def aclose(self) -> None:
        """Stop the worker and its thread (a later submit starts them again)."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        self._worker = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
