"""The heartbeat pings only while its probe is healthy, and its thread always stops."""
from __future__ import annotations

import socket
import threading

from appliance.system.watchdog import Heartbeat


class Counter:
    def __init__(self, target: int):
        self.count = 0
        self.target = target
        self.reached = threading.Event()

    def __call__(self) -> bool:
        self.count += 1
        if self.count >= self.target:
            self.reached.set()
        return True


def test_healthy_probe_pings_repeatedly():
    sent = Counter(target=3)
    hb = Heartbeat(lambda: True, interval=0.01, send=sent)
    assert hb.start()
    try:
        assert sent.reached.wait(10), "heartbeat never pinged three times"
    finally:
        hb.stop()
    assert hb.pings >= 3 and hb.misses == 0


def test_unhealthy_or_raising_probe_withholds_pings():
    sent = Counter(target=1)
    probes = Counter(target=5)
    calls = {"n": 0}

    def probe():
        probes()
        calls["n"] += 1
        if calls["n"] % 2:
            return False
        raise RuntimeError("database wedged")

    with Heartbeat(probe, interval=0.01, send=sent) as hb:
        assert probes.reached.wait(10)
    assert sent.count == 0 and hb.pings == 0
    assert hb.misses >= 5


def test_recovers_after_misses():
    state = {"ok": False}
    sent = []
    hb = Heartbeat(lambda: state["ok"], send=lambda: sent.append(1) or True)
    assert hb.beat_once() is False and hb.misses == 1
    state["ok"] = True
    assert hb.beat_once() is True
    assert hb.misses == 0 and sent == [1] and hb.last_ok is not None


def test_no_watchdog_armed_means_no_thread(monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    hb = Heartbeat(lambda: True)
    assert hb.start() is False
    hb.stop()
    assert not [t for t in threading.enumerate() if t.name == "watchdog-heartbeat"]


def test_default_sender_reaches_the_notify_socket(tmp_path, monkeypatch):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # 0.2 s timeout -> ping every 0.1 s
    try:
        with Heartbeat(lambda: True) as hb:
            assert sock.recv(64) == b"WATCHDOG=1"
            assert sock.recv(64) == b"WATCHDOG=1"
        assert hb.pings >= 2
    finally:
        sock.close()
