"""Inference metrics: Prometheus exposition for scrapers, recent percentiles for the admin page.

Each engine owns its ``CollectorRegistry`` (no process-global metrics, so tests and several engines
never share counters). Under gunicorn every worker process has its own engine and so its own counts:
a scrape of ``/metrics`` sees the worker that answered it. When ``PROMETHEUS_MULTIPROC_DIR`` is set
in the environment of the web service (before it starts), prometheus_client keeps the values in
files in that directory and ``/metrics`` sums every worker; the runtime must empty the directory at
start. The per-model state (version, backend, providers, fallback) is read live at scrape time.

Recording is buffered. A request only appends one tuple to a deque; ``flush`` folds what has piled up
into the Prometheus values and the admin statistics, once a second (``start``), before every scrape
and summary in this process, and whenever the buffer grows long. Why: observing a request the plain
way wrote about a dozen multiprocess values (each an ``os.getpid()`` check, a lock and an mmap
write), ~35 µs of a worker's CPU per inference under load, as much as the model and the batcher
together. A scrape answered by another worker sees this worker's counts at most a second late.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import threading
import time
from collections import Counter as Tally
from collections import defaultdict, deque
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

from appliance.inference.batcher import BatchInfo
from appliance.inference.settings import ADMIN_STATS_ENV

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
FLUSH_EVERY_S = 1.0
FLUSH_AT = 4096  # buffered requests that make the recording thread flush at once (batches never outnumber requests)
SHARE_EVERY_S = 1.0
SHARED_LATENCIES = 1024  # per model in a worker's shared file: enough for a p99, small to write every second


def observe_many(child, values) -> None:
    """``child.observe(v)`` for every v, with one write per touched bucket instead of one per value.

    prometheus_client has no bulk observe. Its histogram child keeps a sum and a non-cumulative count
    per bucket (``_sum``, ``_buckets``, ``_upper_bounds``; +Inf last), and ``observe`` adds 1 to the
    first bucket whose bound is >= the value. This does the same; test_metrics compares the two.
    """
    if not len(values):
        return
    arr = np.asarray(values, dtype=float)
    bucket = np.searchsorted(np.asarray(child._upper_bounds, dtype=float), arr, side="left")
    counts = np.bincount(bucket, minlength=len(child._upper_bounds))
    child._sum.inc(float(arr.sum()))
    for i in np.flatnonzero(counts):
        child._buckets[i].inc(int(counts[i]))


class ModelStats:
    """The last few thousand latencies and batch sizes of one model, for exact p50/p99 on the admin
    page (histogram buckets are too coarse to tell 4 ms from 9 ms)."""

    def __init__(self, keep: int = 4096):
        self._lock = threading.Lock()
        self._latency = deque(maxlen=keep)
        self._batches = Tally()
        self.requests = 0
        self.errors = 0
        self.background = 0

    def record_requests(self, latencies: list[float], errors: int, background: int = 0) -> None:
        """Successful requests' latencies, how many others failed, and how many background runs
        (not in the latencies: they are not what anyone waits for)."""
        with self._lock:
            self.requests += len(latencies) + errors
            self.errors += errors
            self.background += background
            self._latency.extend(latencies)

    def record_batches(self, rows: list[int]) -> None:
        with self._lock:
            self._batches.update(rows)

    def snapshot(self, latencies: int | None = None) -> dict:
        """Counts, the last ``latencies`` latencies (all kept when None) and the batch sizes, as JSON
        types: what another worker merges into its admin summary."""
        with self._lock:
            lat = list(self._latency)
            return {"requests": self.requests, "errors": self.errors, "background": self.background,
                    "latency_s": lat if latencies is None else lat[-latencies:],
                    "batches": {str(k): v for k, v in self._batches.items()}}


def summarize(snapshots: list[dict]) -> dict:
    """The admin page's figures from one or more workers' snapshots of one model."""
    lat = np.array([x for s in snapshots for x in s["latency_s"]], dtype=float)
    batches: Tally = Tally()
    for s in snapshots:
        batches.update({int(k): v for k, v in s["batches"].items()})
    n_batches = sum(batches.values())
    return {
        "requests": sum(s["requests"] for s in snapshots),
        "errors": sum(s["errors"] for s in snapshots),
        "background_runs": sum(s.get("background", 0) for s in snapshots),
        "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 3) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 3) if lat.size else None,
        "batches": n_batches,
        "mean_batch_rows": round(sum(k * v for k, v in batches.items()) / n_batches, 2) if n_batches else None,
        "max_batch_rows": max(batches) if batches else None,
        "workers": len(snapshots),
    }


RETIRED_FILE = "retired.json"  # the counts of every worker that is gone, added up
LOCK_FILE = ".lock"


class SharedStats:
    """Each web worker's admin figures in a directory all workers share, so the admin page sums
    every worker instead of showing the one that answered it (as ``/metrics`` does with Prometheus'
    multiprocess files, which hold only histogram buckets: too coarse for p50/p99).

    A worker writes its own file (``<pid>-<start time>-<token>.json``, replaced atomically) at most
    once a second when it has new figures (the flush timer writes what the limit held back), with its
    last ``SHARED_LATENCIES`` latencies per model. A worker that stops adds its counts to
    ``retired.json`` (no latencies: they say how fast a worker that is gone was) and removes its file;
    a reader does the same for a worker that died (no such process, or the start time in the name
    tells a reused pid apart). So the admin page's counts never go back when a worker is replaced, as
    Prometheus' counters do not, and a service that replaced a thousand workers still reads one file
    for them; the directory is emptied when the service starts.
    """

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        pid = os.getpid()
        # The process's start time too: a reused pid then never passes for this worker.
        self.name = f"{pid}-{_started(pid)}-{secrets.token_hex(4)}.json"
        self._written_at = 0.0
        self._retired = False

    def due(self) -> bool:
        return time.monotonic() - self._written_at >= SHARE_EVERY_S

    def write(self, snapshots: dict[str, dict]) -> None:
        self._written_at = time.monotonic()
        if self._retired:
            return  # its counts are the gone workers' now: a file again would count them twice
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            tmp = self.dir / f".{self.name}.tmp"
            tmp.write_text(json.dumps(snapshots), encoding="utf-8")
            os.replace(tmp, self.dir / self.name)
        except OSError as exc:  # the admin page then shows this worker's figures only
            log.warning("could not share inference figures in %s: %s", self.dir, exc)

    def others(self) -> tuple[list[dict], list[dict]]:
        """Every other live worker's snapshots, {key: snapshot} each; and the counts of the workers
        that are gone (one folded snapshot per key). A gone worker's file found here is folded in."""
        live = []
        try:
            with self._folding():
                retired = _read(self.dir / RETIRED_FILE) or {}
                for path in self.dir.glob("*.json"):
                    if path.name in (self.name, RETIRED_FILE):
                        continue
                    doc = _read(path)
                    pid, started = (path.name.split("-") + ["", ""])[:2]
                    # Gone: no such process now, or the pid belongs to one that started at another time.
                    if not pid.isdigit() or _started(int(pid)) != started:
                        retired = self._fold_in(retired, doc or {})
                        path.unlink(missing_ok=True)
                    elif doc is not None:
                        live.append(doc)
        except OSError as exc:
            log.warning("could not read the other workers' inference figures in %s: %s", self.dir, exc)
            return live, []
        return live, [retired]

    def retire(self, snapshots: dict[str, dict]) -> None:
        """This worker stops: its counts stay (folded into the gone workers'), its file goes; in one
        step under the lock, so no reader counts it twice or not at all."""
        self._retired = True
        try:
            with self._folding():
                self._fold_in(_read(self.dir / RETIRED_FILE) or {}, snapshots)
                (self.dir / self.name).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not keep a stopped worker's inference counts in %s: %s", self.dir, exc)

    @contextmanager
    def _folding(self):
        """The directory's lock: readers and retiring workers one at a time (a few small files: quick)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / LOCK_FILE, "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _fold_in(self, retired: dict, snapshots: dict) -> dict:
        """``snapshots``' counts added to ``retired``, written back (the caller holds the lock). The
        latencies are not kept: they say how fast a worker that is gone was."""
        for key, snap in snapshots.items():
            if not isinstance(snap, dict):
                continue
            into = retired.setdefault(key, {"requests": 0, "errors": 0, "background": 0, "latency_s": [], "batches": {}})
            for count in ("requests", "errors", "background"):
                into[count] += int(snap.get(count, 0))
            for rows, n in (snap.get("batches") or {}).items():
                into["batches"][rows] = into["batches"].get(rows, 0) + int(n)
        if snapshots:
            tmp = self.dir / f".{RETIRED_FILE}.{secrets.token_hex(4)}.tmp"
            tmp.write_text(json.dumps(retired), encoding="utf-8")
            os.replace(tmp, self.dir / RETIRED_FILE)
        return retired


def _read(path: Path) -> dict | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # gone or half-replaced meanwhile: next time
    return doc if isinstance(doc, dict) else None


def stats_key(model: str, version: str | None) -> str:
    """The admin figures' key (also in the shared files): a model's versions are counted apart."""
    return model if version is None else f"{model}/{version}"


def _started(pid: int) -> str:
    """When the process started (clock ticks since boot, from /proc); "" when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


class _StateCollector:
    """Per-model gauges read from the engine at scrape time (no stale label sets after a swap)."""

    def __init__(self, engine):
        self._engine = engine

    def collect(self):
        info = GaugeMetricFamily("ce_inference_model_info", "The loaded version of each model (value 1).",
                                 labels=["model", "version", "backend", "providers"])
        ready = GaugeMetricFamily("ce_inference_model_ready", "1 when the model answers requests.", labels=["model"])
        fallback = GaugeMetricFamily("ce_inference_provider_fallback",
                                     "1 when the model runs on a slower provider than configured.", labels=["model"])
        for m in self._engine.models_status():
            ready.add_metric([m["name"]], 1.0 if m["ready"] else 0.0)
            if m.get("version") is not None:
                info.add_metric([m["name"], m["version"], m.get("backend") or "", ",".join(m.get("active_providers") or [])], 1.0)
            fallback.add_metric([m["name"]], 1.0 if m.get("fallback") else 0.0)
        yield from (info, ready, fallback)


def shared_stats_dir() -> Path | None:
    """Where the web workers share their admin figures, when the web service set one up for its
    workers (appliance/web/server.py); None in a single process, which has nobody to share with."""
    path = os.environ.get(ADMIN_STATS_ENV)
    return Path(path) if path else None


class InferenceMetrics:
    def __init__(self, engine=None, share_dir: Path | None = None):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ce_inference_requests", "Inference requests by outcome.", ["model", "outcome"], registry=r)
        self.latency = Histogram("ce_inference_request_duration_seconds", "Time from request to answer in the engine.",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue = Histogram("ce_inference_queue_duration_seconds", "Time a request waited for its batch.",
                               ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute = Histogram("ce_inference_compute_duration_seconds", "Time one batch ran in the backend.",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_rows = Histogram("ce_inference_batch_size", "Rows per executed batch.", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self._stats: dict[str, ModelStats] = {}  # by stats_key(model, version)
        self._counters: dict[tuple, object] = {}
        self._per_model: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._pending_requests: deque[tuple[str, float, str]] = deque()
        self._pending_batches: deque[tuple[str, BatchInfo]] = deque()
        self._flush_lock = threading.Lock()
        self._flusher: threading.Thread | None = None
        self._stop = threading.Event()
        self._state = _StateCollector(engine) if engine is not None else None
        if self._state is not None:
            r.register(self._state)
        self._shared = SharedStats(share_dir) if share_dir is not None else None
        # Figures folded since this worker last wrote its shared file. True at first, so a worker that
        # has served nothing yet still writes one and is counted among the workers.
        self._unshared = share_dir is not None

    def stats(self, model: str, version: str | None = None) -> ModelStats:
        with self._lock:
            return self._stats.setdefault(stats_key(model, version), ModelStats())

    def summary(self, model: str, version: str | None = None, every_version: bool = True) -> dict:
        """The admin page's figures for ``model`` at ``version`` (the one served: a version rolled back
        from keeps its own; None: every version, or with ``every_version=False`` none: only what was
        refused, for a model that is not loaded), including what is still buffered, summed over every
        web worker that shares its figures and the counts of those that are gone."""
        self.flush()

        def wanted(key: str) -> bool:
            # The model's own key holds what no version answered (refused while it was not loaded, a
            # version that is not served): the model's, whichever version is served now.
            return key in (model, stats_key(model, version)) or (
                version is None and every_version and key.startswith(f"{model}/"))

        with self._lock:
            mine = [st for key, st in self._stats.items() if wanted(key)]
        if self._shared is None:
            return {**summarize([st.snapshot() for st in mine]), "workers": 1}
        # This worker's latencies as many as the others share, or the answering worker's would
        # outweigh theirs and the percentiles would change with whichever worker answers.
        snapshots = [st.snapshot(SHARED_LATENCIES) for st in mine]
        others, retired = self._shared.others()
        snapshots += [snap for o in others + retired for key, snap in o.items() if wanted(key) and isinstance(snap, dict)]
        summary = summarize(snapshots)
        summary["workers"] = 1 + len(others)
        return summary

    # -- recording: one append per request or batch (deque appends are atomic) -------------------
    def record_request(self, model: str, seconds: float, outcome: str, background: bool = False,
                       version: str | None = None) -> None:
        """``version``: the version that answered (None: none did, e.g. the model is not loaded)."""
        self._pending_requests.append((model, seconds, outcome, background, version))
        if len(self._pending_requests) >= FLUSH_AT:
            self.flush()

    def batch_callback(self, model: str, version: str | None = None):
        batches = self._pending_batches

        def on_batch(info: BatchInfo) -> None:
            batches.append((model, version, info))
        return on_batch

    # -- folding the buffer into the values ------------------------------------------------------
    def flush(self) -> None:
        with self._flush_lock:
            requests = [self._pending_requests.popleft() for _ in range(len(self._pending_requests))]
            batches = [self._pending_batches.popleft() for _ in range(len(self._pending_batches))]
            if requests or batches:
                self._fold(requests, batches)
                self._unshared = True
            if self._unshared and self._shared is not None and self._shared.due():
                self._unshared = False
                self._shared.write(self._snapshots())

    def _snapshots(self) -> dict[str, dict]:
        with self._lock:
            models = list(self._stats.items())
        return {key: st.snapshot(SHARED_LATENCIES) for key, st in models}

    def _fold(self, requests: list, batches: list) -> None:
        outcomes: Tally = Tally()
        timed: dict[str, list[float]] = defaultdict(list)  # successes by model, for the histogram
        # The admin page's figures, by (model, version):
        latencies: dict[tuple, list[float]] = defaultdict(list)
        failed: Tally = Tally()
        behind: Tally = Tally()  # background runs, whatever their outcome: counted apart on the admin page
        touched = set()
        for model, seconds, outcome, background, version in requests:
            outcomes[(model, outcome)] += 1
            key = (model, version)
            touched.add(key)
            if outcome == "success":
                timed[model].append(seconds)
            if background:
                behind[key] += 1
            elif outcome == "success":
                latencies[key].append(seconds)
            else:
                failed[key] += 1
        for (model, outcome), n in outcomes.items():
            self._counter(model, outcome).inc(n)
        for model in {m for m, _v in touched}:
            observe_many(self._children(model)[0], timed.get(model, ()))
        for key in touched:
            self.stats(*key).record_requests(latencies.get(key, []), failed.get(key, 0), behind.get(key, 0))
        by_model: dict[tuple, list[BatchInfo]] = defaultdict(list)
        for model, version, info in batches:
            by_model[(model, version)].append(info)
        for (model, version), infos in by_model.items():
            _latency, rows, compute, queue = self._children(model)
            observe_many(rows, [i.rows for i in infos])
            observe_many(compute, [i.compute_s for i in infos])
            observe_many(queue, [q for i in infos for q in i.queue_s])
            self.stats(model, version).record_batches([i.rows for i in infos if not i.background])

    def start(self, every_s: float = FLUSH_EVERY_S) -> None:
        """Flush on a timer, so other workers' scrapes see this worker's counts within ``every_s``."""
        if self._flusher is None:
            self._stop.clear()
            self._flusher = threading.Thread(target=self._flush_loop, args=(every_s,), name="metrics-flush", daemon=True)
            self._flusher.start()

    def close(self) -> None:
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join(10)
            self._flusher = None
        self.flush()
        if self._shared is not None:
            # No longer one of the service's workers; what it counted stays counted.
            self._shared.retire(self._snapshots())

    def _flush_loop(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            try:
                self.flush()
            except Exception:  # metrics must never take the worker down
                log.exception("flushing inference metrics failed")

    def _counter(self, model: str, outcome: str):
        key = (model, outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters.setdefault(key, self.requests.labels(model, outcome))
        return counter

    def _children(self, model: str) -> tuple:
        children = self._per_model.get(model)
        if children is None:
            children = self._per_model.setdefault(model, (
                self.latency.labels(model), self.batch_rows.labels(model), self.compute.labels(model), self.queue.labels(model)))
        return children

    def exposition(self) -> tuple[bytes, str]:
        """The text a Prometheus scrape gets, and its content type."""
        self.flush()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            if self._state is not None:
                registry.register(self._state)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
