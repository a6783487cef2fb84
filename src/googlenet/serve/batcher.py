"""Dynamic batching: requests that arrive together run as one batch of the model.

Each request puts one item (its preprocessed crops) on a bounded queue and awaits a future. One
collector task takes the first waiting item, then keeps taking items until the batch holds
``max_batch`` images or ``max_wait_ms`` has passed since the first, and hands the batch to a
single worker thread that owns the model: the event loop never runs the network, and the
network never runs two batches at once (it uses every core for one).

Hand-written because it is the one piece the serving stack lacks: FastAPI/uvicorn have no
request batching, and the libraries that do (Ray Serve, Triton, TorchServe) are whole servers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class QueueFullError(Exception):
    """The batcher's queue holds ``max_queue`` requests: the caller should retry later."""


class ClosedError(Exception):
    """The batcher is draining or closed and takes no new requests."""


@dataclass
class _Pending(Generic[T]):
    item: T
    future: asyncio.Future = field(repr=False)


class DynamicBatcher(Generic[T, R]):
    """Groups concurrent :meth:`submit` calls into batches for ``run_batch``.

    ``run_batch(items) -> results`` (one result per item, in order) runs in the model thread.
    ``on_batch(size, seconds)`` is called after each batch (metrics). :meth:`run_exclusive` runs
    any other model work (class activation maps) in the same thread, between batches.
    """

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be at least 1, max_wait_ms 0 or more")
        self.run_batch, self.on_batch = run_batch, on_batch
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000.0
        self.max_queue = max_queue
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="googlenet-model")
        self._queue: asyncio.Queue[_Pending[T]] | None = None
        self._task: asyncio.Task | None = None
        self._closing = False
        self.in_flight = 0  # submitted and not yet answered

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the collector on the running event loop."""
        self._queue = asyncio.Queue(maxsize=self.max_queue)
        self._task = asyncio.get_running_loop().create_task(self._collect(), name="batcher")

    async def close(self) -> None:
        """Take no new requests, answer every accepted one, then stop the model thread."""
        self._closing = True
        while self.in_flight:
            await asyncio.sleep(0.005)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    @property
    def accepting(self) -> bool:
        return self._task is not None and not self._closing

    # -- requests -----------------------------------------------------------------------------

    async def submit(self, item: T) -> R:
        """Queue ``item``, wait for its batch, return its result (or raise the batch's error).

        Raises :class:`QueueFullError` at once when ``max_queue`` requests wait, and
        :class:`ClosedError` while draining.
        """
        if not self.accepting or self._queue is None:
            raise ClosedError("the server is shutting down")
        future = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait(_Pending(item, future))
        except asyncio.QueueFull:
            raise QueueFullError(f"{self.max_queue} requests are waiting") from None
        self.in_flight += 1
        try:
            # shield: a caller that times out stops waiting, the batch still completes cleanly
            return await asyncio.shield(future)
        finally:
            self.in_flight -= 1

    async def run_exclusive(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` in the model thread (between batches) and return its result."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- the collector ------------------------------------------------------------------------

    async def _next_batch(self) -> list[_Pending[T]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                if remaining <= 0:
                    batch.append(self._queue.get_nowait())
                else:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
        return batch

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._next_batch()
            start = time.perf_counter()
            try:
                results = await loop.run_in_executor(
                    self._executor, self.run_batch, [p.item for p in batch]
                )
            except Exception as err:  # the batch's error goes to each of its requests
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch), time.perf_counter() - start)
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)
