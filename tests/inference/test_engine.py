"""The engine: loading, refusing, swapping under load with zero failed requests, fallback reporting."""
from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
from inference_models import Settings, affine_model, lookup_model, write_version

from appliance.errors import BadRequest, Unavailable
from appliance.inference.engine import InferenceEngine
from appliance.inference.repository import Repository


def y_of(engine, x=1.0):
    return engine.infer("affine", {"x": np.full((1, 4), x, np.float32)})["y"]


def test_serves_the_active_version_and_reports_it(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "affine", "2", affine_model(2.0))
    engine = make_engine()
    assert np.all(y_of(engine) == 4.0)  # 1*2 + 2: the highest version, no ACTIVE yet
    (status,) = engine.models_status()
    assert status["version"] == "2" and status["ready"] and status["active_providers"] == ["CPUExecutionProvider"]
    assert status["requests"] == 1 and status["p50_ms"] is not None
    st = engine.status()
    assert st.state == "ok" and "affine v2" in st.detail


def test_tampered_model_is_refused_at_start_and_others_still_serve(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    bad = write_version(repo, "lookup", "1", lookup_model())
    (bad / "model.onnx").write_bytes((bad / "model.onnx").read_bytes() + b"\0")
    engine = make_engine()
    assert np.all(y_of(engine) == 3.0)
    with pytest.raises(Unavailable, match="does not match its sha256"):
        engine.infer("lookup", {"ids": np.array([0])})
    st = engine.status()
    assert st.state == "degraded" and "lookup" in st.detail and "sha256" in st.detail


def test_unsigned_model_refused_when_keys_configured(repo, make_engine):
    from test_repository import keypair

    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine(trusted_keys=[keypair()[1]])
    assert not engine.ready()
    assert "not signed" in engine.status().detail


def test_warm_up_failure_keeps_the_version_out(repo, make_engine):
    warm = [{"name": "ids", "datatype": "INT64", "shape": [1], "data": [99]}]  # out of the table: fails
    write_version(repo, "lookup", "1", lookup_model(), warmup=warm)
    engine = make_engine()
    assert engine.loaded("lookup") is None
    assert "could not run" in engine.status().detail


def test_cuda_requested_but_unavailable_is_reported_as_fallback(repo, make_engine):
    """The real case on this machine: no CUDA in this ONNX Runtime, so the model runs on the CPU and
    the status must say so instead of quietly being slow."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this ONNX Runtime has CUDA; the fallback case cannot be shown here")
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine(providers=["cuda", "cpu"])
    assert np.all(y_of(engine) == 3.0)
    (m,) = engine.models_status()
    assert m["requested_providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert m["active_providers"] == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider was requested but is not active" in m["fallback"]
    st = engine.status()
    assert st.state == "degraded" and "CUDAExecutionProvider" in st.detail
    assert 'ce_inference_provider_fallback{model="affine"} 1.0' in engine.metrics.exposition()[0].decode()


def test_unknown_model_and_inactive_version_are_bad_requests(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine()
    with pytest.raises(BadRequest, match="unknown model"):
        engine.infer("nope", {})
    with pytest.raises(BadRequest, match="serves version 1"):
        engine.run("affine", {"x": np.ones((1, 4), np.float32)}, version="7")
    with pytest.raises(BadRequest, match="must be FP32"):
        engine.infer("affine", {"x": np.ones((1, 4), np.int64)})


def test_a_model_kept_on_disk_but_not_served_is_a_bad_request_not_unavailable(repo, make_engine):
    """minilm-fp32 stays in the repository as quantization's reference but is not in inference.models:
    a 503 "not ready" would have a client retry for something that never comes."""
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "spare", "1", affine_model(2.0))
    engine = make_engine(models=["affine"])
    with pytest.raises(BadRequest, match="'spare' is in the repository but not served here"):
        engine.infer("spare", {"x": np.ones((1, 4), np.float32)})
    assert np.all(y_of(engine) == 3.0)


def test_request_larger_than_a_batch_is_split(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0), max_batch_size=4)
    engine = make_engine()
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    assert np.array_equal(engine.infer("affine", {"x": x})["y"], x * 2 + 1)


def test_dynamic_batching_false_runs_on_the_callers_thread(repo, make_engine):
    """model.json "dynamic_batching": false: no batching thread; requests run concurrently on their
    callers' threads, bigger ones are still split at max_batch_size, and a bad input is still refused
    after good ones of the same model were accepted (the checked-signature cache)."""
    write_version(repo, "affine", "1", affine_model(1.0), max_batch_size=4, dynamic_batching=False)
    engine = make_engine()
    model = engine.loaded("affine")
    assert model.batcher is None and model.describe()["dynamic_batching"] is False
    assert not [t for t in threading.enumerate() if t.name.startswith("batcher-affine")]
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    assert np.array_equal(engine.infer("affine", {"x": x})["y"], x * 2 + 1)
    results = []
    workers = [threading.Thread(target=lambda k=k: results.append(
        float(engine.infer("affine", {"x": np.full((1, 4), k, np.float32)})["y"][0, 0]) - 2 * k)) for k in range(8)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert results == [1.0] * 8
    with pytest.raises(BadRequest, match="must be FP32"):
        engine.infer("affine", {"x": np.ones((1, 4), np.int64)})
    with pytest.raises(BadRequest, match="must have shape"):
        engine.infer("affine", {"x": np.ones((1, 5), np.float32)})
    with pytest.raises(BadRequest, match="at least 1 row"):  # the batcher's row check, without a batcher
        engine.infer("affine", {"x": np.ones((0, 4), np.float32)})


def test_in_flight_request_keeps_the_old_version_until_it_finishes(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "affine", "2", affine_model(2.0))
    Repository(repo).set_active("affine", "1")
    engine = make_engine()
    with engine.using("affine") as old:
        engine.activate("affine", "2")
        assert engine.loaded("affine").version == "2"
        assert old.retired and old.batcher is not None
        # The old version still answers its in-flight caller after the switch.
        assert np.all(old.run({"x": np.ones((1, 4), np.float32)})["y"] == 3.0)
    with pytest.raises(Unavailable):
        old.batcher.submit({"x": np.ones((1, 4), np.float32)})  # closed once its last user left
    assert (repo / "affine" / "ACTIVE").read_text() == "2\n"


def test_swaps_under_concurrent_load_fail_no_request(repo, make_engine):
    for v in ("1", "2", "3"):
        write_version(repo, "affine", v, affine_model(float(v)))
    Repository(repo).set_active("affine", "1")
    engine = make_engine()
    stop = threading.Event()
    failures, answered = [], {}
    lock = threading.Lock()

    def client(k):
        n = 0
        while not stop.is_set() and n < 5000:
            x = float(k)
            try:
                version, out = engine.run("affine", {"x": np.full((1, 4), x, np.float32)})
                if not np.all(out["y"] == 2 * x + float(version)):
                    failures.append(f"wrong answer from version {version}: {out['y']}")
            except Exception as exc:  # noqa: BLE001 - counted as a failed request
                failures.append(repr(exc))
            with lock:
                answered[version] = answered.get(version, 0) + 1
            n += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    try:
        for step in ("2", "3", "rollback", "1", "rollback", "3"):
            time.sleep(0.05)
            if step == "rollback":
                engine.rollback("affine")
            else:
                engine.activate("affine", step)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert failures == []
    assert engine.loaded("affine").version == "3"
    assert len(answered) >= 2, f"the swaps happened while requests were running: {answered}"


def test_watcher_follows_active_written_by_another_process(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "affine", "2", affine_model(2.0))
    Repository(repo).set_active("affine", "1")
    engine = make_engine(watch_interval_s=0.05)
    assert np.all(y_of(engine) == 3.0)
    Repository(repo).set_active("affine", "2")  # what `classroom-edge models activate` does
    deadline = time.monotonic() + 20
    while engine.loaded("affine").version != "2" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert np.all(y_of(engine) == 4.0)


def test_watcher_does_not_swap_to_a_broken_version(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    bad = write_version(repo, "affine", "2", affine_model(2.0))
    Repository(repo).set_active("affine", "1")
    manifest = json.loads((bad / "model.json").read_text())
    manifest["sha256"] = "0" * 64
    (bad / "model.json").write_text(json.dumps(manifest))
    engine = make_engine(watch_interval_s=0.05)
    (repo / "affine" / "ACTIVE").write_text("2\n")  # someone bypassed the CLI
    deadline = time.monotonic() + 20
    while "version 2" not in engine.status().detail and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "version 2" in engine.status().detail
    assert np.all(y_of(engine) == 3.0), "version 1 keeps serving"
    with pytest.raises(Exception, match="sha256"):
        engine.activate("affine", "2")
    assert engine.loaded("affine").version == "1"


def test_web_workers_share_the_cores_between_their_model_runs(repo, tmp_path, monkeypatch):
    """inference.intra_op_threads = 0: each of N workers gets cores/N threads (at least 1), one process
    all of them (ONNX Runtime's default); a configured number always wins. The session really uses it."""
    from appliance.inference import engine as engine_mod

    monkeypatch.setattr(engine_mod.os, "sched_getaffinity", lambda _pid: set(range(4)))
    assert engine_mod.intra_op_threads(0, 1) == 0
    assert engine_mod.intra_op_threads(0, 2) == 2
    assert engine_mod.intra_op_threads(0, 8) == 1
    assert engine_mod.intra_op_threads(3, 2) == 3

    write_version(repo, "affine", "1", affine_model(1.0))
    e = InferenceEngine(Settings(), repo, tmp_path / "cache", processes=2).start()
    try:
        (status,) = e.models_status()
        assert status["intra_op_threads"] == 2
        session = e.loaded("affine").backend._session
        assert session.get_session_options().intra_op_num_threads == 2
    finally:
        e.close()


def test_a_version_that_fails_to_load_is_reported_once_with_the_page_fields_as_unknown(repo, make_engine):
    """The admin page read "lookup: version 1: model lookup version 1: model.onnx does not match ...",
    and "– / – /" in the batch column of a model that is not loaded."""
    d = write_version(repo, "affine", "1", affine_model(1.0))
    (d / "model.onnx").write_bytes(b"altered")
    engine = make_engine(models=["affine"])
    (entry,) = engine.models_status()
    assert entry["error"] == "model affine version 1: model.onnx does not match its sha256 (damaged or altered)"
    assert entry["ready"] is False and entry["max_batch_size"] is None and entry["active_providers"] == []
    assert entry["failed_version"] == "1"  # the admin page does not offer to serve it again
    assert engine.status().detail == f"affine: {entry['error']}"


def _wait(condition, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_version_that_failed_is_tried_again_once_repaired_and_its_error_goes(repo, make_engine):
    """Found in review: the failure was remembered by model.json's mtime alone, so a restored model.onnx
    and `models activate` again were never tried until a restart; and with ACTIVE back on the version
    that serves, the old error stayed on the status."""
    write_version(repo, "affine", "1", affine_model(1.0))
    good = affine_model(2.0)
    d = write_version(repo, "affine", "2", good)
    Repository(repo).set_active("affine", "1")
    (d / "model.onnx").write_bytes(b"damaged")
    engine = make_engine(watch_interval_s=0.05)
    Repository(repo).set_active("affine", "2")
    _wait(lambda: "version 2" in engine.status().detail, "the failure reported")
    assert engine.loaded("affine").version == "1"
    (d / "model.onnx").write_bytes(good)  # the admin restores the file and activates again
    Repository(repo).set_active("affine", "2")
    _wait(lambda: engine.loaded("affine").version == "2", "version 2 loaded once repaired")
    assert np.all(y_of(engine) == 4.0) and engine.status().state == "ok"
    # A failure, then ACTIVE back on the version that serves: the failure is no longer news.
    (repo / "affine" / "ACTIVE").write_text("1\n")
    _wait(lambda: engine.loaded("affine").version == "1", "back on version 1")
    (d / "model.onnx").write_bytes(b"damaged again")
    (repo / "affine" / "ACTIVE").write_text("2\n")
    _wait(lambda: "version 2" in engine.status().detail, "the second failure reported")
    (repo / "affine" / "ACTIVE").write_text("1\n")
    _wait(lambda: engine.status().state == "ok", "the error cleared")


def test_a_repository_entry_that_cannot_be_read_stops_only_its_model(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "lookup", "1", lookup_model())
    (repo / "lookup" / "ACTIVE").mkdir()  # an ACTIVE that is a folder: reading it raises IsADirectoryError
    engine = make_engine(models=["affine", "lookup"])
    assert np.all(y_of(engine) == 3.0)
    assert "lookup" in engine.status().detail


def test_an_input_longer_than_model_json_s_max_shape_is_refused_by_name(repo, make_engine):
    """MiniLM's position table ends at 512 tokens; past it the client read ONNX Runtime's broadcast
    error. model.json's max_shape says the limit, and the engine names it."""
    from inference_models import seqsum_model

    from appliance.inference.tensors import TensorSpec

    ids = [{"name": n, "datatype": "INT64", "shape": [-1, -1], "max_shape": [-1, 8]} for n in ("input_ids", "attention_mask")]
    write_version(repo, "seq", "1", seqsum_model(), inputs=ids)
    write_version(repo, "bad", "1", seqsum_model(), inputs=[{**ids[0], "max_shape": "long"}, ids[1]])
    engine = make_engine()
    ok = {k: np.ones((2, 8), np.int64) for k in ("input_ids", "attention_mask")}
    assert engine.infer("seq", ok)["total"].tolist() == [8, 8]
    with pytest.raises(BadRequest, match=r"'input_ids' takes at most 8 along axis 1, got 9"):
        engine.infer("seq", {k: np.ones((1, 9), np.int64) for k in ("input_ids", "attention_mask")})
    with pytest.raises(BadRequest, match="max_shape"):
        TensorSpec.from_json({"name": "x", "datatype": "INT64", "shape": [-1, -1], "max_shape": [8]}, "model.json")
    bad = {m["name"]: m for m in engine.models_status()}["bad"]
    assert not bad["ready"] and "max_shape" in bad["error"]
