"""Build TensorRT engines from a model version's ONNX file (``classroom-edge models build-engine``).

An engine is specific to the GPU (compute capability) and the TensorRT version, so the cache key is
model file sha256 + GPU + compute capability + TensorRT version + precision flags. The timing cache
is kept per GPU and TensorRT version and shared by all models: it makes the second build of anything
on a Jetson minutes faster. tensorrt and pycuda are imported inside the functions (see tensorrt.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from pathlib import Path

from appliance.errors import IntegrityError
from appliance.inference.backend import LoadRequest
from appliance.inference.backends.profiles import shape_profile
from appliance.inference.tensors import TensorSpec

log = logging.getLogger(__name__)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def cache_root(request: LoadRequest) -> Path:
    s = request.settings
    return Path(s.trt_cache_dir) / "engines" if s.trt_cache_dir else request.cache_dir / "trt-engines"


def _gpu_key(trt, device) -> str:
    major, minor = device.compute_capability()
    return f"{_slug(device.name())}-sm{major}{minor}-trt{trt.__version__}"


def engine_location(request: LoadRequest, trt, device) -> tuple[Path, Path]:
    """(engine.plan, engine.json) for this model file on this GPU with these precision flags."""
    s = request.settings
    precision = "fp32" + ("-fp16" if s.trt_fp16 else "") + ("-int8" if s.trt_int8 else "")
    d = cache_root(request) / request.name / f"{request.sha256[:16]}-{_gpu_key(trt, device)}-{precision}"
    return d / "engine.plan", d / "engine.json"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def build_engine(request: LoadRequest, force: bool = False) -> Path:
    """Build (or find in the cache) the engine for ``request``; returns the engine path."""
    import pycuda.driver as cuda
    import tensorrt as trt

    from appliance.inference.backends.tensorrt import oip_datatype

    s = request.settings
    cuda.init()
    device = cuda.Device(s.cuda_device_id)
    plan_path, sidecar = engine_location(request, trt, device)
    if plan_path.is_file() and sidecar.is_file() and not force:
        log.info("engine for %s already cached at %s", request.name, plan_path)
        return plan_path
    onnx_bytes = Path(request.path).read_bytes()
    if hashlib.sha256(onnx_bytes).hexdigest() != request.sha256:
        raise IntegrityError(f"{request.path} does not match the sha256 in model.json")

    ctx = device.retain_primary_context()
    ctx.push()
    try:
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        major = int(trt.__version__.split(".")[0])
        # TensorRT 10 networks are always explicit-batch; TensorRT 8 must be asked for it.
        flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(onnx_bytes):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise IntegrityError(f"TensorRT cannot parse {request.name}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, s.trt_workspace_mb * 1024 * 1024)
        if s.trt_fp16 and getattr(builder, "platform_has_fast_fp16", True):
            config.set_flag(trt.BuilderFlag.FP16)
        if s.trt_int8 and getattr(builder, "platform_has_fast_int8", True):
            config.set_flag(trt.BuilderFlag.INT8)  # effective for QDQ models; no calibrator is run here
        timing_path = cache_root(request) / "timing" / f"{_gpu_key(trt, device)}.cache"
        timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
        config.set_timing_cache(timing, ignore_mismatch=False)

        inputs = []
        for i in range(network.num_inputs):
            t = network.get_input(i)
            inputs.append(TensorSpec(t.name, oip_datatype(trt, t.dtype), tuple(int(d) for d in t.shape)))
        profile = shape_profile(inputs, request.max_batch_size, s, request.meta)
        if profile["min"]:
            opt = builder.create_optimization_profile()
            for name in profile["min"]:
                opt.set_shape(name, profile["min"][name], profile["opt"][name], profile["max"][name])
            config.add_optimization_profile(opt)

        t0 = time.monotonic()
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise IntegrityError(f"TensorRT could not build an engine for {request.name} (see the log above)")
        plan = bytes(serialized)
        _write_atomic(timing_path, bytes(memoryview(config.get_timing_cache().serialize())))
    finally:
        ctx.pop()
        ctx.detach()
    _write_atomic(plan_path, plan)
    _write_atomic(sidecar, json.dumps({
        "model": request.name, "version": request.version, "onnx_sha256": request.sha256,
        "engine_sha256": hashlib.sha256(plan).hexdigest(), "gpu": device.name(),
        "compute_capability": list(device.compute_capability()), "tensorrt": trt.__version__,
        "fp16": s.trt_fp16, "int8": s.trt_int8, "profile": {k: {n: list(v) for n, v in p.items()} for k, p in profile.items()},
        "build_s": round(time.monotonic() - t0, 1),
    }, indent=2).encode())
    log.info("built TensorRT engine for %s in %.0f s: %s", request.name, time.monotonic() - t0, plan_path)
    return plan_path
