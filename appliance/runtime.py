"""The supervisor: starts the parts of one process in order and stops them in reverse.

On a box each part is its own systemd service; ``classroom-edge run`` puts them all in one process for a
laptop or a first try. Either way the same ``Part`` objects do the work. One stop event (set by SIGTERM
or SIGINT) ends everything; every stop is bounded, so a stuck part cannot hold up shutdown forever.
A part that fails to start is reported (``failed`` with the reason on /api/v1/health) and, unless it
is essential, the rest keeps running: the LMS must keep serving when MQTT or a model is unavailable.
"""
from __future__ import annotations

import logging
import signal
import threading
import time
from typing import Protocol

from appliance.services import PartStatus, Services

log = logging.getLogger(__name__)


class Part(Protocol):
    name: str
    essential: bool

    def start(self) -> None: ...

    def stop(self, timeout: float) -> None: ...

    def status(self) -> PartStatus: ...


def notify(state: str) -> None:
    """sd_notify when running under systemd; a no-op elsewhere."""
    try:
        from appliance.system.notify import notify as sd_notify
    except ImportError:
        return
    sd_notify(state)


def watchdog_period() -> float:
    """Half of systemd's WatchdogSec when set (so one late ping is not fatal), else 5 s."""
    try:
        from appliance.system.notify import watchdog_interval
    except ImportError:
        return 5.0
    period = watchdog_interval()  # already half of WatchdogSec
    return max(0.5, period) if period else 5.0


class Runtime:
    def __init__(self, services: Services, parts: list[Part], stop_timeout: float = 10.0):
        self.services = services
        self.parts = parts
        self.stop_timeout = stop_timeout
        self.stop_event = threading.Event()
        self._started: list[Part] = []
        self._failed: dict[str, str] = {}

    def start(self) -> None:
        for part in self.parts:
            self.services.report_status(part.name, self._status_of(part))
            log.info("starting %s", part.name)
            try:
                part.start()
            except Exception as exc:
                if getattr(part, "essential", False):
                    log.error("%s failed to start: %s", part.name, exc)
                    self.stop()
                    raise
                log.warning("%s failed to start, continuing without it: %s", part.name, exc)
                self._failed[part.name] = str(exc)
                continue
            self._started.append(part)
        for st in self.services.statuses():
            log.info("part %-10s %-9s %s", st.name, st.state, st.detail)

    def _status_of(self, part: Part):
        def provider() -> PartStatus:
            if part.name in self._failed:
                return PartStatus(part.name, "failed", self._failed[part.name])
            return part.status()

        return provider

    def stop(self) -> None:
        notify("STOPPING=1")
        for part in reversed(self._started):
            log.info("stopping %s", part.name)
            t0 = time.monotonic()
            try:
                part.stop(self.stop_timeout)
            except Exception:  # noqa: BLE001 - keep stopping the others; the failure is logged
                log.exception("error while stopping %s", part.name)
            log.debug("%s stopped in %.2f s", part.name, time.monotonic() - t0)
        self._started.clear()

    def install_signal_handlers(self) -> None:
        def handler(signum, _frame):
            log.info("received %s, stopping", signal.Signals(signum).name)
            self.stop_event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run_until_stopped(self, watchdog_interval: float | None = None) -> None:
        """Block until SIGTERM; ping the systemd watchdog only while every essential part is healthy."""
        notify("READY=1")
        interval = watchdog_interval or watchdog_period()
        while not self.stop_event.wait(interval):
            if all(p.status().state in ("ok", "disabled", "degraded") for p in self._started if p.essential):
                notify("WATCHDOG=1")
        self.stop()
