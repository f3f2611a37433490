"""Dynamic batching per model, like Triton's: requests that arrive together run as one batch.

One thread per model takes the oldest request, waits up to ``max_delay_s`` after its arrival for the
batch to fill (``max_batch_size`` rows), concatenates the compatible requests along axis 0, runs the
model once and hands each caller its own slice. On a small CPU one run of 32 rows costs far less than
32 runs of one row, and on a GPU it is the only way to keep it busy.

One refinement over Triton: the delay is spent only when the previous batch held more than one
request (or more than one is already waiting). A lone client can never be joined by anyone (it waits
for its own answer before sending again), so making it wait would only add the delay to every call.

Requests are compatible when every input has the same type and non-batch shape; incompatible ones
wait for the next batch, in order. Inputs named in ``pad`` (``{input: pad value}``, from model.json
``batch_padding``) may differ in length on axis 1: sentences of 9 and 14 tokens are right-padded to 14
and run together (padding with attention mask 0 leaves a sentence encoder's output unchanged). Only
models whose outputs have no padded axis may declare it, since outputs are not trimmed back. If a batch fails on
a bad input, each request in it is re-run alone, so only the caller who sent the bad input sees the
error. ``close`` finishes every queued request, then joins the thread.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from appliance.errors import BadRequest, Unavailable

log = logging.getLogger(__name__)


def request_rows(inputs: dict[str, np.ndarray]) -> int:
    """The rows of a request: every input's first axis, the same for all, at least 1."""
    rows = {a.shape[0] if a.ndim else -1 for a in inputs.values()}
    if len(rows) != 1 or -1 in rows:
        raise BadRequest("every input must have the same batch size on its first axis")
    (n,) = rows
    if n < 1:
        raise BadRequest(f"a request needs at least 1 row, got {n}")
    return n


@dataclass
class _Request:
    inputs: dict[str, np.ndarray]
    rows: int
    key: tuple
    background: bool = False
    enqueued: float = field(default_factory=time.perf_counter)
    future: Future = field(default_factory=Future)


@dataclass
class BatchInfo:
    """What one batch looked like, for metrics."""

    rows: int
    requests: int
    queue_s: list[float]
    compute_s: float
    background: bool = False  # work nobody waits for: not the students' batches on the admin page


class Batcher:
    def __init__(
        self,
        name: str,
        run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
        max_batch_size: int,
        max_delay_s: float,
        max_queue: int = 1024,
        on_batch: Callable[[BatchInfo], None] | None = None,
        pad: dict[str, float | int] | None = None,
    ):
        self.name = name
        self._run = run
        self.max_batch_size = max(1, max_batch_size)
        self.max_delay_s = max(0.0, max_delay_s)
        self.max_queue = max_queue
        self._on_batch = on_batch
        self._pad = dict(pad or {})
        self._queue: deque[_Request] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._closing = False
        self._last_requests = 1  # requests in the previous batch: evidence of concurrent traffic
        self._busy = False  # a run (inline or batch) is in progress: one at a time, like one Triton instance
        self._alone_keys = itertools.count()
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}")
        self._thread.start()

    def submit(self, inputs: dict[str, np.ndarray], alone: bool = False, background: bool = False) -> dict[str, np.ndarray]:
        """Run ``inputs`` (each with the batch on axis 0) in the next batch; blocks until done.
        ``alone``: in a batch of its own, never merged with other requests' rows (it still waits its
        turn, one run at a time). ``background``: reported as such (``BatchInfo.background``).

        When the model is idle and nobody is queued, the caller runs it on its own thread: handing a
        lone request to the batching thread and back costs two thread wake-ups (more than a small
        model's run on a busy 2-core box) and there is nothing to batch it with. Requests that arrive
        while that run is going queue up and form the next batch as usual.
        """
        n = self._rows(inputs)
        with self._cond:
            self._check_open()
            inline = not self._busy and not self._queue
            if inline:
                self._busy = True
            else:
                req = self._enqueue(inputs, n, self._key(inputs, alone), background)
        if not inline:
            return req.future.result()
        started = time.perf_counter()
        try:
            return self._run(inputs)
        finally:
            elapsed = time.perf_counter() - started
            with self._cond:
                self._busy = False
                self._last_requests = 1
                if self._queue:
                    self._cond.notify()  # requests that queued meanwhile are the batcher's now
            self._report(BatchInfo(rows=n, requests=1, queue_s=[0.0], compute_s=elapsed, background=background))

    def submit_async(self, inputs: dict[str, np.ndarray], alone: bool = False, background: bool = False) -> Future:
        """Queue ``inputs`` for the batching thread (never inline); the future holds the outputs."""
        n = self._rows(inputs)
        key = self._key(inputs, alone)
        with self._cond:
            self._check_open()
            return self._enqueue(inputs, n, key, background).future

    def _rows(self, inputs: dict[str, np.ndarray]) -> int:
        n = request_rows(inputs)
        if n > self.max_batch_size:
            raise BadRequest(f"model {self.name} takes 1 to {self.max_batch_size} rows per request, got {n}")
        return n

    def _key(self, inputs: dict[str, np.ndarray], alone: bool = False) -> tuple:
        """What must match for two requests to share a batch (padded axes excepted); a request to run
        alone gets a key no other request has."""
        if alone:
            return ("alone", next(self._alone_keys))
        return tuple(sorted(
            (k, a.dtype.str, a.shape[2:] if k in self._pad and a.ndim >= 2 else a.shape[1:], a.ndim)
            for k, a in inputs.items()
        ))

    def _check_open(self) -> None:
        if self._closing:
            raise Unavailable(f"model {self.name} is being unloaded")
        if len(self._queue) >= self.max_queue:
            raise Unavailable(f"model {self.name} is busy ({self.max_queue} requests waiting); try again")

    def _enqueue(self, inputs, n: int, key: tuple, background: bool = False) -> _Request:
        req = _Request(inputs, n, key, background)
        self._queue.append(req)
        self._queued_rows += n
        self._cond.notify()  # only the batching thread waits on this condition
        return req

    def _report(self, info: BatchInfo) -> None:
        if self._on_batch is not None:
            try:
                self._on_batch(info)
            except Exception:  # metrics must never stop the batcher
                log.exception("metrics callback failed for %s", self.name)

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("batcher for %s did not stop within %.0f s", self.name, timeout)

    # -- the batching thread --------------------------------------------------------------------
    def _take_batch(self) -> list[_Request] | None:
        with self._cond:
            while not self._queue or self._busy:
                if self._closing and not self._queue:
                    return None
                self._cond.wait()
            self._busy = True
            deadline = self._queue[0].enqueued + self.max_delay_s
            concurrent = self._last_requests > 1 or len(self._queue) > 1
            while concurrent and self._queued_rows < self.max_batch_size and not self._closing:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            first_key = self._queue[0].key
            batch, rest, rows = [], deque(), 0
            for req in self._queue:
                if req.key == first_key and rows + req.rows <= self.max_batch_size:
                    batch.append(req)
                    rows += req.rows
                else:
                    rest.append(req)
            self._queue = rest
            self._queued_rows -= rows
            self._last_requests = len(batch)
            return batch

    def _loop(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            started = time.perf_counter()
            try:
                self._run_batch(batch)
            except BaseException as exc:  # a caller must always get an answer
                log.exception("batch for %s failed", self.name)
                for req in batch:
                    if not req.future.done():
                        req.future.set_exception(exc)
            elapsed = time.perf_counter() - started
            with self._cond:
                self._busy = False
            self._report(BatchInfo(rows=sum(r.rows for r in batch), requests=len(batch),
                                   background=all(r.background for r in batch),
                                   queue_s=[started - r.enqueued for r in batch], compute_s=elapsed))

    def _run_batch(self, batch: list[_Request]) -> None:
        if len(batch) == 1:
            self._run_alone(batch[0])
            return
        names = list(batch[0].inputs)
        try:
            merged = {k: self._concat(k, [r.inputs[k] for r in batch]) for k in names}
            outputs = self._run(merged)
        except Exception:  # noqa: BLE001 - each request gets its own result or error below
            # One bad request must not fail its neighbours: find it by running each alone. Whatever the
            # failure (a value the backend refused, a batch too big for the GPU's memory), each request
            # alone either succeeds or fails for its own reason.
            for req in batch:
                self._run_alone(req)
            return
        total = sum(r.rows for r in batch)
        if any(o.ndim == 0 or o.shape[0] != total for o in outputs.values()):
            log.warning("model %s returned outputs without a batch axis; running requests one by one", self.name)
            for req in batch:
                self._run_alone(req)
            return
        start = 0
        for req in batch:
            end = start + req.rows
            req.future.set_result({k: v[start:end] for k, v in outputs.items()})
            start = end

    def _concat(self, name: str, arrays: list[np.ndarray]) -> np.ndarray:
        if name in self._pad and arrays[0].ndim >= 2:
            longest = max(a.shape[1] for a in arrays)
            if any(a.shape[1] != longest for a in arrays):
                arrays = [
                    np.pad(a, [(0, 0), (0, longest - a.shape[1])] + [(0, 0)] * (a.ndim - 2), constant_values=self._pad[name])
                    for a in arrays
                ]
        return np.concatenate(arrays, axis=0)

    def _run_alone(self, req: _Request) -> None:
        try:
            req.future.set_result(self._run(req.inputs))
        except Exception as exc:  # noqa: BLE001 - delivered to the caller, who raises it
            req.future.set_exception(exc)
