"""Inference metrics: Prometheus exposition for scrapers, recent percentiles for the admin page.

Each engine owns its ``CollectorRegistry`` (no process-global metrics, so tests and several engines
never share counters). Under gunicorn every worker process has its own engine and so its own counts:
a scrape of ``/metrics`` sees the worker that answered it. When ``PROMETHEUS_MULTIPROC_DIR`` is set
in the environment of the web service (before it starts), prometheus_client keeps the values in
files in that directory and ``/metrics`` sums every worker; the runtime must empty the directory at
start. The per-model state (version, backend, providers, fallback) is read live at scrape time.
"""
from __future__ import annotations

import os
import threading
from collections import Counter as Tally
from collections import deque

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

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ModelStats:
    """The last few thousand latencies and batch sizes of one model, for exact p50/p99 on the admin
    page (histogram buckets are too coarse to tell 4 ms from 9 ms)."""

    def __init__(self, keep: int = 4096):
        self._lock = threading.Lock()
        self._latency = deque(maxlen=keep)
        self._batches = Tally()
        self.requests = 0
        self.errors = 0

    def record_request(self, seconds: float, ok: bool) -> None:
        with self._lock:
            self.requests += 1
            if ok:
                self._latency.append(seconds)
            else:
                self.errors += 1

    def record_batch(self, rows: int) -> None:
        with self._lock:
            self._batches[rows] += 1

    def summary(self) -> dict:
        with self._lock:
            lat = np.fromiter(self._latency, dtype=float)
            batches = dict(self._batches)
            requests, errors = self.requests, self.errors
        n_batches = sum(batches.values())
        return {
            "requests": requests,
            "errors": errors,
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 3) if lat.size else None,
            "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 3) if lat.size else None,
            "batches": n_batches,
            "mean_batch_rows": round(sum(k * v for k, v in batches.items()) / n_batches, 2) if n_batches else None,
            "max_batch_rows": max(batches) if batches else None,
        }


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


class InferenceMetrics:
    def __init__(self, engine=None):
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
        self._stats: dict[str, ModelStats] = {}
        self._counters: dict[tuple, object] = {}
        self._per_model: dict[str, tuple] = {}
        self._lock = threading.Lock()
        self._state = _StateCollector(engine) if engine is not None else None
        if self._state is not None:
            r.register(self._state)

    def stats(self, model: str) -> ModelStats:
        with self._lock:
            return self._stats.setdefault(model, ModelStats())

    def record_request(self, model: str, seconds: float, outcome: str) -> None:
        # Looking a labelled child up costs more than observing it; every request does this.
        key = (model, outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters.setdefault(key, self.requests.labels(model, outcome))
        counter.inc()
        ok = outcome == "success"
        if ok:
            self._children(model)[0].observe(seconds)
        self.stats(model).record_request(seconds, ok)

    def _children(self, model: str) -> tuple:
        children = self._per_model.get(model)
        if children is None:
            children = self._per_model.setdefault(model, (
                self.latency.labels(model), self.batch_rows.labels(model), self.compute.labels(model), self.queue.labels(model)))
        return children

    def batch_callback(self, model: str):
        _latency, rows, compute, queue = self._children(model)
        stats = self.stats(model)

        def on_batch(info: BatchInfo) -> None:
            rows.observe(info.rows)
            compute.observe(info.compute_s)
            for s in info.queue_s:
                queue.observe(s)
            stats.record_batch(info.rows)
        return on_batch

    def exposition(self) -> tuple[bytes, str]:
        """The text a Prometheus scrape gets, and its content type."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            if self._state is not None:
                registry.register(self._state)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
