"""Where a learner inference's cost goes under load, beyond the stack's cheapest request (JSON).

    python -m bench.learner_breakdown [--quick] [--duration S] [--rounds N] [--connections C]

``bench.inference`` finds the learner over ``/v2`` at 0.65-0.75 of ``GET /v2/health/live`` (target
0.8). This benchmark asks why, in one server and interleaved, at 40 connections by default. It
prints each variant's throughput and the server's CPU per request (all its processes and threads),
and the differences between variants:

Through the real app (Flask, as a client sees it):
- ``live``: ``GET /v2/health/live``, the ceiling ``bench.inference`` uses.
- ``learner``: ``POST /v2/models/learner/infer``, one dense row of 1,416 floats as binary tensors
  (a 5.8 KB body), what ``bench.inference`` sends.
- ``learner_sparse``: the same weights as a graph that gathers only the row's non-zero features (about
  a dozen index/value pairs, a 0.3 KB body): what a smaller request would save end to end.

Through bare WSGI routes in front of the same app (``bench/_bare_server.py``, bench-only), each one
step more than the last: ``bare_live`` (no body), ``bare_read`` (reads the 5.8 KB body),
``bare_decode`` (+ the stored request plan), ``bare_numpy`` (+ the learner's arithmetic in numpy, which
keeps the GIL) or ``bare_ort`` (+ the ONNX Runtime run instead), ``bare_infer`` (+ the engine's
bookkeeping and the real answer). Their differences are the cost of each step under load, and
``learner - live`` minus ``bare_infer - bare_live`` is what Flask adds to an inference beyond what it
adds to the probe.

Through two bench-only Flask routes on the same app, the bounds of what any Flask inference route
could reach: ``flask_same`` reads the body and sends the learner's answer bytes without running
anything (Flask's own POST handling); ``flask_ort`` also decodes with the stored plan and runs the
backend, with no engine bookkeeping, metrics or swap safety (the leanest inference a Flask route
could do).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import emit, server, wrk
from bench.inference import _binary_body, _learner_rows, _load, _lua_post, _median_run, _server_pids

SPARSE = "learner_sparse"


def _sparse_learner(repo, learner) -> None:
    """Import a copy of the learner that takes (indices, values) of a row's non-zero features."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = onnx.load(str(learner.path / "model.onnx")).graph
    params = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    nodes = [helper.make_node("Gather", ["W", "indices"], ["w"], axis=0),
             helper.make_node("Mul", ["w", "values"], ["wx"]),
             helper.make_node("ReduceSum", ["wx", "axes"], ["logit_w"], keepdims=1),
             helper.make_node("Add", ["logit_w", "b"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["p_correct"])]
    sparse = helper.make_graph(
        nodes, SPARSE,
        [helper.make_tensor_value_info("indices", TensorProto.INT64, ["N", "K"]),
         helper.make_tensor_value_info("values", TensorProto.FLOAT, ["N", "K"])],
        [helper.make_tensor_value_info("p_correct", TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(params["W"].reshape(-1), "W"), numpy_helper.from_array(params["b"], "b"),
                     numpy_helper.from_array(np.int64([1]), "axes")])
    proto = helper.make_model(sparse, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto, full_check=True)
    staging = Path(tempfile.mkdtemp(prefix="ce-sparse-learner-"))
    try:
        onnx.save(proto, str(staging / "model.onnx"))
        manifest = {k: v for k, v in learner.meta.items() if k not in ("signature", "sha256", "inputs", "name")}
        manifest.update(name=SPARSE, sha256=hashlib.sha256((staging / "model.onnx").read_bytes()).hexdigest(),
                        inputs=[{"name": "indices", "datatype": "INT64", "shape": [-1, -1]},
                                {"name": "values", "datatype": "FP32", "shape": [-1, -1]}])
        (staging / "model.json").write_text(json.dumps(manifest), encoding="utf-8")
        repo.import_version(staging, SPARSE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sparse_body(row: np.ndarray) -> tuple[bytes, dict]:
    nz = np.flatnonzero(row)
    return _binary_body([("indices", "INT64", nz.astype(np.int64)[None, :]), ("values", "FP32", row[nz][None, :])])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--duration", type=int, help="seconds per load run (default 6, quick 1)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds, median reported (default 2, quick 1)")
    ap.add_argument("--connections", type=int, default=40)
    args = ap.parse_args(argv)
    seconds = int(args.duration or (1 if args.quick else 6))
    rounds = args.rounds or (1 if args.quick else 2)

    tmp = Path(tempfile.mkdtemp(prefix="ce-bench-breakdown-"))
    try:
        from appliance.inference.builders import build_default_models
        from appliance.inference.repository import Repository

        data_dir = tmp / "data"
        build_default_models(data_dir / "models", ("learner",))
        repo = Repository(data_dir / "models")
        learner = repo.version("learner", repo.active_version("learner"))
        _sparse_learner(repo, learner)
        rows = _learner_rows(learner.meta, 64)
        dense = [_binary_body([("features", "FP32", row[None, :])]) for row in rows]
        sparse = [_sparse_body(row) for row in rows]
        lua_dense, lua_sparse = _lua_post(dense, tmp / "dense"), _lua_post(sparse, tmp / "sparse")
        variants = {"live": ("/v2/health/live", ""), "learner": ("/v2/models/learner/infer", lua_dense),
                    "learner_sparse": (f"/v2/models/{SPARSE}/infer", lua_sparse), "bare_live": ("/bare/live", "")}
        for step in ("read", "decode", "numpy", "ort", "infer"):
            variants[f"bare_{step}"] = (f"/bare/{step}", lua_dense)
        for step in ("same", "ort"):
            variants[f"flask_{step}"] = (f"/flask/{step}", lua_dense)

        env = {"CLASSROOM_EDGE_INFERENCE__MODELS": f"learner,{SPARSE}", "CLASSROOM_EDGE_LOGGING__LEVEL": "WARNING"}
        runs: dict[str, list] = {k: [] for k in variants}
        with server("web", data_dir=str(data_dir), env=env, module="bench._bare_server") as (base, proc):
            pids = _server_pids(proc)
            # Untimed: one-time costs in each worker, and the real route stores the request plan
            # that the bare routes reuse (so the learner's route goes first, on enough connections
            # that the kernel hands some to every worker: a worker without a plan answers 409).
            for path, lua in variants.values():
                wrk(base + path, connections=16, duration_s=1, threads=2, lua=lua)
            for _ in range(rounds):
                for name, (path, lua) in variants.items():
                    runs[name].append(_load(base + path, args.connections, seconds, pids, lua))
        med = {k: _median_run(v) for k, v in runs.items()}
        cpu = {k: v["server_cpu_us_per_request"] for k, v in med.items()}
        rate = {k: v["requests_per_s"] for k, v in med.items()}

        def more(a: str, b: str) -> float:
            return round(cpu[a] - cpu[b], 1)

        result = {
            "connections": args.connections, "seconds_per_run": seconds, "rounds": rounds,
            "body_bytes": {"learner": len(dense[0][0]), "learner_sparse": len(sparse[0][0])},
            "runs": med,
            "throughput_vs_live": {k: round(rate[k] / rate["live"], 3) for k in rate},
            "throughput_vs_bare_live": {k: round(rate[k] / rate["bare_live"], 3) for k in rate if k.startswith("bare_")},
            "server_cpu_us_per_request": cpu,
            "extra_cpu_us": {
                "flask_learner_over_live": more("learner", "live"),
                "flask_sparse_learner_over_live": more("learner_sparse", "live"),
                "bare_infer_over_bare_live": more("bare_infer", "bare_live"),
                "what_flask_adds_to_an_inference": round(more("learner", "live") - more("bare_infer", "bare_live"), 1),
                "step_read_body": more("bare_read", "bare_live"),
                "step_decode": more("bare_decode", "bare_read"),
                "step_numpy_math": more("bare_numpy", "bare_decode"),
                "step_onnxruntime_run": more("bare_ort", "bare_decode"),
                "step_engine_and_answer": more("bare_infer", "bare_ort"),
                "flask_post_same_answer_over_live": more("flask_same", "live"),
                "flask_leanest_inference_over_live": more("flask_ort", "live"),
            },
            # The extra CPU an inference may cost over the probe for the 0.8 target.
            "extra_cpu_us_allowed_for_0_8": round(cpu["live"] / 0.8 - cpu["live"], 1),
            "errors": sum(r["non_2xx"] + r["errors"] for v in runs.values() for r in v),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        emit("learner_breakdown", result)
        if result["errors"]:
            # Differences between variants mean nothing if some of their requests failed.
            raise RuntimeError(f"{result['errors']} requests failed or were refused; the figures above are not usable")
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
