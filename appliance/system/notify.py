"""sd_notify: tell systemd that a service is ready, alive, stopping, and what it is doing.

The units are ``Type=notify`` with ``WatchdogSec=``, so systemd believes these messages and nothing
else: ``READY=1`` must mean "really serving" and ``WATCHDOG=1`` must come from the part doing the work.

systemd-python's ``systemd.daemon.notify`` (libsystemd's own implementation) is used when it can be
imported. Otherwise we speak the protocol ourselves -- one datagram of newline-separated ``KEY=VALUE``
lines to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET`` (see sd_notify(3)) -- because a wheel-only
install without the C extension must still be supervised correctly, not silently lose its watchdog.

Every function returns True when the message was handed to systemd and False when not running under a
notify-type unit (no ``$NOTIFY_SOCKET``), so callers never need to know which case they are in.
"""
from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def _libsystemd_notify():
    """``systemd.daemon.notify`` when systemd-python is installed, else None."""
    try:
        from systemd import daemon  # type: ignore[import-not-found]
    except ImportError:
        return None
    return getattr(daemon, "notify", None)


def socket_address(value: str) -> str | bytes:
    """The address to ``sendto`` for a ``$NOTIFY_SOCKET`` value.

    ``@name`` is a Linux abstract-namespace socket (sent with a leading NUL byte), ``/path`` a
    filesystem socket. Newer systemd may also hand VMs ``vsock:`` addresses; Debian 12's systemd 252
    never does, so those are refused rather than guessed at.
    """
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    raise ValueError(f"unsupported NOTIFY_SOCKET address {value!r}")


def send_datagram(state: str, address_value: str) -> None:
    """The protocol itself: one datagram, no reply. Raises OSError/ValueError on failure."""
    address = socket_address(address_value)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.sendto(state.encode(), address)


def notify(*assignments: str, env: Mapping[str, str] | None = None) -> bool:
    """Send ``KEY=VALUE`` assignments in one message; False when not under systemd or on failure.

    ``env`` is for tests; with it the built-in implementation is used, because libsystemd always reads
    the real process environment.
    """
    for item in assignments:
        if "=" not in item or "\n" in item:
            raise ValueError(f"not a single KEY=VALUE assignment: {item!r}")
    state = "\n".join(assignments)
    environ = os.environ if env is None else env
    address = environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    lib = _libsystemd_notify() if env is None else None
    try:
        if lib is not None:
            return bool(lib(state))
        send_datagram(state, address)
        return True
    except (OSError, ValueError) as exc:
        # Failing to notify is not fatal to the work itself; systemd's own timeouts will notice.
        log.warning("sd_notify(%s) to %s failed: %s", state.replace("\n", " "), address, exc)
        return False


def ready(status: str | None = None, **kw) -> bool:
    """``READY=1``: call only once the service really serves (socket bound, models loaded)."""
    return notify("READY=1", *([f"STATUS={status}"] if status else []), **kw)


def stopping(status: str | None = None, **kw) -> bool:
    """``STOPPING=1``: shutdown has begun, so systemd stops expecting watchdog pings."""
    return notify("STOPPING=1", *([f"STATUS={status}"] if status else []), **kw)


def watchdog(**kw) -> bool:
    """``WATCHDOG=1``: one keep-alive ping. Send it from the loop that does the work."""
    return notify("WATCHDOG=1", **kw)


def status(text: str, **kw) -> bool:
    """``STATUS=...``: one line shown by ``systemctl status``."""
    return notify(f"STATUS={' '.join(text.splitlines())}", **kw)


def extend_timeout(seconds: float, **kw) -> bool:
    """``EXTEND_TIMEOUT_USEC``: ask for more start/stop time (e.g. a TensorRT engine rebuild)."""
    return notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}", **kw)


NOTIFY_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def detach(environ: dict | None = None) -> dict[str, str]:
    """Take the notify variables out of the process environment and return them.

    For a supervisor that hosts third-party code which would otherwise speak to systemd on its own
    (gunicorn's arbiter sends ``READY=1`` as soon as it has booted, before any worker can serve, and
    that arms the watchdog early) or whose children must not inherit the socket. Pass the returned
    dict as ``env=`` to ``ready()``/``watchdog()``/``watchdog_interval()`` to keep notifying.
    """
    environ = os.environ if environ is None else environ
    return {name: environ.pop(name) for name in NOTIFY_VARIABLES if name in environ}


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between pings (half of ``WatchdogSec=``), or None when no watchdog is armed for us.

    sd_watchdog_enabled(3): ``WATCHDOG_USEC`` is the timeout and ``WATCHDOG_PID``, when set, names the
    one process it is meant for -- a forked worker must not ping on its parent's behalf by accident.
    """
    environ = os.environ if env is None else env
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2_000_000
