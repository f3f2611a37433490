"""Backends: the registry's lazy, guarded imports; the TensorRT paths on a GPU (skipped here with the
reason: this machine has no NVIDIA GPU, CUDA or TensorRT)."""
from __future__ import annotations

import stat
import sys

import numpy as np
import onnxruntime as ort
import pytest
from inference_models import Settings, affine_model, seqsum_model, write_version

from appliance.errors import Unavailable
from appliance.inference.backends import backend_class
from appliance.inference.backends.onnxruntime import trt_library_version
from appliance.inference.backends.profiles import ort_profile_options, shape_profile
from appliance.inference.backends.tensorrt import TensorRTBackend
from appliance.inference.tensors import TensorSpec


def test_unknown_backend_is_refused_with_the_known_ones():
    with pytest.raises(Unavailable, match="known: onnxruntime, tensorrt"):
        backend_class("openvino")


def test_tensorrt_backend_says_why_it_cannot_run_without_importing_tensorrt():
    reason = TensorRTBackend.check_environment()
    if reason is None:
        pytest.skip("tensorrt and pycuda are installed here")
    assert "tensorrt" in reason or "pycuda" in reason
    with pytest.raises(Unavailable, match="cannot be used on this box"):
        backend_class("tensorrt")
    assert "tensorrt" not in sys.modules and "pycuda" not in sys.modules


def test_model_on_tensorrt_backend_is_reported_not_crashed(repo, make_engine):
    if TensorRTBackend.check_environment() is None:
        pytest.skip("tensorrt is installed here")
    write_version(repo, "affine", "1", affine_model(1.0), backend="tensorrt")
    engine = make_engine()
    st = engine.status()
    assert st.state == "degraded" and "tensorrt backend cannot be used" in st.detail


def test_shape_profiles_for_tensorrt():
    specs = [TensorSpec("input_ids", "INT64", (-1, -1)), TensorSpec("attention_mask", "INT64", (-1, -1)),
             TensorSpec("fixed", "FP32", (3, 4))]
    prof = shape_profile(specs, 32, Settings(trt_opt_dim=64, trt_max_dim=128), {})
    assert prof["min"]["input_ids"] == (1, 1) and prof["opt"]["input_ids"] == (32, 64)
    assert prof["max"]["attention_mask"] == (32, 128) and "fixed" not in prof["max"]
    opts = ort_profile_options(prof)
    assert opts["trt_profile_max_shapes"] == "input_ids:32x128,attention_mask:32x128"
    pinned = shape_profile(specs, 32, Settings(), {"trt_profile": {"min": {"input_ids": [1, 8]}}})
    assert pinned["min"]["input_ids"] == (1, 8)


def _has(provider):
    return provider in ort.get_available_providers()


def _has_tensorrt_provider() -> bool:
    """The GPU build of ONNX Runtime lists its TensorRT provider whether or not TensorRT itself is
    installed; without libnvinfer the provider cannot start, and that case is test_gpu_logic's."""
    return _has("TensorrtExecutionProvider") and trt_library_version() != "unknown"


@pytest.mark.gpu
@pytest.mark.skipif(not _has("CUDAExecutionProvider"), reason="no CUDA-enabled ONNX Runtime / NVIDIA GPU on this machine")
def test_cuda_provider_is_active_on_a_gpu(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine(providers=["cuda", "cpu"])
    (m,) = engine.models_status()
    assert m["active_providers"][0] == "CUDAExecutionProvider" and m["fallback"] is None
    y = engine.infer("affine", {"x": np.ones((3, 4), np.float32)})["y"]
    assert np.allclose(y, 3.0)


@pytest.mark.gpu
@pytest.mark.skipif(not _has_tensorrt_provider(), reason="no TensorRT-enabled ONNX Runtime with TensorRT's library / NVIDIA GPU on this machine")
def test_tensorrt_provider_with_engine_cache(repo, make_engine, tmp_path):
    write_version(repo, "seq", "1", seqsum_model(), max_batch_size=8)
    engine = make_engine(providers=["tensorrt", "cuda", "cpu"], trt_cache_dir=str(tmp_path / "trt"))
    (m,) = engine.models_status()
    assert m["active_providers"][0] == "TensorrtExecutionProvider"
    out = engine.infer("seq", {"input_ids": np.array([[1, 2, 3]]), "attention_mask": np.array([[1, 1, 0]])})
    assert out["total"].tolist() == [3]
    assert any((tmp_path / "trt").rglob("*.engine")), "the engine was cached for the next start"
    assert list((tmp_path / "trt").glob("ort*-trt*")), "provider caches are kept per ONNX Runtime/TensorRT version"
    assert m["fallback"] is None


needs_native_tensorrt = pytest.mark.skipif(
    TensorRTBackend.check_environment() is not None,
    reason=f"native TensorRT backend unavailable: {TensorRTBackend.check_environment()}")


def _build_engine(repo, tmp_path, monkeypatch, name: str, model: bytes, **meta) -> str:
    """Write a tensorrt-backend version and build its engine with the CLI; returns the cache dir."""
    from appliance.cli.main import main

    cache = str(tmp_path / "trt")
    monkeypatch.setenv("CLASSROOM_EDGE_INFERENCE__TRT_CACHE_DIR", cache)
    write_version(repo, name, "1", model, backend="tensorrt", **meta)
    assert main(["models", "build-engine", name, "--repo", str(repo), "--data-dir", str(tmp_path / "d")]) == 0
    return cache


@pytest.mark.gpu
@needs_native_tensorrt
def test_native_tensorrt_engine_build_and_infer(repo, make_engine, tmp_path, monkeypatch):
    cache = _build_engine(repo, tmp_path, monkeypatch, "affine", affine_model(1.0), max_batch_size=16)
    assert list((tmp_path / "trt").rglob("engine.plan")), "engine cached per model file / GPU / TensorRT version"
    (plan,) = (tmp_path / "trt").rglob("engine.plan")
    assert stat.S_IMODE(plan.stat().st_mode) == 0o644, "readable by the service user whoever built it"
    engine = make_engine(trt_cache_dir=cache)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.allclose(engine.infer("affine", {"x": x})["y"], x * 2 + 1, atol=1e-2)


@pytest.mark.gpu
@needs_native_tensorrt
def test_native_engine_built_for_other_settings_is_not_loaded(repo, make_engine, tmp_path, monkeypatch):
    cache = _build_engine(repo, tmp_path, monkeypatch, "affine", affine_model(1.0), max_batch_size=16)
    st = make_engine(trt_cache_dir=cache, trt_workspace_mb=512).status()
    assert st.state == "degraded" and "build-engine affine" in st.detail, "a new workspace/profile needs a new engine"


@pytest.mark.gpu
@needs_native_tensorrt
def test_native_engine_serves_int64_tensors_as_declared(repo, make_engine, tmp_path, monkeypatch):
    ids = {"datatype": "INT64", "shape": [-1, -1]}
    cache = _build_engine(repo, tmp_path, monkeypatch, "seq", seqsum_model(), max_batch_size=8,
                          inputs=[{"name": "input_ids", **ids}, {"name": "attention_mask", **ids}],
                          outputs=[{"name": "total", "datatype": "INT64", "shape": [-1]}])
    engine = make_engine(trt_cache_dir=cache)
    out = engine.infer("seq", {"input_ids": np.array([[1, 2, 3]]), "attention_mask": np.array([[1, 1, 0]])})
    assert out["total"].dtype == np.int64 and out["total"].tolist() == [3]


@pytest.mark.gpu
@pytest.mark.skipif(not _has("TensorrtExecutionProvider") or _has_tensorrt_provider(),
                    reason="needs ONNX Runtime's TensorRT provider without TensorRT's library (the GPU wheel on a PC without TensorRT)")
def test_tensorrt_provider_without_tensorrt_runs_on_cuda_and_says_why(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine(providers=["tensorrt", "cuda", "cpu"])
    (m,) = engine.models_status()
    assert m["active_providers"][0] == "CUDAExecutionProvider", m
    assert m["fallback"].startswith("TensorrtExecutionProvider was requested but is not active; running on CUDAExecutionProvider")
    assert "; reason: " in m["fallback"], "the status says why TensorRT did not start"
    assert np.allclose(engine.infer("affine", {"x": np.ones((3, 4), np.float32)})["y"], 3.0)
