"""Keep a classroom's keep-alive connections spread evenly over the web workers.

With a SO_REUSEPORT socket per worker (``web.reuse_port``) the kernel hashes each new connection to
one worker, and browsers keep their connections open for the lesson: 40 of them land 25/15 about as
often as 20/20 (a binomial draw), and the split then lasts. The worker with 25 serves its students on
its one core, at 25/20 of the even split's latency: in one run of four, the embeddings' p99 at 40
clients was 99 ms on a 15/25 split and 79-93 ms on 19/21 and 16/24.

So each worker publishes how many connections it holds, in memory shared with the other workers, and
a worker holding more than its share (the listening workers' total / their number, plus one) answers
one request with ``Connection: close``, at most once every ``CLOSE_EVERY_S``. The browser (or wrk)
opens a new connection for its next request, which the kernel hashes again: it goes to the other
worker half the time, and the split settles within a second or two (``python -m bench.balance``).
The answer says it closes the connection, so no client sends another request on it; nothing is lost.
A worker that is still loading has no socket (``server._listen_once_ready``) and is not counted.
"""
from __future__ import annotations

import mmap
import struct
import time

SLOTS = 64                 # more workers than a box runs; a slot per worker, reused when one exits
CLOSE_EVERY_S = 0.05       # at most 20 reconnections a second per worker while the split evens out
_SLOT = struct.Struct("qq")  # (listening: 0 or 1, open connections)


class ConnectionTable:
    """Each worker's open connections, in anonymous shared memory that the master maps before it forks
    the workers: one slot per worker, written only by that worker (and cleared by the master when it
    exits), so no lock is needed; an aligned 8-byte value is read whole."""

    def __init__(self, slots: int = SLOTS):
        self._mem = mmap.mmap(-1, slots * _SLOT.size)  # MAP_SHARED: the forked workers see one table
        self._values = memoryview(self._mem).cast("q")
        self.slots = slots

    # -- the master ---------------------------------------------------------------------------
    def claim(self, taken: set[int]) -> int:
        """A free slot for a worker about to be forked (``taken``: the live workers' slots)."""
        slot = next(i for i in range(self.slots) if i not in taken)
        self.clear(slot)
        return slot

    def clear(self, slot: int) -> None:
        self._values[2 * slot] = 0
        self._values[2 * slot + 1] = 0

    # -- a worker -----------------------------------------------------------------------------
    def listening(self, slot: int) -> None:
        self._values[2 * slot] = 1

    def publish(self, slot: int, connections: int) -> None:
        self._values[2 * slot + 1] = connections

    def share(self) -> float:
        """The connections a listening worker should hold: their total over the listening workers."""
        values = self._values.tolist()
        counts = [values[2 * i + 1] for i in range(self.slots) if values[2 * i]]
        return sum(counts) / len(counts) if counts else 0.0

    def close(self) -> None:
        self._values.release()
        self._mem.close()


def over_share(mine: int, share: float) -> bool:
    """More than one connection above the even split (one above: an odd total cannot split evenly)."""
    return mine > share + 1


class Balancer:
    """The gunicorn hooks that keep the split even (installed by ``server.gunicorn_server``)."""

    def __init__(self, table: ConnectionTable | None = None, clock=time.monotonic):
        self.table = table or ConnectionTable()
        self._clock = clock
        self._last_close = float("-inf")  # per worker: each forked worker has its own copy

    def pre_fork(self, server, worker) -> None:
        taken = {getattr(w, "balance_slot", None) for w in server.WORKERS.values()}
        worker.balance_slot = self.table.claim(taken)

    def worker_listening(self, worker) -> None:
        self.table.listening(worker.balance_slot)

    def child_exit(self, worker) -> None:
        slot = getattr(worker, "balance_slot", None)
        if slot is not None:
            self.table.clear(slot)

    def pre_request(self, worker, req) -> None:
        """Before each request: publish this worker's connections; ask this client to reconnect when the
        worker holds more than its share (``nr_conns``: the gthread worker's open connections)."""
        slot = getattr(worker, "balance_slot", None)
        mine = getattr(worker, "nr_conns", None)
        if slot is None or mine is None:
            return
        self.table.publish(slot, mine)
        now = self._clock()
        if now - self._last_close >= CLOSE_EVERY_S and over_share(mine, self.table.share()):
            self._last_close = now
            req.must_close = True  # gunicorn answers "Connection: close" and closes after the answer
