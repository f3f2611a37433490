"""Shared benchmark plumbing: start a real server, drive it with wrk, report JSON.

Every benchmark prints one JSON document on stdout and writes it to ``bench/out/<name>.json``.
Load is bounded (a fixed duration and connection count) and goes only to 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

# wrk prints this from done(): latencies are in microseconds.
_WRK_REPORT = r"""
done = function(summary, latency, requests)
  io.write(string.format("WRKJSON {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, \"max_us\": %d, \"errors_status\": %d, \"errors_connect\": %d, \"errors_timeout\": %d, \"errors_read\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.status, summary.errors.connect, summary.errors.timeout, summary.errors.read))
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emit(name: str, result: dict) -> dict:
    OUT.mkdir(exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=False)
    (OUT / f"{name}.json").write_text(text + "\n")
    print(text, flush=True)
    return result


def wait_http(url: str, timeout: float = 180, proc=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@contextmanager
def server(command: str = "web", data_dir: str | None = None, env: dict | None = None, extra_args=(),
           module: str = "appliance"):
    """Start ``classroom-edge <command>`` on 127.0.0.1 and an ephemeral port; yield (base_url, proc).
    ``module`` runs another entry point that wraps the same command (a bench-only server)."""
    port = free_port()
    tmp = None
    if data_dir is None:
        tmp = tempfile.mkdtemp(prefix="ce-bench-")
        data_dir = tmp
    full_env = dict(os.environ, **(env or {}))
    log = open(Path(data_dir) / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", module, command, "--host", "127.0.0.1", "--port", str(port), "--data-dir", data_dir, *extra_args],
        env=full_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/api/v1/health", proc=proc)
        yield base, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def wrk(url: str, *, connections: int, duration_s: float, threads: int | None = None, lua: str = "") -> dict:
    """Run wrk; ``lua`` may define request()/setup()/init() (its done() is ours)."""
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian package 'wrk'; `make debs` installs it)")
    threads = threads or min(connections, 8)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(lua + "\n" + _WRK_REPORT)
        script = f.name
    try:
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(duration_s))}s", "--timeout", "10s", "-s", script, url],
            capture_output=True, text=True, timeout=duration_s + 60,
        )
    finally:
        os.unlink(script)
    m = re.search(r"WRKJSON (\{.*\})", out.stdout)
    if not m:
        raise RuntimeError(f"wrk failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    raw = json.loads(m.group(1))
    seconds = raw["duration_us"] / 1e6
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out.stdout)
    return {
        "requests": raw["requests"],
        "requests_per_s": round(raw["requests"] / seconds, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "max_ms": round(raw["max_us"] / 1000, 2),
        "errors": raw["errors_connect"] + raw["errors_timeout"] + raw["errors_read"],
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
    }


def rss_mb(pid: int, with_children: bool = False) -> dict:
    """Resident set size of a process (and each child), in MB, from /proc."""

    def one(p: int) -> float:
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    out = {"master": round(one(pid), 1)}
    if with_children:
        kids = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        out["workers"] = [round(one(int(k)), 1) for k in kids]
    return out
