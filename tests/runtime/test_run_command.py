"""The embedded default really starts, serves and stops on SIGTERM."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


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


def _start(tmp_path, command):
    port = free_port()
    env = dict(os.environ, CLASSROOM_EDGE_CONTENT__INSTALL_DEMO="false")
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
    port, proc = _start(tmp_path, "web")
    try:
        wait_http(f"http://127.0.0.1:{port}/api/v1/health", proc)
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        assert len(children) >= 2, "expected pre-forked worker processes"
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
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert total == n, text[:2000]
