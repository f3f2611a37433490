"""Inference over HTTP vs the web stack's own ceiling vs raw ONNX Runtime, in one run (JSON).

    python -m bench.inference [--quick] [--repo DIR] [--duration S]

- Learner model over ``POST /v2/models/learner/infer`` at 1, 40 and 200 concurrent connections:
  throughput and p50/p99, each run right after the same server's cheapest endpoint
  (``GET /v2/health/live``, the stack's ceiling) at the same concurrency, and raw in-process ONNX
  Runtime (one row per call, as a request carries). Target: learner >= 80% of the ceiling.
  ``bench.learner_breakdown`` splits the difference into its steps.
- Sentence embeddings (int8 MiniLM) over HTTP at 40 connections, one tokenized student answer per
  request, dynamic batching in the server, vs raw ONNX Runtime at batch 32 on the same sentences.
  Targets: >= 70% of raw throughput, p99 <= 100 ms.
- RSS of each web worker with both int8 models loaded, after the load. Target: <= 200 MB.
- The same Flask app called in process as a WSGI function (no sockets, no gunicorn), 1 and 16
  threads: CPU per request for the ceiling and the learner, the handlers' own cost without the noise;
  and a bench-only POST route that reads the same body and sends the same answer bytes, running nothing.

The real server (``classroom-edge web``: gunicorn, threaded workers, the configured worker count) runs
on 127.0.0.1 and an ephemeral port with the real default models, built into a temporary repository
first (or taken from ``--repo``). Load comes from wrk (Debian), bounded by duration and connections.
The load generator shares the machine's cores with the server (as it does for the ceiling run too).

Throughput ratios are the figures asked for. Because this machine is shared (other jobs come and go),
each comparison is interleaved and repeated (median reported), and a contention-proof companion is
printed next to it: the server's CPU time per request (from /proc, every worker thread included)
for the ceiling vs the model, and per sentence for raw ONNX Runtime vs HTTP (``cpu_ratio``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from bench.common import emit, rss_mb, server, wrk

DATA = Path(__file__).resolve().parent / "data" / "fractions_graded_answers.json"
TARGETS = {"learner_vs_ceiling": 0.80, "embeddings_vs_raw": 0.70, "embeddings_p99_ms": 100.0, "rss_mb": 200.0}
LEVELS = (1, 40, 200)


def _lua_post(bodies: list[tuple[bytes, dict]], workdir: Path) -> str:
    """A wrk script that POSTs the given bodies in turn, each with its own headers. Bodies are read
    from files (binary tensors would not survive a Lua string literal)."""
    workdir.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, (data, headers) in enumerate(bodies):
        path = workdir / f"body{i}.bin"
        path.write_bytes(data)
        hdrs = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
        entries.append(f'{{"{path}", {{{hdrs}}}}}')
    return f"""
local specs = {{ {", ".join(entries)} }}
local requests = {{}}
init = function(args)
  for i, spec in ipairs(specs) do
    local f = assert(io.open(spec[1], "rb"))
    requests[i] = wrk.format("POST", nil, spec[2], f:read("*a"))
    f:close()
  end
end
local i = 0
request = function()
  i = i % #requests + 1
  return requests[i]
end
"""


def _json_body(tensors: list[tuple[str, str, np.ndarray]]) -> tuple[bytes, dict]:
    body = {"inputs": [{"name": n, "datatype": dt, "shape": list(a.shape), "data": a.reshape(-1).tolist()}
                       for n, dt, a in tensors]}
    return json.dumps(body, separators=(",", ":")).encode(), {"Content-Type": "application/json"}


def _binary_body(tensors: list[tuple[str, str, np.ndarray]]) -> tuple[bytes, dict]:
    """What tritonclient sends by default: JSON head, raw little-endian tensors, binary outputs."""
    head = {"inputs": [{"name": n, "datatype": dt, "shape": list(a.shape), "parameters": {"binary_data_size": a.nbytes}}
                       for n, dt, a in tensors], "parameters": {"binary_data_output": True}}
    js = json.dumps(head, separators=(",", ":")).encode()
    return js + b"".join(a.tobytes() for _, _, a in tensors), {
        "Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(js))}


def _learner_rows(meta: dict, n: int) -> np.ndarray:
    """Feature rows of simulated students, built the way the LMS builds them."""
    from appliance.learning.features import FeatureSpec, LearnerState

    spec = FeatureSpec.from_dict(meta["learner_feature_spec"])
    rng = np.random.default_rng(7)
    rows, now = [], time.time()
    for s in range(n):
        state = LearnerState()
        for k in range(int(rng.integers(0, 40))):
            skill = f"skill-{int(rng.integers(0, 12))}"
            state.observe(f"item-{int(rng.integers(0, 300))}", [skill], bool(rng.random() < 0.6), now - 86400 * k)
        rows.append(spec.encode(state, f"item-{s}", [f"skill-{s % 12}"], now))
    return np.stack(rows).astype(np.float32)


def _sentences() -> list[str]:
    data = json.loads(DATA.read_text(encoding="utf-8"))
    out = []
    for q in data["questions"]:
        out += q["refs"] + [a for a, _ in q["answers"]]
    return out


def _raw_session(model_path: Path):
    """A plain ONNX Runtime session with the server's default session options (no spinning, no
    arena) but every core for its one process, so "raw" is the most this machine does in-process,
    whatever the web workers' thread split is."""
    import onnxruntime as ort

    from appliance.config import load_config
    from appliance.inference.backends.onnxruntime import OnnxRuntimeBackend

    options = OnnxRuntimeBackend._session_options(load_config(env={}).inference)
    options.intra_op_num_threads = len(os.sched_getaffinity(0))  # the cores the engine shares out
    return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])


def _raw_learner(model_path: Path, rows: np.ndarray, seconds: float) -> dict:
    sess = _raw_session(model_path)
    name = sess.get_inputs()[0].name
    for r in rows[:10]:
        sess.run(None, {name: r[None, :]})
    times, i = [], 0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        sess.run(None, {name: rows[i % len(rows)][None, :]})
        times.append(time.perf_counter() - t0)
        i += 1
    lat = np.array(times)
    return {"calls_per_s": round(len(lat) / float(lat.sum()), 1), "p50_ms": round(float(np.percentile(lat, 50)) * 1e3, 3),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1e3, 3), "rows_per_call": 1,
            "cold_caches": _cold_run_us(sess, name, rows, model_path)}


def _cold_run_us(sess, name: str, rows: np.ndarray, model_path: Path, runs: int = 150) -> dict:
    """Median µs of one learner run in a hot loop and right after a 64 MB sweep has evicted the
    caches, for ONNX Runtime and for the same arithmetic in numpy. Under load on two shared cores,
    the other requests between two inferences do what the sweep does: this is why each step of an
    inference costs several times its hot-loop figure there (docs/inference.md)."""
    import onnx
    from onnx import numpy_helper

    params = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model_path)).graph.initializer}
    weights, bias = params["W"], params["b"]
    sweep = np.ones(64 * 1024 * 1024 // 8)
    fns = {"onnxruntime": lambda r: sess.run(None, {name: r}),
           "numpy": lambda r: 1.0 / (1.0 + np.exp(-(r @ weights + bias)))}
    out = {}
    for label, fn in fns.items():
        hot, cold = [], []
        for i in range(runs):
            r = rows[i % len(rows)][None, :]
            t0 = time.perf_counter()
            fn(r)
            hot.append(time.perf_counter() - t0)
        for i in range(runs):
            r = rows[i % len(rows)][None, :]
            sweep += 1.0
            t0 = time.perf_counter()
            fn(r)
            cold.append(time.perf_counter() - t0)
        out[label] = {"hot_p50_us": round(float(np.median(hot)) * 1e6, 1), "cold_p50_us": round(float(np.median(cold)) * 1e6, 1)}
    return out


def _raw_embeddings(version_dir: Path, sentences: list[str], seconds: float) -> dict:
    from appliance.inference.builders.tokenizer import SentenceTokenizer

    tok = SentenceTokenizer(version_dir / "tokenizer.json")
    sess = _raw_session(version_dir / "model.onnx")
    batches = [tok([sentences[(i + k) % len(sentences)] for k in range(32)]) for i in range(0, len(sentences), 32)]
    for b in batches[:2]:
        sess.run(None, b)
    n, spent, i = 0, 0.0, 0
    cpu0 = time.process_time()  # every thread of this process, ONNX Runtime's pool included
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        b = batches[i % len(batches)]
        t0 = time.perf_counter()
        sess.run(None, b)
        spent += time.perf_counter() - t0
        n += 32
        i += 1
    cpu = time.process_time() - cpu0
    return {"sentences_per_s": round(n / spent, 1), "batch": 32, "runs": i,
            "cpu_us_per_sentence": round(cpu / n * 1e6, 1)}


def _embedding_bodies(version_dir: Path, sentences: list[str]) -> list[tuple[bytes, dict]]:
    """One tokenized answer per request, as the grading code would send it (binary tensors)."""
    from appliance.inference.builders.tokenizer import SentenceTokenizer

    tok = SentenceTokenizer(version_dir / "tokenizer.json")
    bodies = []
    for text in sentences:
        enc = tok([text])
        bodies.append(_binary_body([(k, "INT64", enc[k]) for k in ("input_ids", "attention_mask")]))
    return bodies


def _batch_stats(base: str) -> dict:
    """Mean rows per batch from /metrics (of the worker that answers the scrape)."""
    try:
        text = urllib.request.urlopen(base + "/metrics", timeout=30).read().decode()
    except OSError as exc:
        return {"error": f"/metrics did not answer: {exc}"}
    out = {}
    for model in ("learner", "minilm"):
        s = re.search(rf'ce_inference_batch_size_sum{{model="{model}"}} ([0-9.e+]+)', text)
        c = re.search(rf'ce_inference_batch_size_count{{model="{model}"}} ([0-9.e+]+)', text)
        if s and c and float(c.group(1)):
            out[model] = {"batches": int(float(c.group(1))), "mean_rows": round(float(s.group(1)) / float(c.group(1)), 2)}
    return out


def _cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds used so far by these processes (all their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _server_pids(proc) -> list[int]:
    import subprocess

    kids = subprocess.run(["pgrep", "-P", str(proc.pid)], check=False, capture_output=True, text=True).stdout.split()
    return [proc.pid, *(int(k) for k in kids)]


def _load(url: str, connections: int, seconds: int, pids: list[int], lua: str = "") -> dict:
    """One wrk run plus the server's CPU per request. This machine is shared: a run in which the
    server answered nothing at all (the whole box stalled) is repeated once and marked."""
    threads = 1 if connections == 1 else 2

    def once():
        c0 = _cpu_s(pids)
        run = wrk(url, connections=connections, duration_s=seconds, threads=threads, lua=lua)
        run["server_cpu_us_per_request"] = round((_cpu_s(pids) - c0) / max(run["requests"], 1) * 1e6, 1)
        return run

    run = once()
    if run["requests"] == 0:
        run = {**once(), "repeated_after_stall": True}
    return run


def _import_cost_mb(modules: str) -> float:
    """RSS a fresh interpreter gains by importing ``modules`` (context for the worker's RSS)."""
    import subprocess
    import sys

    code = ("import os\n"
            "def rss():\n"
            "    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) / 1024\n"
            f"a = rss()\nimport {modules}\nprint(rss() - a)")
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    return round(float(out.stdout.strip() or "nan"), 1)


def _maps_mention(pid: int, needle: str) -> bool:
    try:
        return needle in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


SAME_ANSWER_ROUTE = "/bench/post-same-answer"


def _add_same_answer_route(app, services) -> None:
    """A bench-only route on the in-process app: POST with a variable, reads the learner's body and
    sends the learner's answer bytes without decoding or running anything. Next to the probe it is
    what Flask's routing, POST handling and answer cost; next to the learner, what the steps cost."""
    import json

    from appliance.inference import http as oip
    from appliance.web.security import csrf_exempt, requires

    engine = services.get("inference")
    loaded = engine.loaded("learner")
    out = np.zeros((1, 1), dtype=np.float32)
    head = json.dumps({"model_name": "learner", "model_version": loaded.version,
                       "outputs": [oip.encode_binary_tensor(loaded.backend.outputs[0].name, out)[0]]},
                      separators=(",", ":")).encode()

    def same_answer(name: str):
        oip._request_body(oip.max_body_bytes(engine.settings.max_request_elements))  # as the real route reads it
        return oip._octets(head, out.tobytes())

    app.add_url_rule(f"{SAME_ANSWER_ROUTE}/<name>/infer", "bench_post_same_answer",
                     csrf_exempt(requires("anonymous")(same_answer)), methods=["POST"])


def _in_process_cost(data_dir: Path, body: bytes, head_len: int, calls: int) -> dict:
    """CPU per request of the same Flask app called directly as a WSGI function (no sockets, no
    gunicorn), for the ceiling and the learner: what the handlers themselves cost, without the noise
    of a shared machine. With one thread and with 16 (gunicorn's default per worker), because under
    contention a request that releases the GIL (ONNX Runtime does, around every run) pays to get it
    back. The web worker's environment: its thread share, Prometheus' multiprocess files."""
    import io
    import sys
    import threading

    from appliance.bootstrap import attach_components
    from appliance.config import load_config
    from appliance.services import Services
    from appliance.web.app import create_app

    prom = data_dir / "prometheus-in-process"
    prom.mkdir(exist_ok=True)
    saved = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(prom)
    env = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(data_dir), "CLASSROOM_EDGE_INFERENCE__MODELS": "learner",
           "CLASSROOM_EDGE_LOGGING__LEVEL": "WARNING", "CLASSROOM_EDGE_INFERENCE__WATCH_INTERVAL_S": "0"}
    services = Services.open(load_config(env=env), migrate=False)
    services.serving_processes = 2
    try:
        attach_components(services)
        app = create_app(services)
        _add_same_answer_route(app, services)

        def call(method: str, path: str, payload: bytes = b"", extra: dict | None = None) -> None:
            environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
                       "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                       "wsgi.input": io.BytesIO(payload), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
                       "wsgi.multiprocess": True, "wsgi.run_once": False, "HTTP_HOST": "127.0.0.1",
                       "REMOTE_ADDR": "127.0.0.1", **(extra or {})}
            status = []
            out = app(environ, lambda s, h, e=None: status.append(s))
            b"".join(out)
            if not status[0].startswith("200"):
                raise RuntimeError(f"{method} {path}: {status[0]}")

        infer_env = {"CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/octet-stream",
                     "HTTP_INFERENCE_HEADER_CONTENT_LENGTH": str(head_len)}
        kinds = {"ceiling_live": lambda: call("GET", "/v2/health/live"),
                 "post_same_answer": lambda: call("POST", f"{SAME_ANSWER_ROUTE}/learner/infer", body, infer_env),
                 "learner_binary": lambda: call("POST", "/v2/models/learner/infer", body, infer_env)}

        def cpu_us(fn, threads: int) -> float:
            each = max(1, calls // threads)
            workers = [threading.Thread(target=lambda: [fn() for _ in range(each)]) for _ in range(threads)]
            c0 = time.process_time()
            for t in workers:
                t.start()
            for t in workers:
                t.join()
            return (time.process_time() - c0) / (each * threads) * 1e6

        for fn in kinds.values():
            for _ in range(200):
                fn()
        out = {}
        for threads in (1, 16):
            per = {k: [] for k in kinds}
            for _ in range(3):  # interleaved rounds, median
                for k, fn in kinds.items():
                    per[k].append(cpu_us(fn, threads))
            row = {f"{k}_cpu_us": round(float(np.median(v)), 1) for k, v in per.items()}
            row["learner_extra_cpu_us"] = round(row["learner_binary_cpu_us"] - row["ceiling_live_cpu_us"], 1)
            row["post_same_answer_extra_cpu_us"] = round(row["post_same_answer_cpu_us"] - row["ceiling_live_cpu_us"], 1)
            row["cpu_ratio"] = round(row["ceiling_live_cpu_us"] / row["learner_binary_cpu_us"], 3)
            out[f"threads_{threads}"] = row
        return out
    finally:
        services.close()
        if saved is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved


def _median_run(runs: list[dict]) -> dict:
    """The run with the median throughput (its own latencies go with it), plus every round's rate."""
    ordered = sorted(runs, key=lambda r: r["requests_per_s"])
    return {**ordered[len(ordered) // 2], "rounds_requests_per_s": [r["requests_per_s"] for r in runs]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--repo", help="use the default models already built in this repository")
    ap.add_argument("--duration", type=int, help="seconds per load run (default 8, quick 2)")
    ap.add_argument("--rounds", type=int, help="alternating rounds per comparison, median reported (default 2, quick 1)")
    args = ap.parse_args(argv)
    seconds = int(args.duration or (2 if args.quick else 8))  # wrk takes whole seconds
    rounds = args.rounds or (1 if args.quick else 2)
    levels = (1, 40) if args.quick else LEVELS

    tmp = Path(tempfile.mkdtemp(prefix="ce-bench-inference-"))
    try:
        data_dir = tmp / "data"
        repo = data_dir / "models"
        t0 = time.monotonic()
        if args.repo:
            shutil.copytree(args.repo, repo, ignore=shutil.ignore_patterns("minilm-fp32"))
        else:
            from appliance.inference.builders import build_default_models

            build_default_models(repo, ("learner", "minilm"))
        build_s = time.monotonic() - t0

        from appliance.inference.repository import Repository

        r = Repository(repo)
        learner = r.version("learner", r.active_version("learner"))
        minilm = r.version("minilm", r.active_version("minilm"))
        rows = _learner_rows(learner.meta, 64)
        binary_bodies = [_binary_body([("features", "FP32", row[None, :])]) for row in rows]
        lua_learner = {
            "binary": _lua_post(binary_bodies, tmp / "lb"),
            "json": _lua_post([_json_body([("features", "FP32", row[None, :])]) for row in rows], tmp / "lj"),
        }
        sentences = _sentences()
        lua_emb = _lua_post(_embedding_bodies(minilm.path, sentences), tmp / "eb")

        env = {"CLASSROOM_EDGE_INFERENCE__MODELS": "learner,minilm", "CLASSROOM_EDGE_LOGGING__LEVEL": "WARNING"}
        load_before = os.getloadavg()
        with server("web", data_dir=str(data_dir), env=env) as (base, proc):
            live_url = base + "/v2/health/live"
            infer_url = base + "/v2/models/learner/infer"
            emb_url = base + "/v2/models/minilm/infer"
            # The first requests after start pay one-time costs in each worker; they are not timed.
            wrk(live_url, connections=4, duration_s=1, threads=2)
            wrk(infer_url, connections=4, duration_s=1, threads=2, lua=lua_learner["binary"])
            wrk(emb_url, connections=4, duration_s=1, threads=2, lua=lua_emb)
            rss_loaded = rss_mb(proc.pid, with_children=True)

            # Learner: ceiling and infer interleaved at each level, the sweep repeated `rounds` times.
            raw_runs: dict = {}
            pids = _server_pids(proc)
            for _ in range(rounds):
                for c in levels:
                    runs = raw_runs.setdefault(c, {"ceiling_live": [], "binary": [], "json": []})
                    runs["ceiling_live"].append(_load(live_url, c, seconds, pids))
                    runs["binary"].append(_load(infer_url, c, seconds, pids, lua_learner["binary"]))
                    if not args.quick or c == 40:
                        runs["json"].append(_load(infer_url, c, seconds, pids, lua_learner["json"]))
            learner_runs = []
            for c, runs in raw_runs.items():
                entry = {"connections": c, **{k: _median_run(v) for k, v in runs.items() if v}}
                ceiling = entry["ceiling_live"]["requests_per_s"]
                ceiling_cpu = entry["ceiling_live"]["server_cpu_us_per_request"]
                for kind in ("binary", "json"):
                    if kind in entry:
                        entry[f"ratio_{kind}"] = round(entry[kind]["requests_per_s"] / ceiling, 3)
                        # Contention-proof view of the same question: ceiling CPU / infer CPU per request.
                        entry[f"cpu_ratio_{kind}"] = round(ceiling_cpu / entry[kind]["server_cpu_us_per_request"], 3)
                learner_runs.append(entry)

            # Embeddings: raw ONNX Runtime (server idle) and HTTP, alternating.
            raw_emb, http_emb, raw_learner = [], [], []
            for _ in range(rounds + 1):
                raw_emb.append(_raw_embeddings(minilm.path, sentences, max(2, seconds // 2)))
                http_emb.append(_load(emb_url, 40, seconds, pids, lua_emb))
            raw_learner = _raw_learner(learner.path / "model.onnx", rows, max(1, seconds // 4))
            batches = _batch_stats(base)
            rss_after = rss_mb(proc.pid, with_children=True)
            worker_pids = [p for p in _server_pids(proc) if p != proc.pid]
            scipy_in_workers = [_maps_mention(p, "/scipy/") for p in worker_pids]
        load_after = os.getloadavg()
        learner_body, learner_headers = _binary_body([("features", "FP32", rows[0][None, :])])
        in_process = _in_process_cost(data_dir, learner_body, int(learner_headers["Inference-Header-Content-Length"]),
                                      2000 if args.quick else 6000)

        emb = _median_run(http_emb)
        raw_sorted = sorted(raw_emb, key=lambda x: x["sentences_per_s"])
        raw_med = {**raw_sorted[len(raw_sorted) // 2], "rounds_sentences_per_s": [x["sentences_per_s"] for x in raw_emb]}
        ratio_emb = round(emb["requests_per_s"] / raw_med["sentences_per_s"], 3)
        cpu_ratio_emb = round(raw_med["cpu_us_per_sentence"] / emb["server_cpu_us_per_request"], 3)
        workers_rss = rss_after.get("workers") or [rss_after["master"]]
        result = {
            "build_models_s": round(build_s, 1), "seconds_per_run": seconds, "rounds": rounds,
            "cpu_cores": os.cpu_count(), "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
            "server": "classroom-edge web (gunicorn gthread; [web] workers/threads defaults)",
            "learner": {"raw_onnxruntime_in_process": raw_learner, "http": learner_runs,
                        "flask_app_in_process": in_process},
            "embeddings": {"http_40_connections": emb, "raw_onnxruntime_batch32": raw_med, "ratio": ratio_emb,
                           "cpu_ratio": cpu_ratio_emb},
            "batching_seen_by_one_worker": batches,
            "rss_mb": {"after_load": {"master": rss_after["master"], "workers": workers_rss},
                       "models_loaded_before_load": rss_loaded,
                       # Context for the figure: what a worker carries that is not the models.
                       "import_cost_onnxruntime": _import_cost_mb("onnxruntime"),
                       "import_cost_scipy": _import_cost_mb("scipy.optimize, scipy.sparse, scipy.special"),
                       "workers_with_scipy_loaded": scipy_in_workers},
            "targets": TARGETS,
            "meets": {
                "learner_vs_ceiling_binary": all(x["ratio_binary"] >= TARGETS["learner_vs_ceiling"] for x in learner_runs),
                "learner_vs_ceiling_json": all(x.get("ratio_json", 1.0) >= TARGETS["learner_vs_ceiling"] for x in learner_runs),
                "embeddings_vs_raw": ratio_emb >= TARGETS["embeddings_vs_raw"],
                "embeddings_p99": emb["p99_ms"] <= TARGETS["embeddings_p99_ms"],
                "rss": max(workers_rss) <= TARGETS["rss_mb"],
                "learner_vs_ceiling_binary_cpu": all(x["cpu_ratio_binary"] >= TARGETS["learner_vs_ceiling"] for x in learner_runs),
                "embeddings_vs_raw_cpu": cpu_ratio_emb >= TARGETS["embeddings_vs_raw"],
                "no_errors": all(run["non_2xx"] == 0 and run["errors"] == 0
                                 for entry in raw_runs.values() for kind in entry.values() for run in kind)
                and all(run["non_2xx"] == 0 and run["errors"] == 0 for run in http_emb),
            },
        }
        return emit("inference", result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
