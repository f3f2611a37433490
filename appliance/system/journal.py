"""Logging to journald with structured fields when the process runs under systemd.

Under a unit, stderr already reaches the journal, but only as flat text. Sending each record through
journald's native protocol keeps its priority, logger name, source location and any ``extra=`` values
as separate fields, so an administrator can run ``journalctl -u classroom-edge-sync LOGGER=...`` or
``COURSE_ID=...`` instead of grepping.

systemd-python's ``systemd.journal.sendv`` is used when importable; otherwise the native protocol
(systemd.journal-fields(7), "native protocol" in systemd-journald.service(8)) is spoken directly: one
datagram per entry to ``/run/systemd/journal/socket``, ``KEY=value`` lines, binary-safe framing for
values with newlines, and a sealed memfd for entries too large for one datagram.
"""
from __future__ import annotations

import array
import errno
import fcntl
import logging
import os
import re
import socket
import struct
from collections.abc import Callable, Iterable, Mapping

log = logging.getLogger(__name__)

JOURNAL_SOCKET = "/run/systemd/journal/socket"
IDENTIFIER = "classroom-edge"

# syslog(3) priorities, which journald stores in PRIORITY=.
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and becomes a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_FIELD_BAD = re.compile(r"[^A-Z0-9_]")


def priority(levelno: int) -> int:
    for level, prio in _PRIORITIES:
        if levelno >= level:
            return prio
    return 7  # DEBUG and below


def field_name(key: str) -> str | None:
    """A journal field name for an ``extra=`` key, or None when nothing usable is left.

    Names are upper-case ``[A-Z0-9_]``, at most 64 characters, and may not start with ``_`` (those are
    trusted fields only journald itself may set) or a digit.
    """
    name = _FIELD_BAD.sub("_", key.upper()).lstrip("_")
    if not name:
        return None
    if name[0].isdigit():
        name = "F_" + name
    return name[:64]


def encode_entry(fields: Iterable[tuple[str, str | bytes]]) -> bytes:
    """Serialise one entry in the native protocol."""
    out = bytearray()
    for key, value in fields:
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "replace")
        if b"\n" in data:
            # Binary-safe form: name, newline, little-endian 64-bit length, the bytes, newline.
            out += key.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += key.encode() + b"=" + data + b"\n"
    return bytes(out)


def stderr_is_journal(env: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """True when ``fd`` is the stream systemd connected to the journal.

    systemd.exec(5): ``$JOURNAL_STREAM`` is ``DEVICE:INODE`` of that stream; comparing it with our
    stderr tells apart "started by the unit" from "a child that inherited the variable but whose stderr
    an operator redirected".
    """
    value = (os.environ if env is None else env).get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(part) for part in value.split(":"))
        st = os.fstat(fd)
    except (ValueError, OSError):
        return False
    return st.st_dev == dev and st.st_ino == ino


class _NativeSender:
    """Writes entries to journald's socket without libsystemd."""

    def __init__(self, path: str = JOURNAL_SOCKET) -> None:
        self.path = path
        self._sock: socket.socket | None = None

    def __call__(self, fields: list[tuple[str, str]]) -> None:
        payload = encode_entry(fields)
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            self._sock.sendto(payload, self.path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_memfd(payload)

    def _send_memfd(self, payload: bytes) -> None:
        # journald accepts a file descriptor instead of the data, if it is a fully sealed memfd, so
        # a large traceback is not lost to the datagram size limit.
        fd = os.memfd_create("journal-entry", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
        try:
            os.write(fd, payload)
            seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals)
            rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
            self._sock.sendmsg([], rights, 0, self.path)
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _libsystemd_sender() -> Callable[[list[tuple[str, str]]], None] | None:
    try:
        from systemd import journal  # type: ignore[import-not-found]
    except ImportError:
        return None
    sendv = getattr(journal, "sendv", None)
    if sendv is None:
        return None
    return lambda fields: sendv(*(f"{k}={v}" for k, v in fields))


class JournalHandler(logging.Handler):
    """A logging handler that sends each record to journald as one structured entry."""

    def __init__(self, level: int = logging.NOTSET, sender: Callable | None = None,
                 identifier: str = IDENTIFIER) -> None:
        super().__init__(level)
        if sender is None:
            sender = _libsystemd_sender() or _NativeSender()
        self._send = sender
        self.identifier = identifier
        self.setFormatter(logging.Formatter("%(message)s"))  # journald keeps time, level and source

    def fields(self, record: logging.LogRecord) -> list[tuple[str, str]]:
        out = [
            ("MESSAGE", self.format(record)),
            ("PRIORITY", str(priority(record.levelno))),
            ("SYSLOG_IDENTIFIER", self.identifier),
            ("LOGGER", record.name),
            ("THREAD_NAME", record.threadName or ""),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName or ""),
        ]
        if record.exc_info and record.exc_info[0] is not None:
            out.append(("EXCEPTION_TYPE", record.exc_info[0].__name__))
        taken = {k for k, _ in out}
        for key, value in vars(record).items():
            if key in _STANDARD or value is None:
                continue
            name = field_name(key)
            if name and name not in taken:
                out.append((name, value if isinstance(value, str) else str(value)))
                taken.add(name)
        return out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._send(self.fields(record))
        except Exception:  # noqa: BLE001 - logging must never take the service down
            self.handleError(record)  # prints to stderr, which also reaches the journal

    def close(self) -> None:
        close = getattr(self._send, "close", None)
        if callable(close):
            close()
        super().close()


def journal_handler(env: Mapping[str, str] | None = None) -> JournalHandler | None:
    """A JournalHandler when our stderr is systemd's journal stream and the socket exists, else None."""
    if not stderr_is_journal(env) or not os.path.exists(JOURNAL_SOCKET):
        return None
    return JournalHandler()
