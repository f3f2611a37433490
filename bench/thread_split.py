"""Embeddings at 40 clients with ONNX Runtime's threads split between the web workers, or not.

Four ``classroom-edge web`` servers run side by side on the same models. They differ only in
MiniLM's dynamic batch limit (32 or 16) and in ``inference.intra_op_threads``: 0 (the default: the
usable cores shared out among the workers, one each on two cores) or every core per worker, which was
the default before. The servers are loaded one after another, round after round, so the shared
machine's drift hits all four alike. Prints each configuration's sentences/s and p99 per round.

    python -m bench.thread_split [--quick] [--repo DIR] [--rounds N] [--duration S]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from bench.common import emit, server, wrk
from bench.inference import _embedding_bodies, _lua_post, _sentences


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repo", help="use the default models already built in this repository")
    ap.add_argument("--rounds", type=int, help="rounds over the four servers (default 3, quick 1)")
    ap.add_argument("--duration", type=int, help="seconds per load run (default 6, quick 2)")
    args = ap.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.duration or (2 if args.quick else 6)
    cores = len(os.sched_getaffinity(0))
    configs = {f"batch{b}_{name}": (b, threads) for b in (32, 16)
               for name, threads in (("every_core_per_worker", cores), ("cores_shared_out", 0))}

    tmp = Path(tempfile.mkdtemp(prefix="ce-bench-threads-"))
    try:
        repo = tmp / "models"
        if args.repo:
            shutil.copytree(args.repo, repo, ignore=shutil.ignore_patterns("minilm-fp32"))
        else:
            from appliance.inference.builders import build_default_models

            build_default_models(repo, ("minilm",))
        version = sorted((repo / "minilm").glob("*/model.json"))[-1].parent
        lua = _lua_post(_embedding_bodies(version, _sentences()), tmp / "bodies")
        runs: dict[str, list[dict]] = {name: [] for name in configs}
        with contextlib.ExitStack() as stack:
            urls = {}
            for name, (batch, threads) in configs.items():
                data = tmp / name
                shutil.copytree(repo, data / "models")
                manifest = data / "models" / "minilm" / version.name / "model.json"
                doc = json.loads(manifest.read_text())
                doc["max_batch_size"] = batch
                manifest.write_text(json.dumps(doc))
                env = {"CLASSROOM_EDGE_INFERENCE__MODELS": "minilm", "CLASSROOM_EDGE_LOGGING__LEVEL": "WARNING",
                       "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "false",
                       "CLASSROOM_EDGE_INFERENCE__INTRA_OP_THREADS": str(threads)}
                base, _proc = stack.enter_context(server("web", data_dir=str(data), env=env))
                urls[name] = base + "/v2/models/minilm/infer"
                wrk(urls[name], connections=8, duration_s=1, threads=2, lua=lua)  # warm-up
            for _ in range(rounds):
                for name, url in urls.items():
                    r = wrk(url, connections=40, duration_s=seconds, threads=2, lua=lua)
                    runs[name].append({k: r[k] for k in ("requests_per_s", "p50_ms", "p99_ms", "errors", "non_2xx")})
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    summary = {name: {"median_requests_per_s": statistics.median(r["requests_per_s"] for r in rs),
                      "median_p99_ms": statistics.median(r["p99_ms"] for r in rs),
                      "p99_ms_per_round": [r["p99_ms"] for r in rs]} for name, rs in runs.items()}
    return emit("thread_split", {"benchmark": "thread_split", "cpu_cores": cores, "clients": 40,
                                 "seconds_per_run": seconds, "rounds": rounds, "summary": summary, "runs": runs})


if __name__ == "__main__":
    main()
