"""The inference engine one web worker owns: every model's active version, swaps, status.

The runtime calls ``attach(services)`` in each serving process; views and the learning code reach the
engine as ``services.get("inference")`` and call ``engine.infer("learner", {...})``.

Swaps never fail a request: a request takes a reference to the version it started on; activation
loads, verifies and warms the new version first, then switches the pointer; the old version is closed
only when its last request has finished (its batcher drains first). Every worker notices a new ACTIVE
file (written by ``classroom-edge models activate`` or another worker) within ``watch_interval_s``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from appliance.errors import AppError, BadRequest, Unavailable
from appliance.inference.loaded import LoadedModel
from appliance.inference.manifest import check_name
from appliance.inference.metrics import InferenceMetrics, shared_stats_dir
from appliance.inference.repository import Repository, stat_stamp
from appliance.services import PartStatus, Services
from appliance.system.malloc import trim_heap

log = logging.getLogger(__name__)


def intra_op_threads(configured: int, processes: int) -> int:
    """Threads per model run: the configured number, or this process's share of the usable cores.

    Every web worker runs its own batches. Two workers on two cores that each ask ONNX Runtime for
    two threads put four on two cores, and a batch then waits for its preempted slowest thread:
    40 students' embeddings median p99 ~120-140 ms and ~645 answers/s, against ~95 ms and ~800/s
    with one thread each (python -m bench.thread_split). 0 means the backend's own default.
    """
    if configured > 0:
        return configured
    if processes <= 1:
        return 0
    return max(1, len(os.sched_getaffinity(0)) // processes)


def why_not_loaded(name: str, version: str, message: str) -> str:
    """The status line of a version that failed to load: the message, with the version in front
    unless it names it already. The repository's and the loader's do ("model lookup version 1: ...",
    "lookup/1: ..."): the admin page read "lookup: version 1: model lookup version 1: ..."."""
    if f"{name} version {version}" in message or f"{name}/{version}" in message:
        return message
    return f"version {version}: {message}"


# What the admin page shows of a loaded model (LoadedModel.describe), as "not known" for one that is
# not: without them its batch column read "– / – /" (the template shows None as "–", nothing as nothing).
NOT_LOADED = {"version": None, "backend": None, "active_providers": [], "max_batch_size": None,
              "dynamic_batching": None}


class InferenceEngine:
    def __init__(self, settings, repo_dir: str | os.PathLike, cache_dir: str | os.PathLike, processes: int = 1):
        self.settings = settings
        self.intra_op_threads = intra_op_threads(settings.intra_op_threads, processes)
        self.repository = Repository.for_serving(repo_dir, settings.trusted_keys)
        self.cache_dir = Path(cache_dir)
        self.metrics = InferenceMetrics(self, shared_stats_dir())
        self._models: dict[str, LoadedModel] = {}
        self._errors: dict[str, str] = {}  # model -> why its wanted version is not serving
        self._failed: dict[str, tuple] = {}  # model -> (version, manifest mtime) that failed: not retried
        self._lock = threading.Lock()  # _models, _errors and the users/retired fields of each model
        self._load_locks: dict[str, threading.Lock] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @classmethod
    def from_services(cls, services: Services) -> InferenceEngine:
        s = services.cfg.inference
        repo = Path(s.repository) if s.repository else services.data_dir / "models"
        return cls(s, repo, services.cache_dir, processes=services.serving_processes)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> InferenceEngine:
        self.metrics.start()
        for name in self.wanted_models():
            try:
                self._sync_model(name)
            except Exception as exc:  # one model's bad repository entry must not stop the others
                log.exception("checking model %s failed", name)
                with self._lock:
                    self._errors[name] = f"{type(exc).__name__}: {exc}"
        if self.settings.watch_interval_s > 0:
            self._watcher = threading.Thread(target=self._watch, name="inference-watch")
            self._watcher.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(30)
            self._watcher = None
        with self._lock:
            models, self._models = list(self._models.values()), {}
        for m in models:
            m.close()
        self.metrics.close()

    def wanted_models(self) -> list[str]:
        return list(self.settings.models) or self.repository.model_names()

    def _watch(self) -> None:
        while not self._stop.wait(self.settings.watch_interval_s):
            trim_heap()  # give back what the last big batches freed (see appliance.system.malloc)
            try:
                names = self.wanted_models()
            except OSError:  # an unreadable repository folder: say so and look again next time
                log.exception("listing the models in %s failed", self.repository.root)
                continue
            for name in names:
                if self._stop.is_set():
                    return
                try:
                    self._sync_model(name)
                except Exception:  # the watcher must survive a bad repository entry
                    log.exception("checking model %s failed", name)

    # -- loading and swapping ------------------------------------------------------------------
    def _load_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._load_locks.setdefault(name, threading.Lock())

    def _sync_model(self, name: str) -> None:
        """Serve the version ACTIVE names, if that is not what is loaded (and it did not fail before)."""
        want = self.repository.active_version(name)
        if want is None:
            with self._lock:
                self._errors[name] = "no versions in the repository"
            return
        with self._lock:
            current = self._models.get(name)
        if current is not None and current.version == want:
            with self._lock:
                self._errors.pop(name, None)  # ACTIVE back on what serves: an old failure is no news
            return
        stamp = self._failure_stamp(name, want)
        if self._failed.get(name) == stamp:
            return
        try:
            self._swap(name, want)
        except AppError as exc:
            self._failed[name] = stamp
            log.error("model %s version %s not loaded: %s", name, want, exc.message)

    def _failure_stamp(self, name: str, version: str) -> tuple:
        """What a failed load is remembered by, so it is not retried every watch tick: the version's
        files (a restored model.onnx counts) and ACTIVE (activating the same version again asks again)."""
        d = self.repository.root / name / version
        try:
            files = tuple(sorted((p.name, stat_stamp(p)) for p in d.iterdir() if p.is_file()))
        except OSError:
            files = ()
        return version, files, stat_stamp(self.repository.root / name / "ACTIVE")

    def _swap(self, name: str, version: str, before_switch=None) -> LoadedModel:
        with self._load_lock(name):
            with self._lock:
                current = self._models.get(name)
            if current is not None and current.version == version and before_switch is None:
                return current
            mv = self.repository.version(name, version)
            # An activate or rollback that fails is answered to whoever asked, and the version served
            # keeps serving: the model is not "partly working" for it (it stayed so until the next
            # successful switch). A version the watcher or a start could not load is nobody's answer.
            report = current is None or before_switch is None
            try:
                new = LoadedModel.load(self.repository, mv, self.settings, self.cache_dir, self.metrics,
                                       self.intra_op_threads)
            except AppError as exc:
                if report:
                    with self._lock:
                        self._errors[name] = why_not_loaded(name, version, exc.message)
                raise
            except Exception as exc:  # a native loader error: reported, never half-swapped
                if report:
                    with self._lock:
                        self._errors[name] = f"version {version}: {type(exc).__name__}: {exc}"
                raise Unavailable(f"model {name} version {version} could not be loaded: {exc}") from exc
            try:
                if before_switch is not None:
                    before_switch()  # write ACTIVE only once the new version is known to work
            except BaseException:
                new.close()
                raise
            with self._lock:
                old = self._models.get(name)
                self._models[name] = new
                self._errors.pop(name, None)
                self._failed.pop(name, None)
                close_old = old is not None and old.users == 0
                if old is not None:
                    old.retired = True
            if close_old:
                old.close()
            trim_heap()
            return new

    def activate(self, name: str, version: str) -> None:
        check_name("model", name)
        check_name("version", version)
        self._swap(name, version, before_switch=lambda: self.repository.set_active(name, version))

    def rollback(self, name: str) -> str:
        current = self.repository.active_version(check_name("model", name))
        target = self.repository.rollback_target(name)
        self._swap(name, target, before_switch=lambda: self.repository.mark_rolled_back(name, target, current))
        return target

    # -- serving -------------------------------------------------------------------------------
    def acquire(self, name: str, version: str | None = None) -> LoadedModel:
        """The loaded version of ``name``, held so a swap cannot close it; pair with ``release``."""
        with self._lock:
            model = self._models.get(name)
            if model is not None:
                model.users += 1
            error = self._errors.get(name)
        if model is None:
            check_name("model", name)
            if error or name in self.wanted_models():
                raise Unavailable(f"model {name} is not ready" + (f": {error}" if error else ""))
            if name in self.repository.model_names():
                # Kept on disk (minilm-fp32, the reference for quantization) but never loaded: a 503
                # "not ready" would have a client wait for something that will not come.
                raise BadRequest(f"model {name!r} is in the repository but not served here (inference.models)")
            raise BadRequest(f"unknown model {name!r}")
        if version is not None and version != model.version:
            self.release(model)
            check_name("version", version)
            raise BadRequest(f"model {name} serves version {model.version}, not {version!r}")
        return model

    def release(self, model: LoadedModel) -> None:
        with self._lock:
            model.users -= 1
            close_now = model.retired and model.users == 0
        if close_now:
            model.close()  # the last request on a swapped-out version turns the lights off
            trim_heap()

    @contextmanager
    def using(self, name: str, version: str | None = None):
        """``acquire``/``release`` as a context manager."""
        model = self.acquire(name, version)
        try:
            yield model
        finally:
            self.release(model)

    def run(self, name: str, inputs: dict[str, np.ndarray], version: str | None = None,
            background: bool = False, batching: bool = True) -> tuple[str, dict[str, np.ndarray]]:
        """(version that answered, outputs). Records metrics for every outcome. ``background``: work
        nobody waits for (indexing a course, calibrating its grading), counted and timed in /metrics
        but kept out of the admin page's request latencies, which say what students wait.
        ``batching=False``: run these rows as they are, never together with other callers' (an int8
        model's output depends a little on its batch), in their turn (see ``LoadedModel.run``)."""
        t0 = time.perf_counter()
        outcome, answered = "failure", None
        try:
            model = self.acquire(name, version)
            answered = model.version
            try:
                # Background work runs in batches of its own (a course's sentences, 16 at a time): merged
                # with students' rows it counted as their batches on the admin page, and made them wait.
                outputs = model.run(inputs, batching, background)
            finally:
                self.release(model)
            outcome = "success"
            return model.version, outputs
        except AppError as exc:
            outcome = "unavailable" if isinstance(exc, Unavailable) else "client_error" if exc.status < 500 else "failure"
            raise
        finally:
            # Unknown names get no series of their own: a typo loop must not grow /metrics forever.
            if outcome != "client_error" or name in self._models:
                self.metrics.record_request(name, time.perf_counter() - t0, outcome, background, answered)

    def infer(self, name: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """In-process inference for the LMS: outputs by name."""
        return self.run(name, inputs)[1]

    # -- what the API and the admin page show --------------------------------------------------
    def loaded(self, name: str) -> LoadedModel | None:
        with self._lock:
            return self._models.get(name)

    def ready(self) -> bool:
        with self._lock:
            return all(n in self._models for n in self.wanted_models())

    def models_status(self) -> list[dict]:
        out = []
        with self._lock:
            models, errors, failed = dict(self._models), dict(self._errors), dict(self._failed)
        for name in sorted(set(self.wanted_models()) | models.keys()):
            m = models.get(name)
            # The version that failed to load (damaged files, a bad signature) is not offered to serve again.
            entry = {"name": name, "ready": m is not None, "error": errors.get(name),
                     "versions": self.repository.versions(name), "failed_version": failed.get(name, (None,))[0],
                     **NOT_LOADED}
            if m is not None:
                entry.update(m.describe())
            # Not loaded: its refusals only. The latencies of versions it served before are no figure of
            # a model that serves nothing now (pooled, they read as the current version's).
            entry.update(self.metrics.summary(name, m.version if m is not None else None, every_version=False))
            out.append(entry)
        return out

    def status(self) -> PartStatus:
        models = self.models_status()
        if not models:
            return PartStatus("inference", "degraded", f"no models in {self.repository.root}; run: classroom-edge models build")
        problems = [f"{m['name']}: {m['error']}" for m in models if m["error"]]
        problems += [f"{m['name']}: {m['fallback']}" for m in models if m.get("fallback")]
        detail = "; ".join(problems) or ", ".join(
            f"{m['name']} v{m['version']} on {','.join(m.get('active_providers') or [m.get('backend') or '?'])}" for m in models)
        return PartStatus("inference", "degraded" if problems else "ok", detail, {"models": models})


def attach(services: Services) -> InferenceEngine | None:
    """Runtime hook (bootstrap.attach_components): start the engine in this process and expose it."""
    if not services.cfg.inference.enabled:
        services.report_status("inference", lambda: PartStatus(
            "inference", "disabled", "inference.enabled is false: no models are loaded in this process"))
        return None
    engine = InferenceEngine.from_services(services)
    services.provide("inference", engine)
    services.report_status("inference", engine.status)
    engine.start()
    return engine
