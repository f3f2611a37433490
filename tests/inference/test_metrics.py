"""Prometheus exposition: request counts by outcome, batch sizes, queue time, latency per model, the
loaded version; and the admin summary's percentiles and batch sizes."""
from __future__ import annotations

import os
import re
import threading

import numpy as np
import pytest
from inference_models import affine_model, write_version
from prometheus_client.parser import text_string_to_metric_families

from appliance.errors import AppError, BadRequest


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_content(repo, make_engine):
    write_version(repo, "affine", "3", affine_model(3.0))
    engine = make_engine()
    for _ in range(5):
        engine.infer("affine", {"x": np.ones((2, 4), np.float32)})
    with pytest.raises(BadRequest):
        engine.infer("affine", {"x": np.ones((2, 5), np.float32)})
    text = engine.metrics.exposition()[0].decode()
    s = samples(text)
    assert s[("ce_inference_requests_total", (("model", "affine"), ("outcome", "success")))] == 5
    assert s[("ce_inference_requests_total", (("model", "affine"), ("outcome", "client_error")))] == 1
    assert s[("ce_inference_request_duration_seconds_count", (("model", "affine"),))] == 5
    assert s[("ce_inference_batch_size_count", (("model", "affine"),))] == 5
    assert s[("ce_inference_batch_size_sum", (("model", "affine"),))] == 10  # five batches of two rows
    assert s[("ce_inference_batch_size_bucket", (("le", "1.0"), ("model", "affine")))] == 0
    assert s[("ce_inference_batch_size_bucket", (("le", "2.0"), ("model", "affine")))] == 5
    assert s[("ce_inference_queue_duration_seconds_count", (("model", "affine"),))] == 5
    assert s[("ce_inference_compute_duration_seconds_count", (("model", "affine"),))] == 5
    info = [k for k in s if k[0] == "ce_inference_model_info"]
    assert dict(info[0][1]) == {"model": "affine", "version": "3", "backend": "onnxruntime", "providers": "CPUExecutionProvider"}
    assert s[("ce_inference_model_ready", (("model", "affine"),))] == 1
    assert s[("ce_inference_provider_fallback", (("model", "affine"),))] == 0


def test_unknown_model_names_do_not_create_series(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine()
    for i in range(20):
        with pytest.raises(BadRequest):
            engine.infer(f"junk{i}", {})
    assert "junk" not in engine.metrics.exposition()[0].decode()


def test_admin_summary_counts_batches_and_latency(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine()
    threads = [threading.Thread(target=lambda: [engine.infer("affine", {"x": np.ones((1, 4), np.float32)}) for _ in range(50)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (m,) = engine.models_status()
    assert m["requests"] == 200 and m["errors"] == 0
    assert 0 < m["p50_ms"] <= m["p99_ms"]
    assert 1 <= m["mean_batch_rows"] <= m["max_batch_rows"] <= 4
    assert m["batches"] <= 200


def test_background_runs_are_counted_but_kept_out_of_the_admin_latencies(repo, make_engine):
    """Indexing a course is one long run nobody waits for: on the admin page it would make a model that
    answers students in milliseconds look a second slow."""
    from appliance.inference.metrics import InferenceMetrics

    metrics = InferenceMetrics()
    for _ in range(99):
        metrics.record_request("minilm", 0.004, "success")
    metrics.record_request("minilm", 1.7, "success", background=True)
    summary = metrics.summary("minilm")
    assert summary["requests"] == 99 and summary["background_runs"] == 1
    assert summary["p50_ms"] == summary["p99_ms"] == 4.0
    s = samples(metrics.exposition()[0].decode())  # /metrics still times all the work done
    assert s[("ce_inference_request_duration_seconds_count", (("model", "minilm"),))] == 100
    assert s[("ce_inference_requests_total", (("model", "minilm"), ("outcome", "success")))] == 100
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine()
    engine.run("affine", {"x": np.ones((64, 4), np.float32)}, background=True)
    engine.infer("affine", {"x": np.ones((1, 4), np.float32)})
    (m,) = engine.models_status()
    assert m["requests"] == 1 and m["background_runs"] == 1


def test_metrics_endpoint_over_http(tmp_path, repo):
    from appliance.config import load_config
    from appliance.inference.engine import attach
    from appliance.services import Services
    from appliance.web.app import create_app

    write_version(repo, "affine", "1", affine_model(1.0))
    env = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp_path / "d"), "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "false",
           "CLASSROOM_EDGE_INFERENCE__REPOSITORY": str(repo), "CLASSROOM_EDGE_INFERENCE__WATCH_INTERVAL_S": "0",
           "CLASSROOM_EDGE_INFERENCE__MODELS": ""}
    services = Services.open(load_config(env=env))
    try:
        attach(services)
        client = create_app(services).test_client()
        body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]}
        assert client.post("/v2/models/affine/infer", json=body).status_code == 200
        r = client.get("/metrics")
        assert r.status_code == 200 and r.content_type.startswith("text/plain")
        assert re.search(r'ce_inference_requests_total\{model="affine",outcome="success"\} 1\.0', r.get_data(as_text=True))
        health = client.get("/api/v1/health").get_json()
        (part,) = [p for p in health["parts"] if p["name"] == "inference"]
        assert part["state"] == "ok" and part["models"][0]["version"] == "1"
    finally:
        services.close()


def test_multiprocess_mode_sums_every_worker(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set (as the web service may), /metrics adds up all workers."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from appliance.inference.metrics import InferenceMetrics\n"
        "m = InferenceMetrics()\n"
        "for _ in range(int(sys.argv[1])): m.record_request('learner', 0.002, 'success')\n"
        "sys.stdout.write(m.exposition()[0].decode())\n"
    )
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for n in ("3", "4"):  # two "workers"
        subprocess.run([sys.executable, "-c", code, n], env=env, check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-c", code, "0"], env=env, check=True, capture_output=True, text=True).stdout
    s = samples(out)
    assert s[("ce_inference_requests_total", (("model", "learner"), ("outcome", "success")))] == 7
    assert s[("ce_inference_request_duration_seconds_count", (("model", "learner"),))] == 7


def test_bulk_observe_matches_one_by_one():
    """observe_many writes prometheus_client's histogram internals; it must expose exactly what
    observing each value would (this fails if a prometheus_client upgrade changes them)."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from appliance.inference.metrics import LATENCY_BUCKETS, observe_many

    values = [0.0, 0.0005, 0.0007, 0.003, 0.003, 0.04, 1.0, 9.0, 42.0, 0.00049]
    texts = []
    for bulk in (False, True):
        registry = CollectorRegistry()
        child = Histogram("h", "h", ["m"], buckets=LATENCY_BUCKETS, registry=registry).labels("a")
        if bulk:
            observe_many(child, values[:4])
            observe_many(child, values[4:])
            observe_many(child, [])
        else:
            for v in values:
                child.observe(v)
        texts.append(samples(generate_latest(registry).decode()))
    texts[0].pop(("h_created", (("m", "a"),)), None)
    texts[1].pop(("h_created", (("m", "a"),)), None)
    assert texts[0] == pytest.approx(texts[1])  # the sum is added in another order


def test_recording_is_buffered_until_a_flush_or_a_scrape(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine()
    engine.metrics.close()  # stops the once-a-second timer, so only this test decides when to flush
    for _ in range(3):
        engine.infer("affine", {"x": np.ones((1, 4), np.float32)})
    counter = engine.metrics._counter("affine", "success")
    assert counter._value.get() == 0  # still in the buffer: the request paid one append
    assert engine.models_status()[0]["requests"] == 3  # the admin summary flushes first
    assert counter._value.get() == 3
    engine.infer("affine", {"x": np.ones((1, 4), np.float32)})
    assert samples(engine.metrics.exposition()[0].decode())[
        ("ce_inference_requests_total", (("model", "affine"), ("outcome", "success")))] == 4


def test_the_flusher_publishes_to_other_workers_within_its_period(tmp_path):
    """Another worker answering the scrape sees this worker's counts without this one being asked."""
    import os
    import subprocess
    import sys

    code = (
        "import sys, time\n"
        "from appliance.inference.metrics import InferenceMetrics\n"
        "m = InferenceMetrics()\n"
        "m.start(every_s=0.05)\n"
        "for _ in range(5): m.record_request('learner', 0.002, 'success')\n"
        "m.record_request('learner', 0.002, 'client_error')\n"
        "time.sleep(1.0)\n"
        "import os; os._exit(0)\n"  # no close(), no flush at exit: only the timer can have written
    )
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, timeout=60)
    reader = "from appliance.inference.metrics import InferenceMetrics\nimport sys\nsys.stdout.write(InferenceMetrics().exposition()[0].decode())\n"
    out = subprocess.run([sys.executable, "-c", reader], env=env, check=True, capture_output=True, text=True, timeout=60).stdout
    s = samples(out)
    assert s[("ce_inference_requests_total", (("model", "learner"), ("outcome", "success")))] == 5
    assert s[("ce_inference_requests_total", (("model", "learner"), ("outcome", "client_error")))] == 1
    assert s[("ce_inference_request_duration_seconds_count", (("model", "learner"),))] == 5


def _worker_metrics(share_dir):
    from appliance.inference.metrics import InferenceMetrics

    return InferenceMetrics(share_dir=share_dir)


def test_admin_figures_add_up_every_worker_that_shares_them(tmp_path, monkeypatch):
    """Two web workers (two metrics objects sharing a directory, as two processes would): each one's
    admin summary counts both, and its percentiles come from both workers' latencies."""
    from appliance.inference import metrics as m

    monkeypatch.setattr(m, "SHARE_EVERY_S", 0.0)
    a, b = _worker_metrics(tmp_path), _worker_metrics(tmp_path)
    for _ in range(30):
        a.record_request("learner", 0.001, "success")
    for _ in range(10):
        b.record_request("learner", 0.009, "success")
    b.record_request("learner", 0.5, "failure")
    a.flush()
    b.flush()
    sa, sb = a.summary("learner"), b.summary("learner")
    for s in (sa, sb):
        assert s["requests"] == 41 and s["errors"] == 1 and s["workers"] == 2
        assert s["p50_ms"] == pytest.approx(1.0) and s["p99_ms"] == pytest.approx(9.0)
    # A worker that has served nothing yet is counted too: its first flush shares empty figures.
    idle = _worker_metrics(tmp_path)
    idle.flush()
    assert a.summary("learner")["workers"] == 3 and a.summary("learner")["requests"] == 41
    # Without the shared directory a worker only knows itself.
    alone = _worker_metrics(None)
    alone.record_request("learner", 0.001, "success")
    assert alone.summary("learner")["requests"] == 1 and alone.summary("learner")["workers"] == 1


def test_a_gone_workers_counts_stay_without_its_latencies_and_writes_are_paced(tmp_path, monkeypatch):
    import json
    import subprocess

    from appliance.inference import metrics as m

    figures = json.dumps({"learner": {"requests": 99, "errors": 0, "latency_s": [1.0], "batches": {}}})
    gone_pid = subprocess.Popen(["true"])  # a pid that has certainly exited (a worker killed by the OOM killer)
    gone_pid.wait()
    gone = tmp_path / f"{gone_pid.pid}-12345-deadbeef.json"  # named as a worker names its file
    gone.write_text(figures)
    reused = tmp_path / f"{os.getpid()}-1-cafe.json"  # a live pid, but not the process that started then
    reused.write_text(figures)
    live = tmp_path / f"{os.getpid()}-{m._started(os.getpid())}-f00d.json"  # this very process: kept
    live.write_text(figures)
    a = _worker_metrics(tmp_path)
    a.record_request("learner", 0.002, "success")
    summary = a.summary("learner")
    # The gone workers' counts stay (as Prometheus' counters do), their 1-second latencies do not.
    assert summary["requests"] == 1 + 3 * 99 and summary["workers"] == 2 and summary["p99_ms"] < 1000
    assert not gone.exists() and not reused.exists() and live.exists()
    assert json.loads((tmp_path / "retired.json").read_text())["learner"]["requests"] == 2 * 99  # one file for all
    assert a.summary("learner")["requests"] == 1 + 3 * 99  # counted once, however often it is read
    live.unlink()
    (tmp_path / "retired.json").unlink()
    # At most one write a second: a second flush right after the first leaves the file as it was...
    own = tmp_path / a._shared.name
    first = json.loads(own.read_text())
    a.record_request("learner", 0.002, "success")
    a.flush()
    assert json.loads(own.read_text()) == first
    # ...and the next flush once the second is over writes what was held back.
    monkeypatch.setattr(m, "SHARE_EVERY_S", 0.0)
    a.flush()
    assert json.loads(own.read_text())["learner"]["requests"] == 2


def test_a_reused_pid_does_not_pass_for_a_gone_worker_and_a_stopped_one_leaves_its_counts(tmp_path):
    import json
    import os

    figures = json.dumps({"learner": {"requests": 7, "errors": 0, "latency_s": [0.001], "batches": {}}})
    reused = tmp_path / f"{os.getpid()}-1-feedface.json"  # a live pid, but not started at tick 1
    reused.write_text(figures)
    a = _worker_metrics(tmp_path)
    a.record_request("learner", 0.002, "success")
    assert a.summary("learner")["requests"] == 1 + 7 and not reused.exists()
    own = tmp_path / a._shared.name
    assert own.exists() and own.name.split("-")[1].isdigit()  # pid-starttime-token.json
    a.close()
    assert not own.exists()
    # The worker gunicorn starts in its place: the admin page's count does not go back.
    b = _worker_metrics(tmp_path)
    b.record_request("learner", 0.002, "success")
    summary = b.summary("learner")
    assert summary["requests"] == 1 + 7 + 1 and summary["workers"] == 1
    # A flush after stopping writes no file of its own again (it would count the stopped worker twice).
    a.record_request("learner", 0.002, "success")
    a.flush()
    assert not own.exists() and b.summary("learner")["requests"] == 1 + 7 + 1


def test_refusals_before_any_version_answered_are_the_served_versions_too(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine()
    engine.infer("affine", {"x": np.ones((1, 4), np.float32)})
    with pytest.raises(AppError):
        engine.run("affine", {"x": np.ones((1, 4), np.float32)}, version="9")  # no such version
    (m,) = engine.models_status()
    assert m["requests"] == 2 and m["errors"] == 1, m


def test_the_admin_figures_are_the_served_versions_own(repo, make_engine):
    """After a rollback, the page shows the version now served with its own latencies, not a mix
    with the slow version it replaced."""
    from appliance.inference.metrics import InferenceMetrics

    metrics = InferenceMetrics()
    for _ in range(50):
        metrics.record_request("learner", 0.050, "success", version="2")
    for _ in range(30):
        metrics.record_request("learner", 0.0001, "success", version="1")
    one, two = metrics.summary("learner", "1"), metrics.summary("learner", "2")
    assert one["requests"] == 30 and one["p99_ms"] == pytest.approx(0.1)
    assert two["requests"] == 50 and two["p50_ms"] == pytest.approx(50.0)
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "affine", "2", affine_model(2.0))
    engine = make_engine()
    served = engine.loaded("affine").version
    for _ in range(3):
        engine.infer("affine", {"x": np.ones((1, 4), np.float32)})
    (m,) = engine.models_status()
    assert m["version"] == served and m["requests"] == 3


def test_a_model_that_is_not_loaded_shows_its_refusals_not_the_figures_of_versions_it_served(repo, make_engine):
    """A model this worker does not serve (its files went bad) showed latencies pooled over every version
    any worker had served, under "not loaded"; it shows what it refused."""
    d = write_version(repo, "affine", "1", affine_model(1.0))
    (d / "model.onnx").write_bytes(b"damaged")               # the manifest's sha256 no longer matches
    engine = make_engine(models=["affine"])
    for _ in range(20):                                       # what version 1 answered (another worker)
        engine.metrics.record_request("affine", 0.050, "success", version="1")
    with pytest.raises(AppError):
        engine.infer("affine", {"x": np.ones((1, 4), np.float32)})
    (m,) = engine.models_status()
    assert m["ready"] is False and m["requests"] == 1 and m["errors"] == 1, m
    assert m["p50_ms"] != pytest.approx(50.0)
    assert engine.metrics.summary("affine")["requests"] == 21  # the pooled view is still there for who asks


def test_background_work_is_not_counted_among_the_students_batches(repo, make_engine):
    write_version(repo, "affine", "1", affine_model(1.0))
    engine = make_engine()
    engine.run("affine", {"x": np.ones((16, 4), np.float32)}, background=True)  # indexing a course
    engine.infer("affine", {"x": np.ones((1, 4), np.float32)})
    (m,) = engine.models_status()
    assert m["background_runs"] == 1 and m["max_batch_rows"] == 1, m


def test_workers_stopping_while_the_page_reads_never_make_the_count_jump_or_go_back(tmp_path, monkeypatch):
    """Eight short-lived worker processes each serve 10 requests and stop (their counts fold into
    retired.json), while this one reads the admin figures over and over."""
    import subprocess
    import sys

    from appliance.inference import metrics as m

    monkeypatch.setattr(m, "SHARE_EVERY_S", 0.0)
    code = (
        "import sys\n"
        "from appliance.inference import metrics as m\n"
        "m.SHARE_EVERY_S = 0.0\n"
        "w = m.InferenceMetrics(share_dir=sys.argv[1])\n"
        "for _ in range(10): w.record_request('learner', 0.002, 'success')\n"
        "w.flush()\n"
        "w.close()\n"
    )
    reader = _worker_metrics(tmp_path)
    workers = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)]) for _ in range(8)]
    seen = []
    while any(w.poll() is None for w in workers):
        seen.append(reader.summary("learner")["requests"])
    assert all(w.returncode == 0 for w in workers)
    seen.append(reader.summary("learner")["requests"])
    assert seen[-1] == 80 and all(x <= 80 for x in seen) and seen == sorted(seen), seen
    assert {p.name for p in tmp_path.glob("*.json")} == {"retired.json", reader._shared.name}
