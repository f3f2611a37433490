"""The contract every inference backend meets (one module per backend under ``backends/``).

A backend loads one model file, says which tensors it takes and returns, which execution providers
are really running it, and runs it on a dict of numpy arrays. Everything else (verification,
batching, versions, HTTP) lives above it, so adding a backend means writing one small module.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from appliance.errors import BadRequest
from appliance.inference.tensors import TensorSpec


class ModelRunError(BadRequest):
    """The input passed every declared check but the model could not run on its values
    (an index out of range, say): the caller's data, so a 400 with the runtime's reason.

    Here, not in a backend module, so that loading one backend never imports another's runtime
    (the native TensorRT backend must work on a box whose ONNX Runtime is broken or missing)."""

    code = "model_run_error"


@dataclass(frozen=True)
class LoadRequest:
    """Everything a backend may need to load one model version."""

    name: str
    version: str
    path: Path  # the model file (model.onnx, model.plan)
    sha256: str
    max_batch_size: int  # 0 = the model has no batch dimension
    settings: Any  # the [inference] config section
    cache_dir: Path  # where rebuildable artefacts (TensorRT engines, timing caches) go
    meta: dict = field(default_factory=dict)  # model.json, for backend-specific hints
    intra_op_threads: int = 0  # CPU threads per run; 0 = the backend's default (every core)
    version_dir: Path | None = None  # the version's folder: model.json's paths are relative to it

    @property
    def folder(self) -> Path:
        """The version's folder (the model file's, when not given: the file sits at the top)."""
        return Path(self.version_dir) if self.version_dir is not None else Path(self.path).parent


class Backend(abc.ABC):
    """A loaded model. ``infer`` must be safe to call from one thread at a time per instance at least;
    the batcher guarantees that, so backends need not lock unless their runtime demands it."""

    type: ClassVar[str] = ""

    def __init__(self, request: LoadRequest):
        self.request = request
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self.requested_providers: list[str] = []
        self.active_providers: list[str] = []
        # Why the first requested provider failed, when the runtime said so (ONNX Runtime's
        # TensorRT provider error, for instance); shown by ``fallback``.
        self.fallback_reason: str | None = None
        # On the CPU by choice (inference.cpu_models) although GPU providers are configured.
        self.kept_on_cpu = False

    @classmethod
    def check_environment(cls) -> str | None:
        """None when this backend can run here, else the reason it cannot (Mopidy's self-check)."""
        return None

    @abc.abstractmethod
    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; inputs are already checked against ``self.inputs``."""

    def close(self) -> None:  # noqa: B027 - optional: a backend holding nothing native need not override it
        """Release native resources (sessions, device memory)."""

    @property
    def fallback(self) -> str | None:
        """Why the model runs on a slower provider than the first one configured, or None.

        A GPU provider that fails to initialise makes ONNX Runtime quietly use the CPU; reporting it
        is the difference between "the box is slow" and "the box says why it is slow".
        """
        if not self.requested_providers or not self.active_providers:
            return None
        first = self.requested_providers[0]
        if first in self.active_providers:
            return None
        message = f"{first} was requested but is not active; running on {', '.join(self.active_providers)}"
        return f"{message}; reason: {self.fallback_reason}" if self.fallback_reason else message

    def describe(self) -> dict:
        return {
            "backend": self.type,
            "requested_providers": list(self.requested_providers),
            "active_providers": list(self.active_providers),
            "fallback": self.fallback,
            "kept_on_cpu": self.kept_on_cpu,
            "intra_op_threads": self.request.intra_op_threads or None,
        }
