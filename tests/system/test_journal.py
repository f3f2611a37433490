"""journald handler: records become structured entries in the native protocol."""
from __future__ import annotations

import array
import logging
import os
import socket
import struct

import pytest

from appliance.system import journal


def parse_entry(data: bytes) -> dict[str, str]:
    """A reader for the native protocol written from its description, independent of the writer."""
    fields, i = {}, 0
    while i < len(data):
        nl = data.index(b"\n", i)
        line = data[i:nl]
        if b"=" in line:
            key, value = line.split(b"=", 1)
            i = nl + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", data[nl + 1:nl + 9])
            value = data[nl + 9:nl + 9 + size]
            assert data[nl + 9 + size:nl + 10 + size] == b"\n"
            i = nl + 10 + size
        fields[key.decode()] = value.decode()
    return fields


@pytest.fixture
def journald(tmp_path):
    """A datagram socket playing journald; yields (path, receive())."""
    path = str(tmp_path / "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)

    def receive() -> dict[str, str]:
        data, ancdata, _, _ = sock.recvmsg(1 << 20, socket.CMSG_SPACE(4))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fd = array.array("i", payload[:4])[0]
                with os.fdopen(fd, "rb") as f:
                    f.seek(0)  # the sender's write left the shared file offset at the end
                    data = f.read()
        return parse_entry(data)

    yield path, receive
    sock.close()


@pytest.fixture
def logger(journald):
    path, _ = journald
    handler = journal.JournalHandler(sender=journal._NativeSender(path))
    lg = logging.getLogger("tests.system.journal")
    lg.addHandler(handler)
    lg.setLevel(logging.DEBUG)
    lg.propagate = False
    yield lg
    lg.removeHandler(handler)
    handler.close()


def test_record_becomes_structured_entry(journald, logger):
    _, receive = journald
    logger.warning("course %s imported", "algebra-1", extra={"course_id": "algebra-1", "lessons": 12})
    entry = receive()
    assert entry["MESSAGE"] == "course algebra-1 imported"
    assert entry["PRIORITY"] == "4"
    assert entry["LOGGER"] == "tests.system.journal"
    assert entry["SYSLOG_IDENTIFIER"] == "classroom-edge"
    assert entry["COURSE_ID"] == "algebra-1" and entry["LESSONS"] == "12"
    assert entry["CODE_FUNC"] == "test_record_becomes_structured_entry"
    assert entry["CODE_FILE"].endswith("test_journal.py")


def test_exception_keeps_multiline_traceback(journald, logger):
    _, receive = journald
    try:
        raise KeyError("missing-skill")
    except KeyError:
        logger.exception("import failed")
    entry = receive()
    assert entry["PRIORITY"] == "3"
    assert entry["EXCEPTION_TYPE"] == "KeyError"
    assert entry["MESSAGE"].startswith("import failed\nTraceback")
    assert "missing-skill" in entry["MESSAGE"]


def test_entry_too_big_for_a_datagram_goes_through_a_sealed_memfd(journald, logger):
    _, receive = journald
    big = "x" * (4 << 20)  # beyond any default datagram size limit
    logger.info(big)
    entry = receive()
    assert entry["MESSAGE"] == big and entry["PRIORITY"] == "6"


def test_field_names_are_sanitised():
    assert journal.field_name("course-id") == "COURSE_ID"
    assert journal.field_name("_trusted") == "TRUSTED"  # clients may not set _FIELDS
    assert journal.field_name("2fa") == "F_2FA"
    assert journal.field_name("___") is None
    assert len(journal.field_name("k" * 100)) == 64


def test_priorities_follow_syslog():
    assert [journal.priority(lv) for lv in (50, 40, 30, 20, 10)] == [2, 3, 4, 6, 7]


def test_stderr_detection_compares_device_and_inode(tmp_path):
    with open(tmp_path / "stream", "w") as f:
        st = os.fstat(f.fileno())
        good = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert journal.stderr_is_journal(good, fd=f.fileno())
        assert not journal.stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, fd=f.fileno())
        assert not journal.stderr_is_journal({"JOURNAL_STREAM": "garbage"}, fd=f.fileno())
        assert not journal.stderr_is_journal({}, fd=f.fileno())


def test_no_handler_outside_systemd():
    assert journal.journal_handler(env={}) is None


def test_send_failure_is_handled_not_raised(tmp_path, capsys):
    handler = journal.JournalHandler(sender=journal._NativeSender(str(tmp_path / "nobody.sock")))
    lg = logging.getLogger("tests.system.journal.broken")
    lg.addHandler(handler)
    lg.propagate = False
    try:
        logging.raiseExceptions, previous = True, logging.raiseExceptions
        lg.error("still here")
    finally:
        logging.raiseExceptions = previous
        lg.removeHandler(handler)
        handler.close()
    assert "Logging error" in capsys.readouterr().err
