"""Training when a teacher asks for it, from the web process.

The nightly timer runs ``classroom-edge train``; a teacher who has just finished a unit can press
"Train now" instead of waiting. One run at a time, on one thread this object owns and joins on close,
so a second press while a run is going returns "already running" instead of starting another.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import asdict

log = logging.getLogger(__name__)


class TrainingOnDemand:
    def __init__(self, services):
        self.services = services
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.last: dict | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def request(self, who: str) -> bool:
        """Start a run now; False when one is already going."""
        with self._lock:
            if self.running:
                return False
            self._thread = threading.Thread(target=self._run, args=(who,), name="train-on-demand")
            self._thread.start()
            return True

    def _run(self, who: str) -> None:
        from appliance.federated.training import run_training

        started = time.time()
        try:
            result = asdict(run_training(self.services, now=True))
        except Exception as exc:  # noqa: BLE001 - shown to the teacher; the nightly run still happens
            log.exception("training requested by %s failed", who)
            result = {"status": "failed", "message": f"{type(exc).__name__}: {exc}"}
        result.update({"requested_by": who, "started_at": started, "seconds": round(time.time() - started, 1)})
        self.last = result
        log.info("training requested by %s: %s (%s)", who, result["status"], result["message"])

    def wait(self, timeout: float | None = None) -> None:
        t = self._thread
        if t is not None:
            t.join(timeout)

    def close(self) -> None:
        self.wait(60)
