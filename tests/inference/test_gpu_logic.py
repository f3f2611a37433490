"""The GPU backends' decisions that need no GPU: the native engine cache key and files, INT64 inputs on
a TensorRT 8 engine, whose fault a failed run is, why the TensorRT provider was dropped, and where its
caches and calibration table go. TensorRT, pycuda and a GPU exist only at the edge (``make`` below
stands in for ``ort.InferenceSession``); everything else is the product code itself."""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import os
import stat
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from inference_models import Settings, affine_model, lookup_model, write_version

from appliance.errors import IntegrityError, Unavailable
from appliance.inference.backend import LoadRequest, ModelRunError
from appliance.inference.backends import onnxruntime as ortb
from appliance.inference.backends import tensorrt as trtb
from appliance.inference.backends import tensorrt_build as build

CUDA_OPTS = {"device_id": 1, "arena_extend_strategy": "kSameAsRequested"}


def _request(tmp_path, max_batch_size=16, meta=None, **settings):
    model = tmp_path / "v1" / "model.onnx"
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(b"onnx")
    return LoadRequest(name="m", version="1", path=model, sha256="ab" * 32, max_batch_size=max_batch_size,
                       settings=Settings(**settings), cache_dir=tmp_path / "cache", meta=meta or {})


# --- native engine cache -------------------------------------------------------------------------


def test_engine_cache_key_follows_everything_that_changes_the_engine(tmp_path):
    base = build.engine_dir(_request(tmp_path), "orin-sm87-trt10.3.0")
    assert base == build.engine_dir(_request(tmp_path), "orin-sm87-trt10.3.0"), "the key is stable"
    changed = {
        "batch size": _request(tmp_path, max_batch_size=32),
        "max dim": _request(tmp_path, trt_max_dim=512),
        "opt dim": _request(tmp_path, trt_opt_dim=32),
        "workspace": _request(tmp_path, trt_workspace_mb=2048),
        "pinned profile": _request(tmp_path, meta={"trt_profile": {"max": {"x": [16, 8]}}}),
        "precision": _request(tmp_path, trt_fp16=False),
    }
    for what, request in changed.items():
        assert build.engine_dir(request, "orin-sm87-trt10.3.0") != base, f"{what} must change the engine key"
    assert build.engine_dir(_request(tmp_path), "orin-sm87-trt10.4.0") != base
    assert build.engine_dir(_request(tmp_path, batch_max_delay_ms=9), "orin-sm87-trt10.3.0") == base, \
        "a setting the engine does not depend on keeps the key"


def test_engine_files_are_written_readable_by_the_service_user(tmp_path):
    old = os.umask(0o077)  # as under a strict admin shell; mkstemp alone gives 0600
    try:
        build.write_atomic(tmp_path / "e" / "engine.plan", b"plan")
    finally:
        os.umask(old)
    path = tmp_path / "e" / "engine.plan"
    assert path.read_bytes() == b"plan"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["engine.plan"], "no temporary file left behind"


def test_cached_engine_checks_say_what_to_run(tmp_path):
    request = _request(tmp_path)
    plan, sidecar = tmp_path / "engine.plan", tmp_path / "engine.json"
    with pytest.raises(Unavailable, match="run: classroom-edge models build-engine m --version 1$"):
        build.read_cached_engine(request, plan, sidecar, "here")
    plan.write_bytes(b"plan")  # a build interrupted between the plan and its sidecar
    with pytest.raises(Unavailable, match="no readable engine.json .* --force"):
        build.read_cached_engine(request, plan, sidecar, "here")
    sidecar.write_text(f'{{"engine_sha256": "{hashlib.sha256(b"plan").hexdigest()}", "onnx_sha256": "{"ab" * 32}"}}')
    assert build.read_cached_engine(request, plan, sidecar, "here") == b"plan"
    plan.write_bytes(b"plan, damaged")
    with pytest.raises(IntegrityError, match="damaged or stale"):
        build.read_cached_engine(request, plan, sidecar, "here")


def test_int8_is_used_only_for_qdq_networks(tmp_path):
    wants_int8 = Settings(trt_int8=True, trt_fp16=True)
    fp16, int8, notes = build.precision_flags(wants_int8, fast_fp16=True, fast_int8=True, has_qdq=False)
    assert (fp16, int8) == (True, False) and "Q/DQ" in notes[0]
    assert build.precision_flags(wants_int8, fast_fp16=True, fast_int8=True, has_qdq=True)[:2] == (True, True)
    fp16, int8, notes = build.precision_flags(Settings(trt_fp16=True), fast_fp16=False, fast_int8=True, has_qdq=False)
    assert (fp16, int8) == (False, False) and "FP16" in notes[0]


# --- native run ----------------------------------------------------------------------------------


def test_int64_inputs_are_narrowed_for_tensorrt_8_only_when_they_fit():
    ids = np.array([[0, 2**31 - 1, -(2**31)]], dtype=np.int64)
    narrowed = trtb.to_engine_array("input_ids", ids, np.int32)
    assert narrowed.dtype == np.int32 and narrowed.tolist() == ids.tolist()
    for bad in (2**31, -(2**31) - 1):
        with pytest.raises(ModelRunError, match="input_ids: values") as caught:
            trtb.to_engine_array("input_ids", np.array([1, bad], dtype=np.int64), np.int32)
        assert caught.value.status == 400, "the caller's values: a 400, never a silent wrap-around"
    assert trtb.to_engine_array("x", np.ones(3, np.float32), np.float16).dtype == np.float16


def test_outputs_with_data_dependent_shapes_are_found():
    assert trtb.dynamic_outputs({"boxes": (-1, 4), "scores": (16,)}) == ["boxes"]
    assert trtb.dynamic_outputs({"y": (16, 4)}) == []


def test_one_tensorrt_logger_and_one_primary_context_per_device(monkeypatch):
    monkeypatch.setattr(trtb, "_TRT_LOGGER", None)
    monkeypatch.setattr(trtb, "_PRIMARY_CONTEXTS", {})
    made = []
    trt = types.SimpleNamespace(Logger=lambda level: made.append(level) or object())
    trt.Logger.WARNING = 2
    assert trtb.trt_logger(trt) is trtb.trt_logger(trt) and len(made) == 1
    retained = []
    cuda = types.SimpleNamespace(init=lambda: None,
                                 Device=lambda i: types.SimpleNamespace(retain_primary_context=lambda: retained.append(i) or f"ctx{i}"))
    assert trtb.primary_context(cuda, 0) == trtb.primary_context(cuda, 0) == "ctx0"
    assert trtb.primary_context(cuda, 1) == "ctx1" and retained == [0, 1]


def test_native_backend_imports_neither_onnxruntime_nor_tensorrt():
    code = ("import sys, appliance.inference.backends.tensorrt, appliance.inference.backends.tensorrt_build; "
            "print(sorted(m for m in ('onnxruntime', 'tensorrt', 'pycuda') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


# --- ONNX Runtime: run errors ----------------------------------------------------------------------


@pytest.mark.parametrize("exc, status", [
    (ortb._STATE.Fail("[ONNXRuntimeError] : 1 : FAIL : CUDA failure 2: out of memory ; GPU=0"), 503),
    (ortb._STATE.RuntimeException("BFCArena::AllocateRawInternal Failed to allocate memory for requested buffer"), 503),
    (ortb._STATE.Fail("TensorRT EP execution context enqueue failed."), 503),
    (ortb._STATE.EPFail("[ONNXRuntimeError] : 11 : EP_FAIL : provider gave up"), 503),
    (ortb._STATE.InvalidArgument("indices element out of data bounds, idx=9 must be within [-5,4]"), 400),
    (ortb._STATE.Fail("Status Message: /onnxruntime_src/onnxruntime/core/providers/cuda/tensor/slice.cc:12 "
                      "starts must be within the input"), 400),
])
def test_run_errors_blame_the_gpu_or_the_input(exc, status):
    err = ortb.run_error("minilm", exc)
    assert err.status == status
    assert isinstance(err, Unavailable if status == 503 else ModelRunError)
    assert err.message.startswith("minilm could not run")


def test_a_bad_value_on_the_cpu_is_still_the_callers_400(repo, tmp_path):
    d = write_version(repo, "lookup", "1", lookup_model(5))
    backend = ortb.OnnxRuntimeBackend(LoadRequest(
        name="lookup", version="1", path=d / "model.onnx", sha256=hashlib.sha256(lookup_model(5)).hexdigest(),
        max_batch_size=0, settings=Settings(), cache_dir=tmp_path / "cache"))
    with pytest.raises(ModelRunError) as caught:
        backend.infer({"ids": np.array([9], dtype=np.int64)})
    assert caught.value.status == 400


# --- ONNX Runtime: the TensorRT provider's fallback --------------------------------------------------

# What ONNX Runtime's InferenceSession.__init__ prints before its own retry (onnxruntime_inference_collection.py).
ORT_FALLBACK_OUTPUT = (
    "*************** EP Error ***************\n"
    "EP Error [ONNXRuntimeError] : 11 : EP_FAIL : TensorRT EP failed to create engine from network. "
    "when using ['TensorrtExecutionProvider', 'CUDAExecutionProvider', 'CPUExecutionProvider']\n"
    "Falling back to ['CUDAExecutionProvider', 'CPUExecutionProvider'] and retrying.\n"
    "****************************************\n"
)


def test_the_fallback_reason_is_taken_from_what_onnx_runtime_printed():
    assert ortb.ep_error_from_output(ORT_FALLBACK_OUTPUT) == \
        "[ONNXRuntimeError] : 11 : EP_FAIL : TensorRT EP failed to create engine from network."
    assert ortb.ep_error_from_output("EP Error: boom\nsecond line using ['TensorrtExecutionProvider']\n") == "boom"
    assert ortb.ep_error_from_output("2025-01-01 some other log line\n") is None
    assert ortb.ep_error_from_output("") is None


class _Session:
    def __init__(self, providers):
        self.providers = providers

    def get_providers(self):
        return list(self.providers)


def test_after_onnx_runtimes_silent_retry_the_session_is_remade_with_our_options(capsys):
    calls = []

    def make(providers, options):
        calls.append((providers, options))
        if "TensorrtExecutionProvider" in providers:
            print(ORT_FALLBACK_OUTPUT, end="")  # ORT's retry ran without options: it must not be kept
            return _Session(["CUDAExecutionProvider", "CPUExecutionProvider"])
        return _Session(providers)

    providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    session, reason = ortb.create_session(make, providers, [{"trt_fp16_enable": True}, CUDA_OPTS, {}], None, "minilm")
    assert "TensorRT EP failed to create engine" in reason
    assert calls[-1] == (["CUDAExecutionProvider", "CPUExecutionProvider"], [CUDA_OPTS, {}])
    assert session.get_providers()[0] == "CUDAExecutionProvider"
    assert "EP Error" not in capsys.readouterr().out, "ONNX Runtime's banner is captured, not printed"


def test_an_unreadable_cached_engine_is_rebuilt_once_then_the_provider_is_dropped(tmp_path):
    engines = tmp_path / "engines"
    engines.mkdir()
    (engines / "TRTKernel_graph_1_sm87.engine").write_bytes(b"half written")
    (engines / ".build.lock").touch()
    attempts = []

    def make(providers, options):
        attempts.append(providers)
        if "TensorrtExecutionProvider" in providers:
            raise ortb._STATE.EPFail(f"TensorRT EP could not deserialize engine from cache: {engines}/x.engine")
        return _Session(providers)

    providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    session, reason = ortb.create_session(make, providers, [{}, CUDA_OPTS, {}], engines, "minilm")
    assert [p[0] for p in attempts] == ["TensorrtExecutionProvider", "TensorrtExecutionProvider", "CUDAExecutionProvider"]
    assert not list(engines.glob("*.engine")) and (engines / ".build.lock").exists()
    assert "could not deserialize engine" in reason and session.get_providers()[0] == "CUDAExecutionProvider"


def test_a_model_error_is_not_mistaken_for_a_provider_failure():
    def make(providers, options):
        raise ortb._STATE.InvalidGraph("this is not a model")

    with pytest.raises(ortb._STATE.InvalidGraph):
        ortb.create_session(make, ["TensorrtExecutionProvider", "CPUExecutionProvider"], [{}, {}], None, "m")


def test_one_process_at_a_time_builds_a_models_provider_engines(tmp_path):
    with ortb._exclusive(tmp_path):
        with open(tmp_path / ".build.lock") as other, pytest.raises(BlockingIOError):
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(tmp_path / ".build.lock") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: free again


def test_provider_caches_are_per_onnx_runtime_and_tensorrt_version(tmp_path, monkeypatch):
    assert ortb.ort_trt_cache_dir(tmp_path, "1.20.1", "100300") == tmp_path / "ort1.20.1-trt100300"
    monkeypatch.setattr(ortb.ctypes, "CDLL", lambda name: types.SimpleNamespace(getInferLibVersion=lambda: 100300))
    assert ortb.trt_library_version() == "100300"

    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ortb.ctypes, "CDLL", missing)
    assert ortb.trt_library_version() == "unknown"


def test_the_calibration_table_is_an_absolute_checked_file_of_the_version(tmp_path):
    meta = {"trt_int8_calibration_table": "calib.flatbuffers", "files": {"calib.flatbuffers": "00" * 32}}
    opts = ortb.calibration_table_options(_request(tmp_path, meta=meta, trt_int8=True))
    assert opts["trt_int8_calibration_table_name"] == str((tmp_path / "v1" / "calib.flatbuffers").resolve())
    assert opts["trt_int8_use_native_calibration_table"] is False
    native = ortb.calibration_table_options(_request(tmp_path, meta={**meta, "trt_int8_native_table": True}, trt_int8=True))
    assert native["trt_int8_use_native_calibration_table"] is True
    assert ortb.calibration_table_options(_request(tmp_path, meta=meta, trt_int8=False)) == {}
    for bad in ({"trt_int8_calibration_table": "calib.flatbuffers"},  # not in files: its sha256 unchecked
                {"trt_int8_calibration_table": "../x", "files": {"../x": "00" * 32}}):
        with pytest.raises(IntegrityError, match="trt_int8_calibration_table"):
            ortb.calibration_table_options(_request(tmp_path, meta=bad, trt_int8=True))
    # model.json "file": "onnx/model.onnx": the table's name is still relative to the version, not the file.
    nested = tmp_path / "v2" / "onnx" / "model.onnx"
    nested.parent.mkdir(parents=True)
    request = dataclasses.replace(_request(tmp_path, meta={**meta, "file": "onnx/model.onnx"}, trt_int8=True),
                                  path=nested, version_dir=tmp_path / "v2")
    assert ortb.calibration_table_options(request)["trt_int8_calibration_table_name"] == \
        str((tmp_path / "v2" / "calib.flatbuffers").resolve())


def _affine_request(repo, tmp_path, name: str = "affine", **settings) -> LoadRequest:
    """A version of the affine model in ``repo`` and the LoadRequest the engine would make for it."""
    d = write_version(repo, name, "1", affine_model(1.0))
    return LoadRequest(name=name, version="1", path=d / "model.onnx", sha256=hashlib.sha256(affine_model(1.0)).hexdigest(),
                       max_batch_size=8, settings=Settings(**settings), cache_dir=tmp_path / "cache")


def test_onnxruntime_backend_loads_on_the_cpu_and_says_the_gpu_providers_are_missing(repo, tmp_path):
    if "TensorrtExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has the TensorRT provider")
    backend = ortb.OnnxRuntimeBackend(_affine_request(repo, tmp_path, providers=["tensorrt", "cuda", "cpu"]))
    described = backend.describe()
    assert described["requested_providers"] == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert described["active_providers"] == ["CPUExecutionProvider"]
    assert described["fallback"].startswith("TensorrtExecutionProvider was requested but is not active")
    assert described["fallback"].endswith(f"reason: this ONNX Runtime ({ort.__version__}) has no TensorrtExecutionProvider; "
                                          "the onnxruntime-gpu package has CUDA and TensorRT")
    assert np.allclose(backend.infer({"x": np.ones((2, 4), np.float32)})["y"], 3.0)
    backend.fallback_reason = "TensorRT EP failed to create engine from network."
    assert backend.fallback.endswith("; reason: TensorRT EP failed to create engine from network.")
    assert not (tmp_path / "cache" / "ort-trt").exists(), "no TensorRT cache without the TensorRT provider"


def test_cuda_libraries_are_preloaded_once_and_what_failed_is_logged(monkeypatch, caplog, capsys):
    calls = []

    def fake_preload():
        calls.append(1)
        print("Failed to load libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(ortb.ort, "preload_dlls", fake_preload, raising=False)
    ortb.preload_cuda_libraries.cache_clear()
    try:
        with caplog.at_level("WARNING"):
            assert "libcudnn.so.9" in ortb.preload_cuda_libraries()
            ortb.preload_cuda_libraries()
        assert calls == [1], "loaded once per process"
        assert "libcudnn.so.9" in caplog.text and capsys.readouterr().out == "", "logged, not printed to stdout"
        monkeypatch.delattr(ortb.ort, "preload_dlls")
        ortb.preload_cuda_libraries.cache_clear()
        assert ortb.preload_cuda_libraries() == "", "an ONNX Runtime before 1.21 has nothing to preload"
    finally:
        ortb.preload_cuda_libraries.cache_clear()


def test_gpu_providers_preload_the_cuda_libraries_and_the_cpu_alone_does_not(repo, tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(ortb, "preload_cuda_libraries", lambda: loaded.append(1) or "")
    for providers, expected in ((["cpu"], []), (["cuda", "cpu"], [1])):
        loaded.clear()
        monkeypatch.setattr(ortb.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
        request = _affine_request(repo, tmp_path, providers=providers)
        try:
            ortb.OnnxRuntimeBackend(request)
        except Exception:  # noqa: BLE001 - this CPU build cannot make a CUDA session; only the preload matters
            pass
        assert loaded == expected, providers


def test_models_kept_on_the_cpu_ignore_the_gpu_providers(repo, tmp_path, monkeypatch):
    loaded = []
    monkeypatch.setattr(ortb, "preload_cuda_libraries", lambda: loaded.append(1) or "")
    request = _affine_request(repo, tmp_path, "learner", providers=["tensorrt", "cuda", "cpu"])
    backend = ortb.OnnxRuntimeBackend(request)
    described = backend.describe()
    assert described["requested_providers"] == ["CPUExecutionProvider"] == described["active_providers"]
    assert described["fallback"] is None and described["kept_on_cpu"], "kept on the CPU by choice, not a fallback"
    on_trt_box = dataclasses.replace(request, settings=Settings(backend="tensorrt"))
    assert ortb.OnnxRuntimeBackend(on_trt_box).describe()["kept_on_cpu"], "the other models of this box go to TensorRT"
    assert not ortb.OnnxRuntimeBackend(dataclasses.replace(request, settings=Settings())).describe()["kept_on_cpu"], \
        "a CPU-only box keeps nothing from a GPU"
    assert loaded == [] and not (tmp_path / "cache" / "ort-trt").exists()
    other = dataclasses.replace(request, settings=Settings(providers=["tensorrt", "cuda", "cpu"], cpu_models=[]))
    assert ortb.OnnxRuntimeBackend(other).describe()["requested_providers"][0] == "TensorrtExecutionProvider"


def test_why_cuda_did_not_start_comes_from_the_loader(tmp_path, monkeypatch):
    (tmp_path / "libonnxruntime_providers_cuda.so").write_bytes(b"not loaded")
    loaded = []

    def fake_cdll(name, missing):
        loaded.append(name)
        if missing in str(name):
            raise OSError(f"{missing}: cannot open shared object file: No such file or directory")

    monkeypatch.setattr(ortb.ctypes, "CDLL", lambda name: fake_cdll(name, "providers_cuda"))
    why = ortb.cuda_provider_problem(tmp_path)
    assert why.startswith("the CUDA provider cannot load:") and "cannot open shared object file" in why
    monkeypatch.setattr(ortb.ctypes, "CDLL", lambda name: fake_cdll(name, "libcuda.so.1"))
    assert ortb.cuda_provider_problem(tmp_path).startswith("no NVIDIA driver: libcuda.so.1")
    # The provider library links the driver: without it, the provider itself fails to load (H100, driver hidden).
    monkeypatch.setattr(ortb.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(
        OSError("/usr/local/nvidia/lib64/libcuda.so.1: file too short")))
    assert ortb.cuda_provider_problem(tmp_path) == "no NVIDIA driver: /usr/local/nvidia/lib64/libcuda.so.1: file too short"
    monkeypatch.setattr(ortb.ctypes, "CDLL", lambda name: fake_cdll(name, "nothing is missing"))
    assert ortb.cuda_provider_problem(tmp_path) is None, "libraries and driver load, CUDA starts: nothing to add"
    monkeypatch.setattr(ortb.ctypes, "CDLL", lambda name: (_ for _ in ()).throw(OSError("undefined symbol: Provider_GetHost")))
    assert ortb.cuda_provider_problem(tmp_path) is None, "a loader error that is not a missing library would mislead"
    assert ortb.cuda_provider_problem(tmp_path / "elsewhere") is None, "a CPU build has no CUDA provider library"


def test_a_provider_this_build_lacks_is_named_with_the_ones_it_has(repo, tmp_path):
    request = _affine_request(repo, tmp_path, providers=["OpenVINOExecutionProvider", "cpu"])
    fallback = ortb.OnnxRuntimeBackend(request).describe()["fallback"]
    assert "has no OpenVINOExecutionProvider; it has " in fallback and "CPUExecutionProvider" in fallback
    assert "onnxruntime-gpu" not in fallback, "the GPU package is suggested for CUDA and TensorRT only"


def test_models_kept_on_the_cpu_use_onnx_runtime_even_when_the_box_serves_tensorrt(repo, make_engine):
    write_version(repo, "learner", "1", affine_model(1.0))
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine(backend="tensorrt")
    models = {m["name"]: m for m in engine.models_status()}
    assert models["learner"]["ready"] and models["learner"]["backend"] == "onnxruntime"
    assert models["learner"]["active_providers"] == ["CPUExecutionProvider"]
    if trtb.TensorRTBackend.check_environment() is not None:
        assert not models["affine"]["ready"] and "tensorrt backend cannot be used" in models["affine"]["error"]


class _FakeDriver:
    """libcuda.so.1's two calls the diagnosis makes."""

    def __init__(self, init_rc: int, devices: int):
        self.init_rc, self.devices = init_rc, devices

    def cuInit(self, _flags):  # noqa: N802 - the driver API's name
        return self.init_rc

    def cuDeviceGetCount(self, count_ref):  # noqa: N802
        count_ref._obj.value = self.devices
        return 0


@pytest.mark.parametrize("init_rc, devices, expected", [
    (100, 0, "no CUDA-capable GPU is visible (CUDA_ERROR_NO_DEVICE)"),
    (999, 0, "CUDA_ERROR_UNKNOWN; are /dev/nvidia* reachable?"),
    (803, 1, "reboot after a driver upgrade (CUDA_ERROR_SYSTEM_DRIVER_MISMATCH)"),
    (34, 1, "CUDA_ERROR_STUB_LIBRARY"),
    (42, 0, "CUresult 42"),
    (0, 0, "CUDA_ERROR_NO_DEVICE"),
    (0, 1, None),
])
def test_a_driver_that_loads_is_asked_why_cuda_does_not_start(init_rc, devices, expected):
    why = ortb._driver_problem(_FakeDriver(init_rc, devices))
    assert why is None if expected is None else (why.startswith("the NVIDIA driver cannot start CUDA: ") and expected in why)


def test_a_configured_gpu_the_box_does_not_have_is_named():
    assert ortb._driver_problem(_FakeDriver(0, 1), device_id=1) == \
        "inference.cuda_device_id is 1, but this box has 1 GPU(s), numbered from 0"
    assert ortb._driver_problem(_FakeDriver(0, 2), device_id=1) is None


def test_what_cuda_diagnosis_finds_comes_before_what_onnx_runtime_printed(repo, tmp_path, monkeypatch):
    """With no GPU visible, ONNX Runtime's printed error was "... FromProviderOptions ... Parse Failed" (H100,
    device nodes hidden); the driver's answer says what is wrong."""
    backend = ortb.OnnxRuntimeBackend(_affine_request(repo, tmp_path))  # a session to ask about
    backend.requested_providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    chosen = list(backend.requested_providers)
    available = set(chosen)
    monkeypatch.setattr(ortb, "cuda_provider_problem", lambda **_: "the NVIDIA driver cannot start CUDA: no GPU")
    assert backend._why_not_first(available, chosen, "provider_options_utils.h:187 Parse Failed") == \
        "the NVIDIA driver cannot start CUDA: no GPU; ONNX Runtime said: provider_options_utils.h:187 Parse Failed"
    assert backend._why_not_first(available, chosen, None) == "the NVIDIA driver cannot start CUDA: no GPU"
    monkeypatch.setattr(ortb, "cuda_provider_problem", lambda **_: None)
    assert backend._why_not_first(available, chosen, "printed") == "printed", "nothing found: what ONNX Runtime said"
    # TensorRT asked first, missing from this build (which has CUDA: no advice to install the GPU package
    # it is), and CUDA failing too: both are said.
    monkeypatch.setattr(ortb, "cuda_provider_problem", lambda **_: "no NVIDIA driver: libcuda.so.1")
    backend.requested_providers = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert backend._why_not_first(available, chosen, None) == (
        f"this ONNX Runtime ({ort.__version__}) was built without TensorrtExecutionProvider; it has CPUExecutionProvider,"
        " CUDAExecutionProvider; no NVIDIA driver: libcuda.so.1")
    backend.requested_providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    backend.active_providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert backend._why_not_first(available, chosen, None) is None
