"""A 2xx means saved: SIGKILL the web service while 40 students submit answers, then every answer that
was acknowledged is in the database after restart (issue 2).

The server is the real ``classroom-edge web`` (gunicorn master + workers); the kill is SIGKILL to the
whole process group, so nothing gets a chance to flush anything."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid

import requests

from bench.classroom import right_answer, seed, sign_in
from bench.common import free_port, wait_http

N_STUDENTS = 40
KILL_AFTER_ACKS = 600  # enough to be mid-stream, bounded so the test stays short
MAX_SECONDS = 120


def _start(data_dir, port):
    env = dict(os.environ, CLASSROOM_EDGE_WEB__WORKERS="2", CLASSROOM_EDGE_WEB__THREADS="8")
    return subprocess.Popen([sys.executable, "-m", "appliance", "web", "--host", "127.0.0.1", "--port", str(port),
                             "--data-dir", data_dir], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def test_every_acknowledged_answer_survives_sigkill(tmp_path):
    data_dir = str(tmp_path / "data")
    room = seed(data_dir, N_STUDENTS, demo=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(data_dir, port)
    acked: list[str] = []
    sent: list[str] = []
    repeats: list[str] = []  # asserted after the threads: an assert inside one would not fail the test
    lock = threading.Lock()
    stop = threading.Event()
    try:
        wait_http(base + "/api/v1/health", proc=proc)
        sessions = [sign_in(base, room["class_id"], st) for st in room["students"]]
        right = right_answer(room["exercise"])
        # Right and wrong in turn: the same answer twice in a row is a repeat, answered without storing.
        answers = [right, {"choice": (right["choice"] + 1) % len(json.loads(room["exercise"]["spec"])["choices"])}]

        def student(session, token):
            n = 0
            while not stop.is_set():
                n += 1
                answer = answers[n % 2]
                uid = str(uuid.uuid4())
                with lock:
                    sent.append(uid)
                try:
                    r = session.post(base + "/api/v1/attempts", timeout=10, headers={"X-CSRF-Token": token},
                                     json={"attempt_uid": uid, "course_id": room["course_id"],
                                           "exercise_id": room["exercise"]["id"], "answer": answer})
                except requests.RequestException:
                    return  # the server is gone: exactly what we wanted
                if 200 <= r.status_code < 300:
                    if r.json()["repeat"]:
                        repeats.append(uid)
                    with lock:
                        acked.append(uid)

        threads = [threading.Thread(target=student, args=s) for s in sessions]
        for t in threads:
            t.start()
        deadline = time.monotonic() + MAX_SECONDS
        while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(15)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    assert not repeats, "alternating answers are never repeats"
    assert len(acked) >= KILL_AFTER_ACKS, f"only {len(acked)} answers acknowledged before the deadline"
    assert len(sent) > len(acked), "the kill should have caught some answers in flight"

    # Restart the real service on the same data and check through it and the file itself.
    proc = _start(data_dir, port)
    try:
        wait_http(base + "/api/v1/health", proc=proc)
        conn = sqlite3.connect(os.path.join(data_dir, "classroom-edge.db"))
        stored = {r[0] for r in conn.execute("SELECT attempt_uid FROM attempts")}
        events = conn.execute("SELECT count(*) FROM outbox WHERE type = 'attempt'").fetchone()[0]
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged answers were lost"
    assert stored <= set(sent), "nothing appears that was never sent"
    assert events == len(stored), "every stored attempt has its outbox event (same transaction)"
