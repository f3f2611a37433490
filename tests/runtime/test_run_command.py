"""The embedded default really starts, serves and stops on SIGTERM."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, proc, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return json.loads(r.read())
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _start(tmp_path, command, **env_overrides):
    port = free_port()
    env = dict(os.environ, CLASSROOM_EDGE_CONTENT__INSTALL_DEMO="false", **env_overrides)
    proc = subprocess.Popen([sys.executable, "-m", "appliance", command, "--port", str(port), "--data-dir", str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return port, proc


def test_run_serves_and_stops_cleanly_on_sigterm(tmp_path):
    port, proc = _start(tmp_path, "run")
    try:
        health = wait_http(f"http://127.0.0.1:{port}/api/v1/health", proc)
        assert health["version"]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert (tmp_path / "classroom-edge.db").exists()


def test_web_uses_gunicorn_workers_and_stops_on_sigterm(tmp_path):
    home, runtime = tmp_path / "home", tmp_path / "run"
    home.mkdir()
    runtime.mkdir()
    # gunicorn puts its control socket in $XDG_RUNTIME_DIR when set, else in ~/.gunicorn.
    port, proc = _start(tmp_path, "web", HOME=str(home), XDG_RUNTIME_DIR=str(runtime))
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health", proc)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2, "expected pre-forked worker processes"
        # gunicorn 27's control socket (~/.gunicorn/gunicorn.ctl: add workers, reload, shut down) is off:
        # systemd manages the service, and it is one more thread in the master while it forks workers.
        assert not (home / ".gunicorn").exists() and not list(runtime.iterdir())
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, out
    assert "Shutting down" in out


def test_secret_key_is_private_and_shared_by_racing_workers(tmp_path):
    import threading

    from appliance.web.app import _persistent_secret

    keys = []
    threads = [threading.Thread(target=lambda: keys.append(_persistent_secret(tmp_path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(keys)) == 1 and len(keys[0]) > 40
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret_key"]  # no temporary files left behind


def test_metrics_sum_every_gunicorn_worker(tmp_path):
    """Each worker counts its own requests; /metrics must show the total, whichever worker answers."""
    port, proc = _start(tmp_path, "web")
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health", proc)
        body = json.dumps({"inputs": [{"name": "features", "shape": [1, 1], "datatype": "FP32", "data": [0.0]}]}).encode()
        n = 40
        for _ in range(n):  # a wrong shape still counts as a request (an error outcome) in every worker
            req = urllib.request.Request(f"http://127.0.0.1:{port}/v2/models/learner/infer", data=body,
                                         headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=10).read()
            except urllib.error.HTTPError:
                pass
        # Each worker publishes its buffered counts once a second, so the total may lag a moment.
        deadline = time.monotonic() + 15
        while True:
            text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
            total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("ce_inference_requests_total{") and 'model="learner"' in line)
            if total == n or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # The admin page's figures (in the inference part of /api/v1/health) add up every worker too,
        # and count a worker the kernel sent no request to (it shares its empty figures all the same).
        while True:
            health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).read())
            learner = next(m for p in health["parts"] if p["name"] == "inference" for m in p["models"]
                           if m["name"] == "learner")
            if (learner["requests"] == n and learner["workers"] == 2) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        shared = list((tmp_path / "cache" / "prometheus" / "admin-stats").glob("*.json"))
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert total == n, text[:2000]
    assert learner["requests"] == n and learner["errors"] == n and learner["workers"] == 2, learner
    assert len(shared) == 2  # one per worker; outside systemd they sit next to the Prometheus files


def test_each_gunicorn_worker_listens_on_its_own_reuseport_socket(tmp_path):
    """web.reuse_port: one listening socket per worker, so the kernel spreads a class's connections
    over the workers (on one shared socket they can all land on one worker; bench/balance.py)."""
    import shutil

    import pytest

    if shutil.which("ss") is None:
        pytest.skip("ss (iproute2) is not installed; `make debs` installs it")
    port, proc = _start(tmp_path, "web")
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health", proc)
        workers = set(subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split())
        deadline = time.monotonic() + 60
        while True:  # a worker opens its socket once its app and models have loaded
            listening = subprocess.run(["ss", "-ltnpH", f"( sport = :{port} )"], capture_output=True, text=True).stdout
            owners = [set(re.findall(r"pid=(\d+)", line)) for line in listening.splitlines() if line.strip()]
            if len(owners) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(owners) == 2 and all(len(o) == 1 for o in owners), listening
        assert set().union(*owners) == workers and len(workers) == 2
        # 40 connections held open together: both workers get some (all on one: p = 2 * 0.5**40).
        socks = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(40)]
        try:
            time.sleep(0.5)
            held = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{port} )"],
                                  capture_output=True, text=True).stdout
            ours = {f"127.0.0.1:{s.getsockname()[1]} " for s in socks}  # not the master's health probes
            mine = [line for line in held.splitlines() if any(p in line + " " for p in ours)]
            per_worker = {w: sum(f"pid={w}," in line for line in mine) for w in workers}
            assert all(n > 0 for n in per_worker.values()) and sum(per_worker.values()) == 40, per_worker
        finally:
            for s in socks:
                s.close()
        _binary_learner_requests_through_gunicorn(port)
        _respawned_worker_listens_only_once_loaded(proc, port, workers)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)


def _binary_learner_requests_through_gunicorn(port: int) -> None:
    """Binary OIP requests through gunicorn's own body reader: with Content-Length (read straight
    from the stream; the repeated head is served from its plan) and chunked (through werkzeug)."""
    import http.client

    import numpy as np

    meta = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/learner", timeout=10).read())
    (spec,) = meta["inputs"]
    x = np.linspace(0, 1, spec["shape"][1], dtype=np.float32)[None, :]
    head = json.dumps({"inputs": [{"name": spec["name"], "datatype": "FP32", "shape": list(x.shape),
                                   "parameters": {"binary_data_size": x.nbytes}}],
                       "parameters": {"binary_data_output": True}}).encode()
    body = head + x.tobytes()
    answers = []
    for chunked in (False, False, False, True):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}
        if chunked:
            conn.request("POST", "/v2/models/learner/infer", body=iter([body[:100], body[100:]]), headers=headers,
                         encode_chunked=True)
        else:
            conn.request("POST", "/v2/models/learner/infer", body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        conn.close()
        assert r.status == 200, data[:300]
        n = int(r.headers["Inference-Header-Content-Length"])
        answer = json.loads(data[:n])
        assert answer["model_name"] == "learner" and answer["outputs"][0]["shape"] == [1, 1]
        answers.append(float(np.frombuffer(data[n:], np.float32)[0]))
    assert 0 < answers[0] < 1 and answers == [answers[0]] * 4


def test_web_stops_at_once_when_its_port_is_taken(tmp_path):
    """With a socket per worker the master binds nothing; a taken port must still stop the service
    with a reason (not respawn workers that cannot bind, forever)."""
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        env = dict(os.environ, CLASSROOM_EDGE_CONTENT__INSTALL_DEMO="false")
        done = subprocess.run([sys.executable, "-m", "appliance", "web", "--port", str(port), "--data-dir", str(tmp_path)],
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        holder.close()
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert f"cannot listen on 127.0.0.1:{port}" in done.stdout + done.stderr


def _respawned_worker_listens_only_once_loaded(proc, port: int, workers: set[str]) -> None:
    """A worker that replaces a dead one opens its socket only after its app and models loaded, so
    no connection waits on a worker that is still warming up: when its socket first shows, ONNX
    Runtime is already mapped into it."""

    victim = sorted(workers)[0]
    os.kill(int(victim), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listening = subprocess.run(["ss", "-ltnpH", f"( sport = :{port} )"], capture_output=True, text=True).stdout
        fresh = set(re.findall(r"pid=(\d+)", listening)) - workers
        if fresh:
            (pid,) = fresh
            maps = Path(f"/proc/{pid}/maps").read_text()
            assert "onnxruntime" in maps, "the new worker listened before its models were loaded"
            return
        time.sleep(0.02)
    raise AssertionError("no replacement worker listened within 60 s")


def _notify_listener(tmp_path):
    """A socket where the service's READY=1 arrives, as systemd's would. Readiness is what the master's
    probe sends, so a test waits for it there: its own request can succeed before the probe's first one,
    and a SIGTERM then would race it."""
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(120)
    return listener, path


@contextmanager
def _web_telling_systemd(tmp_path, *args: str):
    """``classroom-edge web ARGS`` (no demo course, no models) with a notify socket of the test's own;
    killed on the way out whatever happened."""
    listener, notify_path = _notify_listener(tmp_path)
    env = dict(os.environ, CLASSROOM_EDGE_CONTENT__INSTALL_DEMO="false", CLASSROOM_EDGE_INFERENCE__ENABLED="false",
               NOTIFY_SOCKET=notify_path)
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "web", *args, "--data-dir", str(tmp_path)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc, listener
    finally:
        proc.kill()
        listener.close()


def _stopped(proc) -> str:
    """SIGTERM, as systemd stops it: a clean exit, and what it printed."""
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    return out


def _wait_ready(listener) -> None:
    messages = []
    while not any("READY=1" in m for m in messages):
        messages.append(listener.recv(4096).decode())  # socket.timeout after 120 s fails the test


def test_web_on_port_0_becomes_ready_on_the_port_it_got(tmp_path):
    """web.port = 0 (any free port): the readiness probe asks the port the master really bound."""
    with _web_telling_systemd(tmp_path, "--port", "0") as (proc, listener):
        _wait_ready(listener)
        out = _stopped(proc)
    port = int(re.search(r"web service ready on http://127\.0\.0\.1:(\d+)/api/v1/health", out).group(1))
    assert port != 0


def test_web_serves_on_an_ipv6_address(tmp_path):
    """web.host = ::1: gunicorn's bind and the master's health probe need the address in brackets."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError:
        port = None
    with _web_telling_systemd(tmp_path, "--host", "::1", "--port", str(port or free_port())) as (proc, listener):
        if port is None:  # a container without IPv6: the start is refused with the reason, not hung
            out, _ = proc.communicate(timeout=60)
            assert proc.returncode != 0 and "cannot listen on [::1]:" in out
            return
        _wait_ready(listener)
        assert wait_http(f"http://[::1]:{port}/api/v1/health", proc)["status"]
        out = _stopped(proc)
    assert f"web service ready on http://[::1]:{port}/api/v1/health" in out
