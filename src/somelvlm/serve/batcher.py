"""Micro-batching: concurrent requests are gathered for a few milliseconds into one model call.

Each request ``submit``s one item and awaits its future. A single worker task takes the first
waiting item, keeps collecting for up to ``max_wait_ms`` (or until ``max_batch`` items), groups the
items by ``key`` (items with different keys cannot share a call, e.g. different decoding options),
and runs ``fn(items) -> results`` once per group in one worker thread, so the event loop keeps
accepting requests while the model runs. Items that arrive during a model call wait for the next
call, so under load batches grow by themselves.

>>> batcher = MicroBatcher(lambda xs: [x * 2 for x in xs], max_wait_ms=5)   # doctest: +SKIP
>>> await asyncio.gather(*(batcher.submit(i) for i in range(10)))            # doctest: +SKIP
[0, 2, 4, ..., 18]   # in one or two calls of fn
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class MicroBatcher:
    """Gathers items submitted concurrently into batched calls of ``fn`` (run in a worker thread)."""

    def __init__(self, fn: Callable[[list[Any]], list[Any]], *, max_batch: int = 64, max_wait_ms: float = 5.0,
                 key: Callable[[Any], Hashable] | None = None, name: str = "model",
                 on_batch: Callable[[str, int, float], None] | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.fn = fn
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.key = key or (lambda item: None)
        self.name = name
        self.on_batch = on_batch
        self.calls = 0
        """Number of calls of ``fn`` so far (tests count them)."""
        self.items = 0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")

    async def submit(self, item: Any) -> Any:
        """The result of ``fn`` for ``item``; raises what ``fn`` raised for its batch."""
        if self._worker is None or self._worker.done():
            self._start()
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    def _start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"batcher-{self.name}")

    async def close(self) -> None:
        """Stop the worker; waiting requests get an error."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            while self._queue is not None and not self._queue.empty():
                _, future = self._queue.get_nowait()
                if not future.done():
                    future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            groups: dict[Hashable, list[tuple[Any, asyncio.Future]]] = {}
            for item, future in batch:
                if not future.cancelled():  # the request timed out or its client left
                    groups.setdefault(self.key(item), []).append((item, future))
            for group in groups.values():
                items = [item for item, _ in group]
                start = time.perf_counter()
                try:
                    results = await loop.run_in_executor(self._executor, self.fn, items)
                    if len(results) != len(items):
                        raise RuntimeError(f"{self.name} returned {len(results)} results for {len(items)} items")
                except Exception as err:  # noqa: BLE001 - handed to every waiting request
                    for _, future in group:
                        if not future.done():
                            future.set_exception(err)
                    continue
                finally:
                    self.calls += 1
                    self.items += len(items)
                    if self.on_batch is not None:
                        self.on_batch(self.name, len(items), time.perf_counter() - start)
                for (_, future), result in zip(group, results):
                    if not future.done():
                        future.set_result(result)
