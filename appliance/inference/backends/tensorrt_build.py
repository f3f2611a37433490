"""Build TensorRT engines from a model version's ONNX file (``classroom-edge models build-engine``), and
the engine cache that the builder writes and the native backend reads.

An engine is specific to the GPU (compute capability) and the TensorRT version, and it only accepts
the shapes of the optimisation profile it was built with. So the cache key is model file sha256 +
GPU + compute capability + TensorRT version + precision flags + a hash of the settings that decide the
profile and the workspace: changing ``inference.batch_max_size`` or ``trt_max_dim`` asks for a new
engine instead of loading one that refuses the new shapes. The timing cache is kept per GPU and
TensorRT version and shared by all models: it makes the second build of anything on a Jetson minutes
faster. tensorrt and pycuda are imported inside the functions (see tensorrt.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path

from appliance.errors import IntegrityError, Unavailable
from appliance.inference.backend import LoadRequest
from appliance.inference.backends.profiles import shape_profile
from appliance.inference.manifest import write_atomic
from appliance.inference.tensors import TensorSpec

log = logging.getLogger(__name__)

# Engines and timing caches are read by the web service's user, which is often not the user who ran
# build-engine (root, an admin): readable by all, as the model files themselves are.
CACHE_FILE_MODE = 0o644


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()


def cache_root(request: LoadRequest) -> Path:
    s = request.settings
    return Path(s.trt_cache_dir) / "engines" if s.trt_cache_dir else request.cache_dir / "trt-engines"


def gpu_key(device_name: str, compute_capability: tuple[int, int], trt_version: str) -> str:
    major, minor = compute_capability
    return f"{_slug(device_name)}-sm{major}{minor}-trt{trt_version}"


def precision_tag(settings) -> str:
    """The precision flags asked for. The engine.json sidecar records what the build really enabled
    (FP16/INT8 may be unsupported by the GPU or, for INT8, by the model); the key is what was asked,
    which is all the loader knows before it has an engine."""
    return "fp32" + ("-fp16" if settings.trt_fp16 else "") + ("-int8" if settings.trt_int8 else "")


def build_settings(request: LoadRequest) -> dict:
    """Everything besides the model file, GPU, TensorRT and precision that changes the engine: the
    inputs of the shape profile (``profiles.shape_profile``) and the builder workspace."""
    s = request.settings
    return {
        "max_batch_size": request.max_batch_size,
        "trt_opt_dim": s.trt_opt_dim,
        "trt_max_dim": s.trt_max_dim,
        "trt_profile": request.meta.get("trt_profile") or {},
        "trt_workspace_mb": s.trt_workspace_mb,
    }


def build_settings_key(request: LoadRequest) -> str:
    canonical = json.dumps(build_settings(request), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def engine_dir(request: LoadRequest, gpu: str) -> Path:
    name = f"{request.sha256[:16]}-{gpu}-{precision_tag(request.settings)}-{build_settings_key(request)}"
    return cache_root(request) / request.name / name


def engine_location(request: LoadRequest, trt, device) -> tuple[Path, Path]:
    """(engine.plan, engine.json) for this model file on this GPU with these settings."""
    d = engine_dir(request, gpu_key(device.name(), device.compute_capability(), trt.__version__))
    return d / "engine.plan", d / "engine.json"


def read_cached_engine(request: LoadRequest, plan: Path, sidecar: Path, where: str) -> bytes:
    """The cached engine's bytes, checked against its sidecar; Unavailable (with the command that fixes
    it) when it is missing or half-written, IntegrityError when it does not match."""
    rebuild = f"classroom-edge models build-engine {request.name} --version {request.version}"
    if not plan.is_file():
        raise Unavailable(f"no TensorRT engine for {request.name} version {request.version} {where} "
                          f"with these settings; run: {rebuild}")
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        # build-engine writes the plan, then the sidecar: a crash between the two leaves this.
        raise Unavailable(f"the cached TensorRT engine {plan} has no readable engine.json (an interrupted "
                          f"build?); run: {rebuild} --force") from None
    data = plan.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("engine_sha256") or meta.get("onnx_sha256") != request.sha256:
        raise IntegrityError(f"cached TensorRT engine {plan} is damaged or stale; run: {rebuild} --force")
    return data


def precision_flags(settings, fast_fp16: bool, fast_int8: bool, has_qdq: bool) -> tuple[bool, bool, list[str]]:
    """(fp16, int8, why a requested flag was dropped).

    INT8 without a calibrator works only for a network with Q/DQ layers: for a float network TensorRT
    fails the whole build ("Calibration failure occurred with no scaling factors detected"), so the flag
    is dropped with a reason instead. The builder here runs no calibrator.
    """
    notes = []
    fp16 = bool(settings.trt_fp16 and fast_fp16)
    if settings.trt_fp16 and not fast_fp16:
        notes.append("trt_fp16 ignored: this GPU has no fast FP16")
    int8 = bool(settings.trt_int8 and fast_int8 and has_qdq)
    if settings.trt_int8 and not has_qdq:
        notes.append("trt_int8 ignored: the model has no QuantizeLinear/DequantizeLinear nodes and the native "
                     "builder runs no calibrator (export a Q/DQ model for INT8)")
    elif settings.trt_int8 and not fast_int8:
        notes.append("trt_int8 ignored: this GPU has no fast INT8")
    return fp16, int8, notes


def _network_has_qdq(trt, network) -> bool:
    qdq = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    return any(network.get_layer(i).type in qdq for i in range(network.num_layers))


def _network_inputs(trt, network) -> list[TensorSpec]:
    from appliance.inference.backends.tensorrt import oip_datatype

    inputs = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        inputs.append(TensorSpec(t.name, oip_datatype(trt, t.dtype), tuple(int(d) for d in t.shape)))
    return inputs


def _parse(trt, request: LoadRequest, builder, logger, onnx_bytes: bytes):
    major = int(trt.__version__.split(".")[0])
    # TensorRT 10 networks are always explicit-batch; TensorRT 8 must be asked for it.
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise IntegrityError(f"TensorRT cannot parse {request.name}: {errors}")
    return network, parser  # the parser owns the weights the network points to: keep it alive


def _build_plan(trt, request: LoadRequest, onnx_bytes: bytes, timing_path: Path) -> tuple[bytes, dict, dict]:
    """(serialized engine, shape profile, precision really enabled). Runs with the GPU context pushed;
    every TensorRT object here is released before the caller pops it."""
    from appliance.inference.backends.tensorrt import trt_logger

    s = request.settings
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    network, _parser = _parse(trt, request, builder, logger, onnx_bytes)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, s.trt_workspace_mb * 1024 * 1024)
    fp16, int8, notes = precision_flags(s, getattr(builder, "platform_has_fast_fp16", True),
                                        getattr(builder, "platform_has_fast_int8", True),
                                        _network_has_qdq(trt, network))
    for note in notes:
        log.warning("%s version %s: %s", request.name, request.version, note)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)  # scales come from the Q/DQ nodes
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b"")
    config.set_timing_cache(timing, ignore_mismatch=False)

    profile = shape_profile(_network_inputs(trt, network), request.max_batch_size, s, request.meta)
    if profile["min"]:
        opt = builder.create_optimization_profile()
        for name in profile["min"]:
            opt.set_shape(name, profile["min"][name], profile["opt"][name], profile["max"][name])
        config.add_optimization_profile(opt)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise IntegrityError(f"TensorRT could not build an engine for {request.name} (see the log above)")
    write_atomic(timing_path, bytes(memoryview(config.get_timing_cache().serialize())), CACHE_FILE_MODE)
    return bytes(serialized), profile, {"fp16": fp16, "int8": int8}


def build_engine(request: LoadRequest, force: bool = False) -> Path:
    """Build (or find in the cache) the engine for ``request``; returns the engine path."""
    import pycuda.driver as cuda
    import tensorrt as trt

    from appliance.inference.backends.tensorrt import primary_context

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

    gpu = gpu_key(device.name(), device.compute_capability(), trt.__version__)
    timing_path = cache_root(request) / "timing" / f"{gpu}.cache"
    ctx = primary_context(cuda, s.cuda_device_id)
    t0 = time.monotonic()
    ctx.push()
    try:
        plan, profile, enabled = _build_plan(trt, request, onnx_bytes, timing_path)
    finally:
        ctx.pop()
    build_s = time.monotonic() - t0
    write_atomic(plan_path, plan, CACHE_FILE_MODE)
    write_atomic(sidecar, json.dumps({
        "model": request.name, "version": request.version, "onnx_sha256": request.sha256,
        "engine_sha256": hashlib.sha256(plan).hexdigest(), "gpu": device.name(),
        "compute_capability": list(device.compute_capability()), "tensorrt": trt.__version__,
        **enabled, "build_settings": build_settings(request),
        "profile": {k: {n: list(v) for n, v in p.items()} for k, p in profile.items()},
        "build_s": round(build_s, 1),
    }, indent=2).encode(), CACHE_FILE_MODE)
    log.info("built TensorRT engine for %s in %.0f s: %s", request.name, build_s, plan_path)
    return plan_path
