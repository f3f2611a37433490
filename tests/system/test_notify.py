"""sd_notify: messages reach a real AF_UNIX datagram socket, through both implementations."""
from __future__ import annotations

import logging
import os
import socket
import uuid

import pytest

from appliance.system import notify


@pytest.fixture
def listener(tmp_path):
    """A datagram socket standing where systemd's notify socket would be."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield str(path), sock
    sock.close()


def test_ready_with_status_is_one_datagram(listener):
    path, sock = listener
    assert notify.ready(status="serving on :80", env={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving on :80"


def test_abstract_namespace_address():
    name = f"ce-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    try:
        assert notify.stopping(env={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"
    finally:
        sock.close()


def test_process_environment_uses_whatever_backend_is_installed(listener, monkeypatch):
    """Without ``env=`` the real environment is read: libsystemd when importable, else ours."""
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    assert notify.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_builtin_protocol_when_systemd_python_is_missing(listener, monkeypatch):
    path, sock = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(notify, "_libsystemd_notify", lambda: None)
    assert notify.extend_timeout(90)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=90000000"


def test_status_is_kept_on_one_line(listener):
    path, sock = listener
    notify.status("loading models\nstep 2", env={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"STATUS=loading models step 2"


def test_not_under_systemd_is_false_and_sends_nothing():
    assert notify.ready(env={}) is False
    assert notify.watchdog(env={"NOTIFY_SOCKET": ""}) is False


def test_unreachable_socket_is_reported_not_raised(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="appliance.system.notify"):
        assert notify.ready(env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")}) is False
    assert "sd_notify(READY=1)" in caplog.text


def test_unsupported_address_is_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="appliance.system.notify"):
        assert notify.ready(env={"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    assert "unsupported NOTIFY_SOCKET" in caplog.text


@pytest.mark.parametrize("bad", ["READY", "READY=1\nWATCHDOG=1"])
def test_malformed_assignment_is_refused(bad):
    with pytest.raises(ValueError):
        notify.notify(bad, env={"NOTIFY_SOCKET": "/nonexistent"})


def test_watchdog_interval_is_half_the_timeout_for_this_process():
    pid = str(os.getpid())
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 15.0
    # Armed for another process (our parent, say): we must not ping on its behalf.
    assert notify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert notify.watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert notify.watchdog_interval({}) is None


def test_detach_hides_the_socket_from_others_but_keeps_notifying(listener):
    path, sock = listener
    environ = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid()), "HOME": "/"}
    saved = notify.detach(environ)
    assert environ == {"HOME": "/"}  # a library reading the environment now sees no systemd
    assert notify.ready(env=environ) is False
    assert notify.ready(env=saved) and sock.recv(64) == b"READY=1"
    assert notify.watchdog_interval(saved) == 15.0
