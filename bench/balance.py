"""How a classroom's connections spread over the web workers: one shared listening socket vs one
SO_REUSEPORT socket per worker (``web.reuse_port``), side by side in one run (JSON).

    python -m bench.balance [--quick] [--rounds N] [--duration S] [--connections C]

Two ``classroom-edge web`` servers (2 workers each, no models, no demo course) differ only in
``web.reuse_port``. Each round loads one and then the other with wrk (C keep-alive connections, new
ones every run, as when a class opens the box). During each run ``ss`` counts the established
connections each worker process holds. With one shared socket the worker that wakes first accepts,
and a run can put every connection on one worker, which then serves them on one core while the
other idles. The figures: requests/s per run (median and worst) and each run's split.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.common import emit, server, wrk


def _connections_per_worker(port: int, worker_pids: set[str]) -> list[int]:
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=False).stdout
    counts = collections.Counter(p for p in re.findall(r"pid=(\d+)", out) if p in worker_pids)
    return sorted((counts.get(p, 0) for p in worker_pids), reverse=True)


def _worker_pids(proc) -> set[str]:
    return set(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False).stdout.split())


def _run(base: str, proc, connections: int, seconds: int) -> dict:
    port = int(base.rsplit(":", 1)[1])
    workers = _worker_pids(proc)
    result: dict = {}
    load = threading.Thread(target=lambda: result.update(
        wrk(base + "/v2/health/live", connections=connections, duration_s=seconds, threads=2)))
    load.start()
    time.sleep(min(1.0, seconds / 2))  # every connection is open by now
    split = _connections_per_worker(port, workers)
    load.join()
    return {"requests_per_s": result["requests_per_s"], "p99_ms": result["p99_ms"], "connections_per_worker": split}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, help="runs per server (default 8, quick 3)")
    ap.add_argument("--duration", type=int, help="seconds per run (default 3, quick 2)")
    ap.add_argument("--connections", type=int, default=40)
    args = ap.parse_args(argv)
    rounds = args.rounds or (3 if args.quick else 8)
    seconds = args.duration or (2 if args.quick else 3)
    if shutil.which("ss") is None:
        raise RuntimeError("ss is not installed (Debian package iproute2; `make debs` installs it)")

    tmp = Path(tempfile.mkdtemp(prefix="ce-bench-balance-"))
    modes = {"one_shared_socket": "false", "socket_per_worker": "true"}
    runs: dict[str, list] = {m: [] for m in modes}
    try:
        with contextlib.ExitStack() as stack:
            servers = {}
            for mode, flag in modes.items():
                env = {"CLASSROOM_EDGE_WEB__REUSE_PORT": flag, "CLASSROOM_EDGE_WEB__WORKERS": "2",
                       "CLASSROOM_EDGE_INFERENCE__ENABLED": "false", "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "false",
                       "CLASSROOM_EDGE_LOGGING__LEVEL": "WARNING"}
                (tmp / mode).mkdir()
                servers[mode] = stack.enter_context(server("web", data_dir=str(tmp / mode), env=env))
            for base, _proc in servers.values():
                wrk(base + "/v2/health/live", connections=4, duration_s=1, threads=2)  # first-request costs
            for _ in range(rounds):
                for mode, (base, proc) in servers.items():
                    runs[mode].append(_run(base, proc, args.connections, seconds))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    summary = {}
    for mode, rs in runs.items():
        rates = [r["requests_per_s"] for r in rs]
        summary[mode] = {
            "median_requests_per_s": round(statistics.median(rates), 1),
            "worst_requests_per_s": round(min(rates), 1),
            "runs_with_every_connection_on_one_worker": sum(1 for r in rs if r["connections_per_worker"][-1] == 0),
            "largest_share_on_one_worker": round(max(r["connections_per_worker"][0] / max(1, sum(r["connections_per_worker"]))
                                                     for r in rs), 2),
            "runs": rs,
        }
    shared, own = summary["one_shared_socket"], summary["socket_per_worker"]
    result = {
        "connections": args.connections, "seconds_per_run": seconds, "rounds": rounds, "workers": 2,
        **summary,
        "ratio_median_per_worker_vs_shared": round(own["median_requests_per_s"] / shared["median_requests_per_s"], 3),
        "ratio_worst_per_worker_vs_shared": round(own["worst_requests_per_s"] / shared["worst_requests_per_s"], 3),
    }
    return emit("balance", result)


if __name__ == "__main__":
    main()
