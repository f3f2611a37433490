"""A watchdog heartbeat that pings systemd only while the work really gets done.

A thread that pings unconditionally proves nothing but that the interpreter is alive. ``Heartbeat``
pings ``WATCHDOG=1`` only when its ``probe`` (e.g. "the server answered a request on its own socket",
"the relay loop went round in the last minute") says the service is healthy, so a wedged worker stops
the pings and systemd's ``WatchdogSec=`` kills and restarts the unit. A stopped or frozen process
(SIGSTOP, a deadlock that holds the GIL) stops the pings too.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Self

from appliance.system import notify

log = logging.getLogger(__name__)


class Heartbeat:
    """Ping ``WATCHDOG=1`` every ``interval`` seconds while ``probe()`` returns true.

    ``interval`` defaults to half of the unit's ``WatchdogSec=`` (from ``$WATCHDOG_USEC``); without a
    watchdog armed ``start()`` does nothing and returns False. ``send`` is the ping function (tests
    pass their own). The thread is not a daemon: ``stop()`` joins it, bounded by ``timeout``.
    """

    def __init__(
        self,
        probe: Callable[[], bool],
        interval: float | None = None,
        send: Callable[[], bool] = notify.watchdog,
        name: str = "watchdog-heartbeat",
    ) -> None:
        self._probe = probe
        self._interval = interval
        self._send = send
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pings = 0
        self.misses = 0
        self.last_ok: float | None = None

    def start(self) -> bool:
        interval = self._interval if self._interval is not None else notify.watchdog_interval()
        if not interval:
            log.debug("no systemd watchdog armed; heartbeat not started")
            return False
        self._interval = interval
        self._thread = threading.Thread(target=self._run, name=self._name)
        self._thread.start()
        log.info("watchdog heartbeat every %.1fs", interval)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("watchdog heartbeat did not stop within %.1fs (probe stuck?)", timeout)
            self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def beat_once(self) -> bool:
        """One probe-and-ping round; True when a ping was sent."""
        try:
            healthy = bool(self._probe())
            error = None
        except Exception as exc:  # noqa: BLE001 - a failing probe means "unhealthy", never a dead thread
            healthy, error = False, exc
        if not healthy:
            self.misses += 1
            # Log the first miss and then every tenth, so a long outage does not flood the journal.
            if self.misses == 1 or self.misses % 10 == 0:
                log.warning("watchdog probe failed (%d in a row)%s; not pinging systemd",
                            self.misses, f": {error}" if error else "")
            return False
        if self.misses:
            log.info("watchdog probe healthy again after %d misses", self.misses)
        self.misses = 0
        self.last_ok = time.monotonic()
        if self._send():
            self.pings += 1
        return True

    def _run(self) -> None:
        self.beat_once()  # ping at once: the first interval may be most of the timeout already
        while not self._stop.wait(self._interval):
            self.beat_once()
