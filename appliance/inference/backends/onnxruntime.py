"""ONNX Runtime backend: execution providers from config, in order (TensorRT, CUDA, CPU).

ONNX Runtime quietly drops a provider that is not built in or fails to start and runs on the next
one, so after loading we read back ``session.get_providers()`` and report any difference; "the box is
slow" then comes with the reason (see ``Backend.fallback``). When the TensorRT provider fails, ONNX
Runtime's own retry prints the reason to stdout and drops every provider option; we capture the
reason and retry ourselves with our CUDA/CPU options.
"""
from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import io
import logging
import re
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from appliance.errors import AppError, IntegrityError, Unavailable
from appliance.inference.backend import Backend, LoadRequest, ModelRunError
from appliance.inference.backends.profiles import ort_profile_options, shape_profile
from appliance.inference.tensors import ORT_TYPES, TensorSpec, as_text_array

log = logging.getLogger(__name__)

_STATE = ort.capi.onnxruntime_pybind11_state
# ONNX Runtime's process-wide logger prints warnings to stderr at every GPU session (1.31: "No registered
# plugin EP device found for 'CUDAExecutionProvider'", then it uses the built-in CUDA provider). Errors
# still print; what matters of them reaches the status as a provider's fallback reason.
ort.set_default_logger_severity(3)
# What ``session.run`` raises when a run fails; ``run_error`` says whose fault it is. Anything else is a
# real fault in this code and propagates.
_RUN_ERRORS = (_STATE.InvalidArgument, _STATE.Fail, _STATE.RuntimeException, _STATE.EPFail)
# What creating a session raises when a provider cannot take the model (the TensorRT provider returns
# EP_FAIL; some of its failures surface as RuntimeError, which is what ONNX Runtime's own retry catches).
_SESSION_ERRORS = (_STATE.EPFail, _STATE.Fail, _STATE.RuntimeException, RuntimeError, ValueError)

TRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
GPU_PROVIDERS = (TRT, CUDA)  # TensorRT runs on CUDA too: both need CUDA's libraries and a GPU

ALIASES = {
    "tensorrt": TRT,
    "cuda": CUDA,
    "cpu": "CPUExecutionProvider",
}

# Messages of a run that failed on the device, not on the caller's values: CUDA/cuDNN/cuBLAS status
# failures, the TensorRT provider's own errors and allocation failures. Matched on these phrases, not
# on the bare word "cuda", because input checks inside CUDA kernels carry ".../providers/cuda/..."
# source paths and are still the caller's fault.
_DEVICE_FAILURE = re.compile(
    r"CUDA failure|CUDA error|cudaError|CUDNN failure|CUDNN_STATUS|CUBLAS failure|CUBLAS_STATUS|"
    r"TensorRT EP|out of memory|Failed to allocate memory|bad_alloc",
    re.IGNORECASE,
)
# ONNX Runtime prints "EP Error <error> when using [<providers>]" (session creation) or "EP Error: <error>
# using [...]" (a run) between banner lines of asterisks; the error itself may span lines.
_EP_ERROR = re.compile(r"^EP Error:? (.*?)(?: (?:when )?using \[|\Z)", re.DOTALL | re.MULTILINE)
_STALE_ENGINE = "could not deserialize engine from cache"


def provider_name(name: str) -> str:
    return ALIASES.get(name.lower(), name)


def _first_line(text: str, limit: int = 300) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:limit] if lines else ""


def run_error(model: str, exc: Exception) -> AppError:
    """The error a failed ``session.run`` becomes: 503 when the GPU or a GPU provider failed (the box's
    fault: out of memory, a TensorRT enqueue failure), 400 when the model refused the caller's values."""
    message = str(exc)
    if isinstance(exc, _STATE.EPFail) or _DEVICE_FAILURE.search(message):
        # The box's fault (memory, a GPU or its provider), not the request's: worth retrying later.
        return Unavailable(f"{model} could not run on this box right now: {_first_line(message)}")
    return ModelRunError(f"{model} could not run on this input: {_first_line(message)}")


def ep_error_from_output(text: str) -> str | None:
    """The provider error ONNX Runtime printed before its silent retry (``EP Error ... when using
    [...]``), or None when it printed none."""
    match = _EP_ERROR.search(text)
    if match is None:
        return None
    return _first_line(match.group(1)) or None


def trt_library_version() -> str:
    """The TensorRT library ONNX Runtime's provider loads (``getInferLibVersion``, e.g. 100300 for
    10.3.0), or "unknown"; only called when the TensorRT provider is available."""
    for soname in ("libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"):
        try:
            return str(int(ctypes.CDLL(soname).getInferLibVersion()))
        except (OSError, AttributeError):
            continue
    return "unknown"


@functools.cache
def preload_cuda_libraries() -> str:
    """Load CUDA and cuDNN before the first GPU session; what could not be loaded, or "".

    ONNX Runtime's CUDA provider finds these libraries on the system's library path (a CUDA toolkit
    from apt, JetPack) but not where pip puts them (``onnxruntime-gpu[cuda,cudnn]``: nvidia wheels in
    the venv's site-packages). There the provider fails to start and the model quietly runs on the
    CPU. ``preload_dlls`` (ONNX Runtime 1.21 and later) loads them from site-packages, else by name
    from the library path; it prints what it could not load, which goes to the log instead of stdout.
    Once per process: the libraries stay loaded."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return ""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        try:
            preload()
        except (OSError, RuntimeError) as exc:
            print(exc)
    problems = " ".join(line.strip() for line in printed.getvalue().splitlines() if line.strip())
    if problems:
        log.warning("loading the CUDA libraries for ONNX Runtime: %s", problems)
    return problems


def cuda_provider_problem(capi_dir: Path | None = None, device_id: int = 0) -> str | None:
    """Why ONNX Runtime's CUDA provider could not start, or None when that cannot be told.

    When the provider's library cannot load (CUDA, cuBLAS or cuDNN missing), ONNX Runtime logs the
    reason to stderr from C++ and quietly runs the model on the CPU: the status would say only "not
    active". Loading the library ourselves gives the same loader message (seen on an H100 with the
    system's CUDA hidden: "libcublasLt.so.13: cannot open shared object file"). A library that loads
    leaves the driver: no libcuda.so.1 means no NVIDIA driver."""
    library = (capi_dir or Path(ort.__file__).parent / "capi") / "libonnxruntime_providers_cuda.so"
    if not library.is_file():
        return None
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        # Only a missing or damaged library is worth saying; other loader errors (a symbol that ONNX
        # Runtime's own loading order would provide) would mislead.
        if not any(why in str(exc) for why in ("cannot open shared object file", "file too short", "invalid ELF header")):
            return None
        if "libcuda.so" in str(exc):
            return f"no NVIDIA driver: {exc}"
        return f"the CUDA provider cannot load: {exc}"
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError as exc:
        return f"no NVIDIA driver: {exc}"
    return _driver_problem(driver, device_id)


# CUresult codes (the driver API's, cuda.h) that a box without a usable GPU gets from cuInit.
_CU_ERRORS = {
    34: "the CUDA toolkit's stub libcuda.so was loaded instead of the driver's (CUDA_ERROR_STUB_LIBRARY)",
    46: "the GPU is busy or unavailable (CUDA_ERROR_DEVICE_UNAVAILABLE)",
    100: "no CUDA-capable GPU is visible (CUDA_ERROR_NO_DEVICE)",
    802: "the system is not ready for CUDA (CUDA_ERROR_SYSTEM_NOT_READY)",
    803: "the kernel module and the driver library differ: reboot after a driver upgrade (CUDA_ERROR_SYSTEM_DRIVER_MISMATCH)",
    804: "forward compatibility is not supported on this GPU (CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE)",
    999: "the NVIDIA driver failed to start CUDA (CUDA_ERROR_UNKNOWN; are /dev/nvidia* reachable?)",
}


def _driver_problem(driver, device_id: int = 0) -> str | None:
    """The driver loads: ask it whether CUDA starts and has the configured GPU (the next thing to fail)."""
    try:
        rc = int(driver.cuInit(0))
        if rc != 0:
            return f"the NVIDIA driver cannot start CUDA: {_CU_ERRORS.get(rc, f'CUresult {rc}')}"
        count = ctypes.c_int(0)
        if int(driver.cuDeviceGetCount(ctypes.byref(count))) != 0:
            return None
    except (AttributeError, OSError):
        return None
    if count.value == 0:
        return f"the NVIDIA driver cannot start CUDA: {_CU_ERRORS[100]}"
    if device_id >= count.value:
        return f"inference.cuda_device_id is {device_id}, but this box has {count.value} GPU(s), numbered from 0"
    return None


def ort_trt_cache_dir(base: Path, ort_version: str, trt_version: str) -> Path:
    """The provider's engine/timing cache directory. Its file names carry only the GPU architecture
    (``..._sm87.engine``), and an engine from another TensorRT fails to deserialize, which fails the
    provider: after an upgrade the caches must start empty, so the versions are in the path."""
    return base / f"ort{ort_version}-trt{trt_version}"


def calibration_table_options(request: LoadRequest) -> dict:
    """The INT8 calibration table options for the TensorRT provider, or {}.

    The provider joins a relative table name to its engine cache directory, where the table never is,
    so the name from model.json (relative to the version directory) is made absolute. The table must be
    listed in model.json ``files``, so the repository has checked its sha256 like every other file.
    """
    table = request.meta.get("trt_int8_calibration_table")
    if not (request.settings.trt_int8 and table):
        return {}
    version_dir = request.folder.resolve()  # not the model file's: model.json "file" may be "onnx/model.onnx"
    path = (version_dir / str(table)).resolve()
    if not path.is_relative_to(version_dir) or str(table) not in (request.meta.get("files") or {}):
        raise IntegrityError(f"{request.name} version {request.version}: trt_int8_calibration_table {table!r} must "
                             "be a file of the version listed in model.json 'files' (so its sha256 is checked)")
    return {
        "trt_int8_calibration_table_name": str(path),
        # ONNX Runtime's own (flatbuffers) table unless model.json says it is TensorRT's native one.
        "trt_int8_use_native_calibration_table": bool(request.meta.get("trt_int8_native_table", False)),
    }


@contextlib.contextmanager
def _exclusive(lock_dir: Path | None):
    """One process at a time builds a model's TensorRT engines: with two web workers both would build
    the same engine at first start (minutes, twice the memory on a Jetson), and one could read the
    other's half-written file. The second waits, then finds the engine in the cache."""
    if lock_dir is None:
        yield
        return
    with open(lock_dir / ".build.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _create_capturing_stdout(make, providers, options):
    """(session, what ONNX Runtime printed). Its fallback after a provider error only prints the error;
    the printed text is given back to stdout when there was no fallback to explain."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        session = make(providers, options)
    return session, printed.getvalue()


def create_session(make, providers: list[str], options: list[dict], engines: Path | None, model: str,
                   reason: str | None = None, retried: bool = False):
    """(session, why a provider was dropped or None). ``make(providers, options)`` creates the session.

    When the TensorRT provider fails, the session is made on the remaining providers with our options
    (ONNX Runtime's own retry would drop them: device 0, the default arena) and its error becomes the
    reason. An unreadable cached engine is discarded and built again, once.
    """
    if providers == ["CPUExecutionProvider"]:
        return make(providers, options), reason  # nothing to fall back from, nothing to capture
    try:
        session, printed = _create_capturing_stdout(make, providers, options)
    except _SESSION_ERRORS as exc:
        if TRT not in providers:
            raise
        failure = _first_line(str(exc))
    else:
        failure = ep_error_from_output(printed)
        if failure is None:
            sys.stdout.write(printed)  # not ONNX Runtime's fallback: someone else's output
            return session, reason
        if TRT not in providers:  # CUDA failed and ONNX Runtime went on to the CPU by itself
            return session, reason or failure
        session = None
    if _STALE_ENGINE in failure and engines is not None and not retried:
        log.warning("%s: discarding unreadable TensorRT provider engines in %s", model, engines)
        for cached in engines.iterdir():
            if cached.suffix in (".engine", ".profile"):
                cached.unlink(missing_ok=True)
        return create_session(make, providers, options, engines, model, reason, retried=True)
    log.warning("%s: the TensorRT provider failed (%s); using the next providers", model, failure)
    rest = [(p, o) for p, o in zip(providers, options) if p != TRT]
    return create_session(make, [p for p, _ in rest], [o for _, o in rest], None, model, reason or failure)


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
        # Worth saying where the model would otherwise have gone to a GPU: a GPU provider, or the tensorrt backend.
        self.kept_on_cpu = request.name in settings.cpu_models and (settings.backend != "onnxruntime" or any(
            provider_name(p) != "CPUExecutionProvider" for p in settings.providers))
        wanted = ["cpu"] if request.name in settings.cpu_models else settings.providers
        self.requested_providers = [provider_name(p) for p in wanted] or ["CPUExecutionProvider"]
        available = set(ort.get_available_providers())
        # Passing an unavailable provider makes ONNX Runtime warn and skip it; we skip it ourselves and
        # let ``fallback`` report it, so the status says what happened instead of a log line.
        chosen = [p for p in self.requested_providers if p in available]
        if "CPUExecutionProvider" not in chosen:
            chosen.append("CPUExecutionProvider")  # last resort, always present
        for missing in (p for p in self.requested_providers if p not in available):
            log.warning("%s: %s is not available in this ONNX Runtime build", request.name, missing)
        if any(p in chosen for p in GPU_PROVIDERS):  # their libraries load before the session asks for them
            preload_cuda_libraries()
        options = [self._provider_options(p, request) for p in chosen]
        engines = Path(options[chosen.index(TRT)]["trt_engine_cache_path"]) if TRT in chosen else None
        so = self._session_options(settings, request.intra_op_threads)

        def make(providers, provider_options):
            return ort.InferenceSession(data, so, providers=providers, provider_options=provider_options)

        with _exclusive(engines):
            self._session, self.fallback_reason = create_session(make, chosen, options, engines, request.name)
        # A provider failing in the middle of a run would otherwise make ONNX Runtime switch this live
        # session to other providers without our options and without telling the status: let it raise.
        self._session.disable_fallback()
        self.active_providers = list(self._session.get_providers())
        self.fallback_reason = self._why_not_first(available, chosen, self.fallback_reason)
        self.inputs = [_spec(a) for a in self._session.get_inputs()]
        self.outputs = [_spec(a) for a in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]
        if self.fallback:
            log.warning("%s version %s: %s", request.name, request.version, self.fallback)

    def _why_not_first(self, available: set[str], chosen: list[str], printed: str | None) -> str | None:
        """Why the first requested provider is not active. ``printed`` is what ONNX Runtime printed, if
        anything; for CUDA it can be beside the point (with no GPU visible it reports its own options as
        "Parse Failed"), so a cause the CUDA diagnosis finds comes first."""
        first = self.requested_providers[0]
        if first in self.active_providers:
            return printed
        reasons = []
        if first not in available:
            if first in GPU_PROVIDERS and any(p in available for p in GPU_PROVIDERS):
                # A build with CUDA but without TensorRT (some Jetson builds): the GPU package is there already.
                reasons.append(f"this ONNX Runtime ({ort.__version__}) was built without {first}; it has "
                               f"{', '.join(sorted(available))}")
            elif first in GPU_PROVIDERS:
                reasons.append(f"this ONNX Runtime ({ort.__version__}) has no {first}; the onnxruntime-gpu package has CUDA and TensorRT")
            else:
                reasons.append(f"this ONNX Runtime ({ort.__version__}) has no {first}; it has {', '.join(sorted(available))}")
        if any(p in chosen for p in GPU_PROVIDERS) and not any(p in self.active_providers for p in GPU_PROVIDERS):
            found = cuda_provider_problem(device_id=self.request.settings.cuda_device_id)
            if found:
                reasons.append(found)
        if printed:
            reasons.append(f"ONNX Runtime said: {printed}" if reasons else printed)
        return "; ".join(reasons) or None

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
        if provider == TRT:
            base = Path(s.trt_cache_dir) if s.trt_cache_dir else request.cache_dir / "ort-trt"
            cache = ort_trt_cache_dir(base, ort.__version__, trt_library_version())
            engines = cache / request.name / request.sha256[:16]
            engines.mkdir(parents=True, exist_ok=True)
            (cache / "timing").mkdir(parents=True, exist_ok=True)
            opts = {
                "device_id": s.cuda_device_id,
                "trt_max_workspace_size": s.trt_workspace_mb * 1024 * 1024,
                "trt_fp16_enable": s.trt_fp16,
                "trt_int8_enable": s.trt_int8,
                # Engine and timing caches: building an engine takes minutes on a Jetson, so it is done
                # once per model file, GPU and ONNX Runtime/TensorRT version and reused across restarts.
                "trt_engine_cache_enable": True,
                "trt_engine_cache_path": str(engines),
                "trt_timing_cache_enable": True,
                "trt_timing_cache_path": str(cache / "timing"),
                **calibration_table_options(request),
            }
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
            raise run_error(self.request.name, exc) from None
        return dict(zip(self._output_names, results))

    def close(self) -> None:
        self._session = None
