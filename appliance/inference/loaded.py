"""One loaded model version: verified, loaded by its backend, warmed up, behind its batcher.

Warm-up runs before the version is ready because the first run of a graph is the slow one (ONNX
Runtime allocates its arenas, TensorRT may build an engine for minutes): a student must never be the
one who waits for it, and a swap must never put a cold model in front of live traffic.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from appliance.errors import BadRequest, IntegrityError
from appliance.inference.backend import Backend, LoadRequest
from appliance.inference.backends import backend_class
from appliance.inference.batcher import Batcher, request_rows
from appliance.inference.manifest import ModelVersion
from appliance.inference.repository import Repository
from appliance.inference.tensors import (
    NUMPY_OF,
    TensorSpec,
    check_inputs,
    check_limits,
    decode_json_tensor,
)

log = logging.getLogger(__name__)


def sample_input(spec: TensorSpec, batch: int, dynamic: int = 1) -> np.ndarray:
    """A valid all-zero input (zero is a valid token id, feature value and index); variable
    non-batch dimensions (a sequence length) get ``dynamic``."""
    shape = [batch if (i == 0 and d == -1) else (d if d >= 0 else dynamic) for i, d in enumerate(spec.shape)]
    if spec.datatype == "BYTES":
        arr = np.empty(shape, dtype=object)
        arr.fill("")
        return arr
    return np.zeros(shape, dtype=NUMPY_OF[spec.datatype])


def _check_padding(mv: ModelVersion, inputs: set[str]) -> None:
    """batch_padding must name inputs of the model: a misspelt one was silently never padded."""
    unknown = sorted(set(mv.meta.get("batch_padding") or {}) - inputs)
    if unknown:
        raise IntegrityError(f"{mv.name}/{mv.version}: model.json batch_padding names {unknown}, which the model "
                             f"does not take (its inputs: {sorted(inputs)})")


class LoadedModel:
    def __init__(self, mv: ModelVersion, backend: Backend, max_batch_size: int, max_delay_ms: float):
        self.mv = mv
        self.name, self.version = mv.name, mv.version
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.max_delay_ms = max_delay_ms
        self.batcher: Batcher | None = None
        self._checked: set[tuple] = set()  # input signatures (names, types, shapes) that passed check_inputs
        try:
            self._limited = [t for t in mv.inputs if t.max_shape is not None]  # model.json's max_shape
        except BadRequest as exc:
            raise IntegrityError(exc.message) from None
        self.loaded_at = time.time()
        self.warmup_s = 0.0
        # Requests currently using this version; the engine changes these under its lock.
        self.users = 0
        self.retired = False

    @classmethod
    def load(cls, repo: Repository, mv: ModelVersion, settings, cache_dir: Path, metrics=None,
             intra_op_threads: int = 0) -> LoadedModel:
        backend_type = mv.serving_backend(settings)
        t0 = time.perf_counter()
        repo.verify(mv, backend_type)
        backend_cls = backend_class(backend_type)
        declared_batch = int(mv.meta.get("max_batch_size", settings.batch_max_size))
        request = LoadRequest(
            name=mv.name, version=mv.version, path=mv.model_file(backend_type), sha256=mv.sha256,
            max_batch_size=declared_batch, settings=settings, cache_dir=Path(cache_dir), meta=mv.meta,
            intra_op_threads=intra_op_threads, version_dir=mv.path,
        )
        backend = backend_cls(request)
        try:
            declared = {t.name for t in mv.inputs}
            actual = {t.name for t in backend.inputs}
            if declared and declared != actual:
                raise IntegrityError(f"{mv.name}/{mv.version}: model.json declares inputs {sorted(declared)} "
                                     f"but the model takes {sorted(actual)}")
            _check_padding(mv, actual)
            batchable = bool(backend.inputs) and all(t.shape and t.shape[0] == -1 for t in backend.inputs)
            # model.json "dynamic_batching": false (like leaving dynamic_batching out of a Triton
            # config): callers run the model on their own threads. Right for a model whose run
            # costs less than handing a request to the batching thread and back (the learner: a
            # 7 µs run against two thread wake-ups per request; see docs/inference.md).
            batching = mv.meta.get("dynamic_batching", True) is not False
            max_batch = declared_batch if batchable else 0
            delay = float(mv.meta.get("max_queue_delay_ms", settings.batch_max_delay_ms))
            model = cls(mv, backend, max_batch, delay)
            model._warm_up(settings.warmup_runs)
            if max_batch > 0 and batching:
                model.batcher = Batcher(
                    f"{mv.name}:{mv.version}", backend.infer, max_batch, delay / 1000.0,
                    max_queue=settings.batch_max_queue,
                    on_batch=metrics.batch_callback(mv.name, mv.version) if metrics is not None else None,
                    pad=mv.meta.get("batch_padding") or {},
                )
        except BaseException:
            backend.close()
            raise
        log.info("model %s version %s ready on %s in %.2f s (warm-up %.2f s)%s", mv.name, mv.version,
                 ",".join(backend.active_providers) or backend.type, time.perf_counter() - t0, model.warmup_s,
                 f"; {backend.fallback}" if backend.fallback else "")
        return model

    def _warm_up(self, runs: int) -> None:
        t0 = time.perf_counter()
        custom = self.mv.meta.get("warmup")
        if custom:
            samples = [self._custom_warmup(custom)]
        else:
            sizes = sorted({1, self.max_batch_size}) if self.max_batch_size > 1 else [1]
            samples = [{s.name: sample_input(s, n) for s in self.backend.inputs} for n in sizes]
        for sample in samples:
            for _ in range(max(1, runs)):
                self.backend.infer(sample)
        self.warmup_s = time.perf_counter() - t0

    def _custom_warmup(self, tensors: list[dict]) -> dict[str, np.ndarray]:
        """model.json's own warm-up inputs, checked like a request. Without the check a wrong one
        failed inside the runtime as "could not run on this input", which names neither the warm-up
        nor model.json to the admin activating the version."""
        try:
            sample = {t.get("name"): decode_json_tensor(t) for t in tensors}
            check_inputs(self.backend.inputs, sample)
        except BadRequest as exc:
            raise IntegrityError(f"{self.name}/{self.version}: model.json warmup: {exc.message}") from None
        return sample

    def run(self, inputs: dict[str, np.ndarray], batching: bool = True, background: bool = False) -> dict[str, np.ndarray]:
        """Outputs for ``inputs``. Through the batcher, merged with other callers' rows; with
        ``batching=False`` through the batcher too, but alone: dynamic int8 quantization scales
        activations over the whole batch, so a row's output depends a little on the rows beside it,
        and callers that need the same answer every time (a grade, calibration) are never merged.
        ``background``: work nobody waits for (a course's sentences for search) runs in batches of its
        own, not counted among the students' batches on the admin page. Both still wait their turn, one
        run at a time: each concurrent run holds its own activations, and a web worker must stay small."""
        signature = tuple((k, v.dtype, v.shape) for k, v in inputs.items())
        if signature not in self._checked:
            check_inputs(self.backend.inputs, inputs)
            check_limits(self._limited, inputs)
            if len(self._checked) < 256:  # a client sending ever new shapes just gets checked every time
                self._checked.add(signature)
        rows = request_rows(inputs) if self.max_batch_size else 0  # the batcher checks its own
        batcher = self.batcher
        alone = not batching or background
        if rows <= self.max_batch_size:
            return self.backend.infer(inputs) if batcher is None else batcher.submit(inputs, alone, background)
        # A request bigger than a batch is split, so callers need not know the model's limit.
        step = self.max_batch_size
        chunks = [{k: v[i:i + step] for k, v in inputs.items()} for i in range(0, rows, step)]
        if batcher is None:
            parts = [self.backend.infer(c) for c in chunks]
        else:
            futures = [batcher.submit_async(c, alone, background) for c in chunks]
            parts = [f.result() for f in futures]
        return {k: np.concatenate([p[k] for p in parts], axis=0) for k in parts[0]}

    def describe(self) -> dict:
        return {
            "version": self.version,
            **self.backend.describe(),
            "max_batch_size": self.max_batch_size,
            "dynamic_batching": self.batcher is not None,
            "max_queue_delay_ms": self.max_delay_ms if self.batcher else None,
            "loaded_at": self.loaded_at,
            "warmup_s": round(self.warmup_s, 3),
        }

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.backend.close()
        log.info("model %s version %s unloaded", self.name, self.version)
