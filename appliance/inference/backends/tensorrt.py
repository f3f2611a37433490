"""Native TensorRT backend: a serialized engine run with the TensorRT Python API and pycuda.

For a Jetson, where ONNX Runtime's TensorRT provider may not be built. Engines are built from the
version's ONNX file by ``classroom-edge models build-engine`` (``tensorrt_build``) and cached per model
file, GPU and TensorRT version, because an engine only runs on the GPU and TensorRT it was built
for. A version may also ship its engine (``"file": "model.plan"``), for a fleet of identical boxes;
it is loaded as it is. ``tensorrt`` and ``pycuda`` are imported inside the methods: this module is importable (and its
``check_environment`` answers) on a box that has neither.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import threading
from pathlib import Path

import numpy as np

from appliance.errors import IntegrityError, Unavailable
from appliance.inference.backend import Backend, LoadRequest
from appliance.inference.backends.onnxruntime import ModelRunError
from appliance.inference.tensors import NUMPY_OF, TensorSpec

log = logging.getLogger(__name__)


ENGINE_SUFFIXES = (".plan", ".engine")


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

        from appliance.inference.backends.tensorrt_build import engine_location

        self._cuda = cuda
        cuda.init()
        device = cuda.Device(request.settings.cuda_device_id)
        # The primary context is shared with ONNX Runtime/CUDA in the same process; each call pushes it
        # onto the calling thread, since CUDA contexts are per thread.
        self._ctx = device.retain_primary_context()
        self._ctx.push()
        loaded = False
        try:
            if shipped_engine(request.path):
                # The repository checked its sha256 (and signature) before this load.
                plan, data = request.path, request.path.read_bytes()
            else:
                plan, sidecar = engine_location(request, trt, device)
                if not plan.is_file():
                    raise Unavailable(f"no TensorRT engine for {request.name} version {request.version} on this GPU "
                                      f"({device.name()}, TensorRT {trt.__version__}); run: classroom-edge models "
                                      f"build-engine {request.name} --version {request.version}")
                data = plan.read_bytes()
                meta = json.loads(sidecar.read_text(encoding="utf-8"))
                if hashlib.sha256(data).hexdigest() != meta.get("engine_sha256") or meta.get("onnx_sha256") != request.sha256:
                    raise IntegrityError(f"cached TensorRT engine {plan} is damaged or stale; rebuild it with build-engine --force")
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(data)
            if self._engine is None:
                if shipped_engine(request.path):
                    raise IntegrityError(
                        f"{request.name} version {request.version} ships a TensorRT engine that TensorRT "
                        f"{trt.__version__} on {device.name()} cannot load: an engine runs only on the GPU and "
                        "TensorRT version it was built for. Ship the ONNX model instead and run build-engine here.")
                raise IntegrityError(f"TensorRT could not deserialize {plan}")
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            declared = {t["name"]: t["datatype"] for t in request.meta.get("inputs", [])}
            self._device_dtypes: dict[str, np.dtype] = {}
            for i in range(self._engine.num_io_tensors):
                name = self._engine.get_tensor_name(i)
                device_type = oip_datatype(trt, self._engine.get_tensor_dtype(name))
                self._device_dtypes[name] = NUMPY_OF[device_type]
                shape = tuple(int(d) for d in self._engine.get_tensor_shape(name))
                if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                    # TensorRT 8 turns INT64 inputs into INT32: keep the model's public type and cast.
                    self.inputs.append(TensorSpec(name, declared.get(name, device_type), shape))
                else:
                    self.outputs.append(TensorSpec(name, device_type, shape))
            loaded = True
        finally:
            self._ctx.pop()
            if not loaded:
                self._ctx.detach()  # give the GPU context back; the engine refuses this version
                self._ctx = None
        label = f"TensorRT {trt.__version__} on {device.name()}"
        self.requested_providers = [label]
        self.active_providers = [label]
        self._buffers: dict[str, tuple] = {}
        self._lock = threading.Lock()  # one execution context: one run at a time

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
        cuda = self._cuda
        with self._lock:
            self._ctx.push()
            try:
                for spec in self.inputs:
                    arr = np.ascontiguousarray(inputs[spec.name], dtype=self._device_dtypes[spec.name])
                    if not self._context.set_input_shape(spec.name, arr.shape):
                        raise ModelRunError(f"{self.request.name}: input {spec.name} shape {list(arr.shape)} is outside the engine's profile")
                    dptr = self._buffer(spec.name, arr.nbytes)
                    cuda.memcpy_htod_async(dptr, arr, self._stream)
                    self._context.set_tensor_address(spec.name, int(dptr))
                results = {}
                for spec in self.outputs:
                    shape = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
                    host = np.empty(shape, dtype=self._device_dtypes[spec.name])
                    dptr = self._buffer(spec.name, host.nbytes)
                    self._context.set_tensor_address(spec.name, int(dptr))
                    results[spec.name] = (host, dptr)
                if not self._context.execute_async_v3(stream_handle=self._stream.handle):
                    raise ModelRunError(f"{self.request.name}: TensorRT could not run this input")
                for host, dptr in results.values():
                    cuda.memcpy_dtoh_async(host, dptr, self._stream)
                self._stream.synchronize()
                return {name: host for name, (host, _) in results.items()}
            finally:
                self._ctx.pop()

    def close(self) -> None:
        if getattr(self, "_ctx", None) is None:
            return
        self._ctx.push()
        try:
            for alloc, _ in self._buffers.values():
                alloc.free()
            self._buffers.clear()
            self._context = None
            self._engine = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
            self._ctx = None
