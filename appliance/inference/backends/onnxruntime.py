"""ONNX Runtime backend: execution providers from config, in order (TensorRT, CUDA, CPU).

ONNX Runtime quietly drops a provider that is not built in or fails to start and runs on the next
one, so after loading we read back ``session.get_providers()`` and report any difference; "the box is
slow" then comes with the reason (see ``Backend.fallback``).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from appliance.errors import BadRequest, IntegrityError
from appliance.inference.backend import Backend, LoadRequest
from appliance.inference.backends.profiles import ort_profile_options, shape_profile
from appliance.inference.tensors import ORT_TYPES, TensorSpec, as_text_array

log = logging.getLogger(__name__)

_STATE = ort.capi.onnxruntime_pybind11_state
# What ``session.run`` raises for a bad input value; anything else is a real fault and propagates.
_RUN_ERRORS = (_STATE.InvalidArgument, _STATE.Fail, _STATE.RuntimeException)

ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


class ModelRunError(BadRequest):
    """The input passed every declared check but the model could not run on its values
    (an index out of range, say): the caller's data, so a 400 with the runtime's reason."""

    code = "model_run_error"


def provider_name(name: str) -> str:
    return ALIASES.get(name.lower(), name)


def _spec(arg) -> TensorSpec:
    datatype = ORT_TYPES.get(arg.type)
    if datatype is None:
        raise IntegrityError(f"model tensor {arg.name!r} has a type this appliance cannot serve: {arg.type}")
    dims = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in arg.shape)
    return TensorSpec(arg.name, datatype, dims)


class OnnxRuntimeBackend(Backend):
    type = "onnxruntime"

    def __init__(self, request: LoadRequest):
        super().__init__(request)
        settings = request.settings
        data = Path(request.path).read_bytes()
        # The repository checked the file; hashing the bytes we actually hand to ONNX Runtime closes the
        # window between that check and this read (cheap next to building the session).
        if hashlib.sha256(data).hexdigest() != request.sha256:
            raise IntegrityError(f"{request.name} version {request.version}: model file changed after verification")
        self.requested_providers = [provider_name(p) for p in settings.providers] or ["CPUExecutionProvider"]
        available = set(ort.get_available_providers())
        # Passing an unavailable provider makes ONNX Runtime warn and skip it; we skip it ourselves and
        # let ``fallback`` report it, so the status says what happened instead of a log line.
        chosen = [p for p in self.requested_providers if p in available]
        if "CPUExecutionProvider" not in chosen:
            chosen.append("CPUExecutionProvider")  # last resort, always present
        for missing in (p for p in self.requested_providers if p not in available):
            log.warning("%s: %s is not available in this ONNX Runtime build", request.name, missing)
        options = [self._provider_options(p, request) for p in chosen]
        self._session = ort.InferenceSession(data, self._session_options(settings, request.intra_op_threads),
                                             providers=chosen, provider_options=options)
        del data
        self.active_providers = list(self._session.get_providers())
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        if self.fallback:
            log.warning("%s version %s: %s", request.name, request.version, self.fallback)

    @staticmethod
    def _session_options(settings, intra_op_threads: int = 0) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.inter_op_num_threads = 1
        so.enable_cpu_mem_arena = settings.cpu_mem_arena
        so.log_severity_level = 3
        threads = intra_op_threads or settings.intra_op_threads
        if threads > 0:
            so.intra_op_num_threads = threads
        # Spinning worker threads burn a core between runs; on a 2-4 core box that core is the one the
        # web server needs to parse the next request, so they sleep unless the config says otherwise.
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.intra_op_spinning else "0")
        return so

    @staticmethod
    def _provider_options(provider: str, request: LoadRequest) -> dict:
        s = request.settings
        if provider == "TensorrtExecutionProvider":
            cache = Path(s.trt_cache_dir) if s.trt_cache_dir else request.cache_dir / "ort-trt"
            engines = cache / request.name / request.sha256[:16]
            engines.mkdir(parents=True, exist_ok=True)
            (cache / "timing").mkdir(parents=True, exist_ok=True)
            opts = {
                "device_id": s.cuda_device_id,
                "trt_max_workspace_size": s.trt_workspace_mb * 1024 * 1024,
                "trt_fp16_enable": s.trt_fp16,
                "trt_int8_enable": s.trt_int8,
                # Engine and timing caches: building an engine takes minutes on a Jetson, so it is done
                # once per model file and GPU and reused across restarts.
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache / "timing"),
            }
            table = request.meta.get("trt_int8_calibration_table")
            if s.trt_int8 and table:
                opts["trt_int8_calibration_table_name"] = str(table)
            declared = [TensorSpec.from_json(t, "model.json") for t in request.meta.get("inputs", [])]
            opts.update(ort_profile_options(shape_profile(declared, request.max_batch_size, s, request.meta)))
            return opts
        if provider == "CUDAExecutionProvider":
            # Jetson shares one memory pool between CPU and GPU: grow the arena only as far as needed.
            return {"device_id": s.cuda_device_id, "arena_extend_strategy": "kSameAsRequested"}
        return {}

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {k: as_text_array(v) if v.dtype == object else v for k, v in inputs.items()}
        try:
            results = self._session.run(self._output_names, feed)
        except _RUN_ERRORS as exc:
            raise ModelRunError(f"{self.request.name} could not run on this input: {str(exc).splitlines()[0][:300]}") from None
        return dict(zip(self._output_names, results))

    def close(self) -> None:
        self._session = None
