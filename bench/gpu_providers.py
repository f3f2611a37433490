"""The default models on an NVIDIA GPU next to the CPU, in one run (ONNX Runtime's CUDA provider).

For each setting (``cuda,cpu`` as shipped, which keeps the learner on the CPU (``inference.cpu_models``);
``cuda,cpu`` with every model on the GPU; ``cpu``; and ``tensorrt,cuda,cpu`` to show what the status
says when TensorRT cannot take a model) it starts the appliance's own engine on the box's default
models and prints JSON:
- what the engine reports: the providers really active and why one fell back;
- the serving path in-process (``engine.infer``: batcher and backend, no HTTP): the learner one row per
  call, minilm one sentence per call, each from 1 and from 40 threads (so dynamic batching forms batches),
  and minilm 32 sentences per call; calls/s, rows/s and p50/p99;
- whether the GPU gives the CPU's answers: the learner's largest probability difference, minilm's
  smallest embedding cosine;
- the same for minilm-fp32, when the repository holds it: the float model a GPU box could serve instead
  of the int8 one ("fp32 cuda,cpu over cpu" compares it with the int8 model on the CPU, what a box
  without a GPU serves).

This project's test machines have no GPU: there it prints why it cannot run. ``--repo`` takes models
already built (``make models``); without it the defaults are built into a temporary directory.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.common import emit
from bench.inference import _learner_rows, _sentences

# (label, providers, inference.cpu_models or None for the default, embedding model)
PROVIDER_SETS = (("cuda,cpu", "cuda,cpu", None, "minilm"), ("cuda,cpu all on gpu", "cuda,cpu", "", "minilm"),
                 ("cpu", "cpu", None, "minilm"), ("tensorrt,cuda,cpu", "tensorrt,cuda,cpu", None, "minilm"),
                 # The float model, where the repository has it (models build minilm-fp32): what a GPU box could serve.
                 ("fp32 cuda,cpu", "cuda,cpu", None, "minilm-fp32"), ("fp32 cpu", "cpu", None, "minilm-fp32"))


def _gpu_missing() -> str | None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return f"this ONNX Runtime ({ort.__version__}) has no CUDA provider: {ort.get_available_providers()}"
    return None


def _timed(call, seconds: float, threads: int) -> dict:
    """Calls ``call()`` from ``threads`` threads for ``seconds``; throughput and latency percentiles."""
    lat: list[float] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def worker():
        mine = []
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            call()
            mine.append(time.perf_counter() - t0)
        with lock:
            lat.extend(mine)

    t0 = time.perf_counter()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    wall = time.perf_counter() - t0
    arr = np.array(lat)
    return {"threads": threads, "calls_per_s": round(len(arr) / wall, 1),
            "p50_ms": round(float(np.percentile(arr, 50)) * 1e3, 3),
            "p99_ms": round(float(np.percentile(arr, 99)) * 1e3, 3)}


def _engine(repo: Path, cache: Path, providers: str, cpu_models: str | None, embedding: str):
    from appliance.config import load_config
    from appliance.inference.engine import InferenceEngine

    env = {"CLASSROOM_EDGE_INFERENCE__PROVIDERS": providers, "CLASSROOM_EDGE_INFERENCE__MODELS": f"learner,{embedding}"}
    if cpu_models is not None:
        env["CLASSROOM_EDGE_INFERENCE__CPU_MODELS"] = cpu_models
    cfg = load_config(env=env)
    return InferenceEngine(cfg.inference, repo, cache).start()


def _describe(engine) -> dict:
    keep = ("version", "backend", "requested_providers", "active_providers", "fallback", "error")
    return {m["name"]: {k: m.get(k) for k in keep} for m in engine.models_status()}


def _measure(engine, embedding: str, rows: np.ndarray, encoded: list[dict], batch32: dict, seconds: float) -> dict:
    i = {"n": 0}

    def learner_one():
        i["n"] += 1
        engine.infer("learner", {"features": rows[i["n"] % len(rows)][None, :]})

    def minilm_one():
        i["n"] += 1
        engine.infer(embedding, encoded[i["n"] % len(encoded)])

    out = {}
    for label, call, threads, per_call in (("learner_1row", learner_one, 1, 1), ("learner_1row", learner_one, 40, 1),
                                           ("minilm_1sentence", minilm_one, 1, 1), ("minilm_1sentence", minilm_one, 40, 1),
                                           ("minilm_32sentences", lambda: engine.infer(embedding, batch32), 1, 32)):
        r = _timed(call, seconds, threads)
        r["rows_per_s"] = round(r["calls_per_s"] * per_call, 1)
        out[f"{label}_x{threads}"] = r
    return out


def _answers(engine, embedding: str, rows: np.ndarray, batch32: dict) -> dict:
    learner = np.concatenate([engine.infer("learner", {"features": r[None, :]})["p_correct"] for r in rows])
    emb = engine.infer(embedding, batch32)["embedding"]
    return {"learner": learner.reshape(-1), "minilm": emb}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (smoke test)")
    ap.add_argument("--repo", help="use the default models already built in this repository")
    ap.add_argument("--duration", type=float, help="seconds per measurement (default 5, quick 1)")
    args = ap.parse_args(argv)
    missing = _gpu_missing()
    if missing:
        return emit("gpu_providers", {"skipped": missing})
    seconds = args.duration or (1.0 if args.quick else 5.0)
    tmp = Path(tempfile.mkdtemp(prefix="ce-bench-gpu-"))
    try:
        return emit("gpu_providers", _run(args, tmp, seconds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(args, tmp: Path, seconds: float) -> dict:
    import onnxruntime as ort

    from appliance.inference.builders.tokenizer import SentenceTokenizer
    from appliance.inference.repository import Repository

    repo = Path(args.repo) if args.repo else tmp / "models"
    if not args.repo:
        from appliance.inference.builders import build_default_models

        build_default_models(repo, ("learner", "minilm", "minilm-fp32"))
    r = Repository(repo)
    learner = r.version("learner", r.active_version("learner"))
    minilm = r.version("minilm", r.active_version("minilm"))
    rows = _learner_rows(learner.meta, 64)
    tok = SentenceTokenizer(minilm.path / "tokenizer.json")
    sentences = _sentences()
    encoded = [tok([s]) for s in sentences]
    batch32 = tok(sentences[:32])

    result: dict = {"onnxruntime": ort.__version__, "available_providers": ort.get_available_providers(),
                    "seconds_per_measurement": seconds, "runs": {}}
    answers = {}
    for key, providers, cpu_models, embedding in PROVIDER_SETS:
        if not r.versions(embedding):
            continue
        t0 = time.perf_counter()
        engine = _engine(repo, tmp / f"cache-{len(result['runs'])}", providers, cpu_models, embedding)
        try:
            entry = {"start_s": round(time.perf_counter() - t0, 2), "models": _describe(engine)}
            if engine.ready():
                answers[key] = _answers(engine, embedding, rows, batch32)
                if "tensorrt" not in providers:  # the TensorRT set only shows its fallback report
                    entry["serving"] = _measure(engine, embedding, rows, encoded, batch32, seconds)
        finally:
            engine.close()
        result["runs"][key] = entry

    for key, got in answers.items():
        cpu = answers.get("fp32 cpu" if key.startswith("fp32") else "cpu")
        if key not in ("cpu", "fp32 cpu") and cpu is not None:
            a, b = got["minilm"], cpu["minilm"]
            cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            result["runs"][key]["agrees_with_cpu"] = {
                "learner_max_abs_diff": float(np.max(np.abs(got["learner"] - cpu["learner"]))),
                "minilm_min_cosine": float(np.min(cos))}
    for key, cpu_key in (("cuda,cpu", "cpu"), ("cuda,cpu all on gpu", "cpu"), ("fp32 cuda,cpu", "fp32 cpu"),
                         ("fp32 cuda,cpu", "cpu")):
        gpu, base = result["runs"].get(key, {}).get("serving"), result["runs"].get(cpu_key, {}).get("serving")
        if gpu and base:
            result[f"{key} over {cpu_key}, rows/s"] = {k: round(gpu[k]["rows_per_s"] / base[k]["rows_per_s"], 2) for k in gpu}
    return result


if __name__ == "__main__":
    main()
