"""The embedded default really starts, serves and stops on SIGTERM."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
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
