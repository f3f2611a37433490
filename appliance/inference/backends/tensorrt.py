"""Native TensorRT backend: a serialized engine run with the TensorRT Python API and pycuda.

For a Jetson, where ONNX Runtime's TensorRT provider may not be built. Engines are built from the
version's ONNX file by ``classroom-edge models build-engine`` (``tensorrt_build``) and cached per model
file, GPU, TensorRT version and build settings, because an engine only runs on the GPU and TensorRT it
was built for, and only on the shapes of its profile. A version may also ship its engine
(``"file": "model.plan"``), for a fleet of identical boxes; it is loaded as it is. ``tensorrt`` and
``pycuda`` are imported inside the functions: this module is importable (and its
``check_environment`` answers) on a box that has neither, and it never imports ONNX Runtime.
"""
from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np

from appliance.errors import IntegrityError, Unavailable
from appliance.inference.backend import Backend, LoadRequest, ModelRunError
from appliance.inference.backends.tensorrt_build import engine_location, read_cached_engine
from appliance.inference.tensors import NUMPY_OF, TensorSpec

log = logging.getLogger(__name__)


ENGINE_SUFFIXES = (".plan", ".engine")

# TensorRT keeps one logger pointer for the whole library, whatever each Runtime/Builder is given
# ("the logger is a singleton within the library"), while the Python Runtime keeps alive only the
# logger it was created with. A logger per backend would be freed with the first model swapped out
# and leave TensorRT logging through a dangling pointer, so every runtime and builder shares this one.
_TRT_LOGGER = None
_TRT_LOGGER_LOCK = threading.Lock()

# The primary context of each device, retained once for the life of the process and never released:
# ONNX Runtime and TensorRT's own CUDA runtime calls use the same context, and releasing it from
# whatever thread closes the last model (pycuda's detach cannot from a foreign thread) leaked it or
# left it pushed. Each call pushes it onto the calling thread and pops it again.
_PRIMARY_CONTEXTS: dict[int, object] = {}
_PRIMARY_CONTEXTS_LOCK = threading.Lock()


def trt_logger(trt):
    global _TRT_LOGGER
    with _TRT_LOGGER_LOCK:
        if _TRT_LOGGER is None:
            _TRT_LOGGER = trt.Logger(trt.Logger.WARNING)
        return _TRT_LOGGER


def primary_context(cuda, device_id: int):
    with _PRIMARY_CONTEXTS_LOCK:
        if device_id not in _PRIMARY_CONTEXTS:
            cuda.init()
            _PRIMARY_CONTEXTS[device_id] = cuda.Device(device_id).retain_primary_context()
        return _PRIMARY_CONTEXTS[device_id]


def shipped_engine(path) -> bool:
    """A version whose model.json names a serialized engine (``"file": "model.plan"``, Triton's name)
    instead of ONNX: loaded as it is. It only runs on the GPU and TensorRT version it was built for."""
    return Path(path).suffix in ENGINE_SUFFIXES


def oip_datatype(trt, dtype) -> str:
    table = {trt.float32: "FP32", trt.float16: "FP16", trt.int32: "INT32", trt.int8: "INT8", trt.bool: "BOOL"}
    for extra, name in (("int64", "INT64"), ("uint8", "UINT8")):  # int64 IO arrived in TensorRT 10
        if hasattr(trt, extra):
            table[getattr(trt, extra)] = name
    try:
        return table[dtype]
    except KeyError:
        raise IntegrityError(f"TensorRT tensor type {dtype} cannot be served") from None


def to_engine_array(name: str, array: np.ndarray, dtype) -> np.ndarray:
    """``array`` as the engine's type for input ``name``. TensorRT 8 turns INT64 inputs into INT32;
    a plain cast would wrap a token id of 2**31 into a negative one, so values that do not fit are
    refused (the caller's data: a 400) instead of silently changed."""
    target = np.dtype(dtype)
    if array.dtype.kind in "iu" and target.kind in "iu" and array.size and not np.can_cast(array.dtype, target):
        limits = np.iinfo(target)
        low, high = int(array.min()), int(array.max())
        if low < limits.min or high > limits.max:
            raise ModelRunError(f"input {name}: values {low}..{high} do not fit this TensorRT engine's "
                                f"{target} input ({limits.min}..{limits.max})")
    return np.ascontiguousarray(array, dtype=target)


def dynamic_outputs(output_shapes: dict[str, tuple]) -> list[str]:
    """Outputs whose size is still unknown after every input shape is set: their size depends on the
    data (NonZero, NMS), which needs an output allocator this backend does not have."""
    return [name for name, shape in output_shapes.items() if any(int(d) < 0 for d in shape)]


class TensorRTBackend(Backend):
    type = "tensorrt"

    @classmethod
    def check_environment(cls) -> str | None:
        for module in ("tensorrt", "pycuda"):
            if importlib.util.find_spec(module) is None:
                return f"the Python package {module!r} is not installed (JetPack provides tensorrt; pip install pycuda)"
        return None

    def __init__(self, request: LoadRequest):
        super().__init__(request)
        import pycuda.driver as cuda
        import tensorrt as trt

        self._cuda = cuda
        self._lock = threading.Lock()  # one execution context: one run (or close) at a time
        self._buffers: dict[str, tuple] = {}
        self._runtime = self._engine = self._context = self._stream = None
        self._ctx = None
        cuda.init()
        device = cuda.Device(request.settings.cuda_device_id)
        ctx = primary_context(cuda, request.settings.cuda_device_id)
        ctx.push()
        try:
            self._load(trt, device)
        except BaseException:
            self._release_native()  # while the context is current, so TensorRT can free device memory
            raise
        finally:
            ctx.pop()
        self._ctx = ctx
        label = f"TensorRT {trt.__version__} on {device.name()}"
        self.requested_providers = [label]
        self.active_providers = [label]

    def _engine_bytes(self, trt, device) -> bytes:
        request = self.request
        if shipped_engine(request.path):
            return Path(request.path).read_bytes()  # the repository checked its sha256 (and signature)
        plan, sidecar = engine_location(request, trt, device)
        return read_cached_engine(request, plan, sidecar, f"on this GPU ({device.name()}, TensorRT {trt.__version__})")

    def _load(self, trt, device) -> None:
        request = self.request
        data = self._engine_bytes(trt, device)
        self._runtime = trt.Runtime(trt_logger(trt))
        if shipped_engine(request.path) and hasattr(self._runtime, "engine_host_code_allowed"):
            # A fleet engine built VERSION_COMPATIBLE carries host code that TensorRT refuses unless
            # allowed; a shipped engine was sha256- (and signature-) checked before this load.
            self._runtime.engine_host_code_allowed = True
        self._engine = self._runtime.deserialize_cuda_engine(data)
        del data
        if self._engine is None:
            if shipped_engine(request.path):
                raise IntegrityError(
                    f"{request.name} version {request.version} ships a TensorRT engine that TensorRT "
                    f"{trt.__version__} on {device.name()} cannot load: an engine runs only on the GPU and "
                    "TensorRT version it was built for. Ship the ONNX model instead and run build-engine here.")
            raise IntegrityError(f"TensorRT could not deserialize the cached engine for {request.name}; "
                                 "rebuild it with build-engine --force")
        self._context = self._engine.create_execution_context()
        self._stream = self._cuda.Stream()
        self._describe_io(trt)
        self._refuse_unservable_io()

    def _describe_io(self, trt) -> None:
        """Fill inputs/outputs with the model's public types (model.json), remembering the engine's."""
        meta = self.request.meta
        declared = {t["name"]: t["datatype"] for t in [*meta.get("inputs", []), *meta.get("outputs", [])]}
        self._engine_dtypes: dict[str, np.dtype] = {}
        self._public_dtypes: dict[str, np.dtype] = {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            engine_type = oip_datatype(trt, self._engine.get_tensor_dtype(name))
            public_type = declared.get(name, engine_type)  # TensorRT 8 serves INT64 tensors as INT32
            self._engine_dtypes[name] = np.dtype(NUMPY_OF[engine_type])
            self._public_dtypes[name] = np.dtype(NUMPY_OF[public_type])
            spec = TensorSpec(name, public_type, tuple(int(d) for d in self._engine.get_tensor_shape(name)))
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self.inputs.append(spec)
            else:
                self.outputs.append(spec)

    def _refuse_unservable_io(self) -> None:
        """Refuse at load what ``infer`` cannot run, instead of failing every request later."""
        name = self.request.name
        shape_inputs = [s.name for s in self.inputs if self._engine.is_shape_inference_io(s.name)]
        if shape_inputs:
            raise IntegrityError(f"{name}: inputs {shape_inputs} are shape tensors (host memory), which the "
                                 "native TensorRT backend does not serve; use the onnxruntime backend")
        for spec in self.inputs:
            shape = spec.shape
            if any(d < 0 for d in shape):
                shape = tuple(int(d) for d in self._engine.get_tensor_profile_shape(spec.name, 0)[2])  # profile max
            if not self._context.set_input_shape(spec.name, shape):
                raise IntegrityError(f"{name}: TensorRT refuses input {spec.name} at its profile's max shape {list(shape)}")
        unknown = dynamic_outputs({s.name: tuple(self._context.get_tensor_shape(s.name)) for s in self.outputs})
        if unknown:
            raise IntegrityError(f"{name}: outputs {unknown} have data-dependent shapes (NonZero, NMS...), which the "
                                 "native TensorRT backend does not serve; use the onnxruntime backend")

    def _buffer(self, name: str, nbytes: int):
        alloc, size = self._buffers.get(name, (None, 0))
        if alloc is None or size < nbytes:
            if alloc is not None:
                alloc.free()
            size = max(nbytes, 1)
            alloc = self._cuda.mem_alloc(size)
            self._buffers[name] = (alloc, size)
        return alloc

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self._lock:
            if self._ctx is None:
                raise Unavailable(f"model {self.request.name} is being unloaded")
            self._ctx.push()
            try:
                return self._run(inputs)
            except self._cuda.Error as exc:  # out of device memory, a lost context: the box's fault
                raise Unavailable(f"{self.request.name}: the GPU could not run the model: {exc}") from None
            finally:
                self._ctx.pop()

    def _run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cuda, context, stream = self._cuda, self._context, self._stream
        for spec in self.inputs:
            arr = to_engine_array(spec.name, inputs[spec.name], self._engine_dtypes[spec.name])
            if not context.set_input_shape(spec.name, arr.shape):
                raise ModelRunError(f"{self.request.name}: input {spec.name} shape {list(arr.shape)} is outside the engine's profile")
            dptr = self._buffer(spec.name, arr.nbytes)
            cuda.memcpy_htod_async(dptr, arr, stream)
            context.set_tensor_address(spec.name, int(dptr))
        results = {}
        for spec in self.outputs:
            shape = tuple(int(d) for d in context.get_tensor_shape(spec.name))
            host = np.empty(shape, dtype=self._engine_dtypes[spec.name])
            dptr = self._buffer(spec.name, host.nbytes)
            context.set_tensor_address(spec.name, int(dptr))
            results[spec.name] = (host, dptr)
        if not context.execute_async_v3(stream_handle=stream.handle):
            # The shapes were accepted above, so this is TensorRT or the GPU failing, not the input.
            raise Unavailable(f"{self.request.name}: TensorRT could not run the model (see the service log)")
        for host, dptr in results.values():
            cuda.memcpy_dtoh_async(host, dptr, stream)
        stream.synchronize()
        return {name: host.astype(self._public_dtypes[name], copy=False) for name, (host, _) in results.items()}

    def _release_native(self) -> None:
        """Free device buffers and drop every TensorRT/pycuda object; the context must be current (a
        pycuda stream or a TensorRT engine destroyed without it leaks its device resources)."""
        for alloc, _ in self._buffers.values():
            alloc.free()
        self._buffers.clear()
        self._context = None  # before the engine it came from, and the engine before its runtime
        self._engine = None
        self._runtime = None
        self._stream = None

    def close(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return
        with self._lock:  # a request still running finishes first
            if self._ctx is None:
                return
            self._ctx.push()
            try:
                self._release_native()
            finally:
                self._ctx.pop()
                self._ctx = None  # the primary context itself stays retained for the process
