"""Course imports in the background, for the admin page's live progress bar.

One worker thread runs imports one after another (they serialise on the blob store's lock anyway). The
page polls ``get(job_id)``, a plain dict ready for JSON; with a ``JobStore`` the status is also kept in
the database, so a poll answered by another web worker sees it too. ``close()`` cancels queued jobs,
asks the running one to stop at its next progress report (only before its commit, so nothing is
half-done), and joins the thread: nothing outlives the process's orderly shutdown.
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
import uuid
from pathlib import Path

from appliance.content.importer import Importer
from appliance.content.jobstore import JobStore
from appliance.errors import AppError, ImportRejected

log = logging.getLogger(__name__)

_STOP = object()
CANCELLABLE_STAGES = ("checking", "verifying")
PERSIST_EVERY_S = 0.25  # progress reaches the database a few times a second, state changes at once


class ImportJobs:
    def __init__(self, importer: Importer, store: JobStore | None = None, keep: int = 50):
        self._importer = importer
        self._store = store
        self._keep = keep
        self._persisted: dict[str, float] = {}
        self._jobs: collections.OrderedDict[str, dict] = collections.OrderedDict()
        self._queue: queue.Queue = queue.Queue()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, path: str | os.PathLike, *, force: bool = False, delete_after: bool = False,
               label: str | None = None) -> str:
        """Queue an import of ``path``; ``delete_after`` removes the file when done (an upload)."""
        if self._stopping.is_set():
            raise ImportRejected("the box is shutting down; import the course after it restarts.")
        job_id = uuid.uuid4().hex
        job = {"id": job_id, "label": label or Path(path).name, "state": "queued", "stage": "queued",
               "done_bytes": 0, "total_bytes": 0, "percent": 0.0, "result": None, "error": None, "code": None,
               "force": force, "created_at": time.time(), "finished_at": None}
        if self._store is not None:
            self._store.save(job)  # first: a poll through another worker must find it, and a
            self._store.prune()    # failure here leaves no half-registered job behind
        with self._cond:
            self._jobs[job_id] = job
            while len(self._jobs) > self._keep:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest]["state"] in ("queued", "running"):
                    break
                self._jobs.popitem(last=False)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="content-import", daemon=False)
                self._thread.start()
        self._queue.put((job_id, Path(path), force, delete_after))
        return job_id

    def get(self, job_id: str) -> dict | None:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None:
                return dict(job)
        return self._store.load(job_id) if self._store is not None else None

    def list(self) -> list[dict]:
        """Recent jobs, newest first (this process's and, with a store, every worker's)."""
        with self._cond:
            local = {j["id"]: dict(j) for j in self._jobs.values()}
        merged = {j["id"]: j for j in (self._store.recent() if self._store is not None else [])}
        merged.update(local)
        return sorted(merged.values(), key=lambda j: j["created_at"], reverse=True)[: self._keep]

    def wait(self, job_id: str, timeout: float | None = None) -> dict:
        """Block until the job has finished (or ``timeout``); returns its status."""
        with self._cond:
            self._cond.wait_for(lambda: self._jobs[job_id]["state"] not in ("queued", "running"), timeout)
            return dict(self._jobs[job_id])

    def _update(self, job_id: str, **changes) -> None:
        # Only the worker thread changes a job after submit, so the snapshot cannot go stale. The
        # database is written first: whoever ``wait``s and then polls another worker sees the same.
        with self._cond:
            snapshot = {**self._jobs[job_id], **changes}
        now = time.monotonic()
        if self._store is not None and ("state" in changes or now - self._persisted.get(job_id, 0.0) >= PERSIST_EVERY_S):
            self._persisted[job_id] = now
            try:
                self._store.save(snapshot)
            except Exception as exc:  # noqa: BLE001 - the import itself must not fail because its
                # progress could not be recorded; this worker still answers from memory.
                log.warning("could not record progress of import %s: %s", job_id, exc)
        with self._cond:
            self._jobs[job_id].update(changes)
            self._cond.notify_all()

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            job_id, path, force, delete_after = item
            if self._stopping.is_set():
                final = {"state": "cancelled", "stage": "cancelled", "error": "cancelled: the box is shutting down."}
            else:
                final = self._run(job_id, path, force)
            if delete_after:
                path.unlink(missing_ok=True)  # before the final state, so a waiter never sees it linger
            self._update(job_id, finished_at=time.time(), **final)

    def _run(self, job_id: str, path: Path, force: bool) -> dict:
        self._update(job_id, state="running", stage="checking")

        def progress(done: int, total: int, stage: str) -> None:
            if self._stopping.is_set() and stage in CANCELLABLE_STAGES:
                raise ImportRejected("import cancelled: the box is shutting down. Nothing was changed.")
            pct = round(100.0 * done / total, 1) if total else 0.0
            self._update(job_id, done_bytes=done, total_bytes=total, stage=stage, percent=pct)

        try:
            result = self._importer.run(path, force=force, progress=progress)
        except AppError as exc:
            log.warning("import of %s failed: %s", path.name, exc.message)
            # An upload is stored under a random name; the admin knows the file by the name they chose.
            label = (self.get(job_id) or {}).get("label") or path.name
            return {"state": "failed", "stage": "failed", "error": exc.message.replace(path.name, label),
                    "code": exc.code}
        except Exception as exc:
            log.exception("import of %s failed unexpectedly", path.name)
            return {"state": "failed", "stage": "failed", "code": "internal_error",
                    "error": f"unexpected error during import: {exc}"}
        return {"state": "done", "stage": "done", "result": result.to_json(), "percent": 100.0}

    def close(self, timeout: float = 60.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("content import thread did not stop within %.0f s", timeout)
