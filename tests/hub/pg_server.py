"""A throwaway PostgreSQL (Debian's postgresql package) for the hub's PostgreSQL path.

initdb and postgres refuse to run as root, so both run as the ``postgres`` user in a scratch
directory; the server listens on 127.0.0.1 and an ephemeral port, with trust authentication for that
address only, and is stopped (fast shutdown) at the end.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest


def _bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else None


def unavailable_reason() -> str | None:
    if _bin("initdb") is None:
        return "PostgreSQL is not installed (apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'classroom-edge[hub]')"
    if os.geteuid() != 0:
        return "starting a throwaway PostgreSQL needs root (to run it as the postgres user)"
    return None


@pytest.fixture(scope="module")
def postgres_url():
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    root = Path(tempfile.mkdtemp(prefix="ce-pg-"))
    pw = pwd.getpwnam("postgres")
    os.chown(root, pw.pw_uid, pw.pw_gid)
    data = root / "data"
    as_pg = {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": [], "cwd": str(root)}
    subprocess.run([_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True, timeout=120, **as_pg)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen([_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(root),
                                 "-c", "listen_addresses=127.0.0.1"], stdout=log, stderr=subprocess.STDOUT, **as_pg)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True,
                             check=False).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL did not start: " + (root / "server.log").read_text()[-2000:])
            time.sleep(0.2)
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        proc.send_signal(signal.SIGINT)  # fast shutdown
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(url: str, name: str) -> str:
    """A new empty database on that server; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name
