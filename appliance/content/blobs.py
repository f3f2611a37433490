"""The content-addressed blob store shared by every course.

A blob is a file at ``<root>/<aa>/<sha256>`` with a row in ``blobs`` (size, mime, pinned, last access).
The name is the hash of the bytes, so the same picture used by two courses is stored once, and a file
can never change under a URL. Blobs referenced by an installed course are *pinned*; the others (left
by an upgrade or a removed course) are evicted least-recently-used first when the quota needs room.

Writes are atomic: bytes go to a staging directory on the same filesystem, are fsynced, and are renamed
into place. Placing files and evicting them happen under one file lock (``flock``), so a CLI import and
the web process cannot evict a blob that the other is about to reference.
"""
from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from appliance.errors import ImportRejected, IntegrityError
from appliance.store import Database

log = logging.getLogger(__name__)

ACCESS_FLUSH_S = 300.0  # last_access is for LRU ordering; minutes of precision are plenty


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staging:
    """Incoming blobs, hashed while written, in a private directory next to the store."""

    def __init__(self, root: Path):
        self.dir = root / ".staging" / uuid.uuid4().hex
        self.dir.mkdir(parents=True)
        self.files: dict[str, Path] = {}
        # Held while the import runs, so ``recover`` in another process (a restarting web worker)
        # can tell a live staging directory from one left by a crash.
        self._held = os.open(self.dir / ".held", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._held, fcntl.LOCK_EX)

    def put(self, chunks: Iterable[bytes], sha256: str, size: int, label: str,
            on_bytes: Callable[[int], None] | None = None, keep: bool = True) -> None:
        """Write ``chunks``, check they hash to ``sha256`` and are ``size`` bytes, else IntegrityError.

        With ``keep=False`` the bytes are only verified (the store already has that blob)."""
        h = hashlib.sha256()
        n = 0
        path = self.dir / sha256
        with open(path, "wb") if keep else contextlib.nullcontext() as out:
            for chunk in chunks:
                h.update(chunk)
                n += len(chunk)
                if n > size:
                    raise IntegrityError(f"asset '{label}' is larger than the {size} bytes course.json declares.")
                if out is not None:
                    out.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
            if out is not None:
                out.flush()
                os.fsync(out.fileno())
        if n != size:
            raise IntegrityError(f"asset '{label}' is {n} bytes but course.json declares {size}.")
        if h.hexdigest() != sha256:
            raise IntegrityError(f"asset '{label}' does not match its sha256 in course.json: the bundle is damaged or was changed.")
        if keep:
            self.files[sha256] = path

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        os.close(self._held)

    @staticmethod
    def abandoned(path: Path) -> bool:
        """True when no live import holds the staging directory ``path``."""
        try:
            fd = os.open(path / ".held", os.O_RDWR)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)


class BlobStore:
    def __init__(self, root: str | os.PathLike, db: Database, quota_bytes: int, cache_dir: str | os.PathLike | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.db = db
        self.quota_bytes = quota_bytes
        self.gz_root = Path(cache_dir) / "blobs-gz" if cache_dir else self.root / ".gz"
        self._access: dict[str, float] = {}
        self._access_lock = threading.Lock()
        self._last_flush = time.monotonic()

    # -- paths and reading -----------------------------------------------------------------------
    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def known(self, shas: Iterable[str]) -> set[str]:
        """Which of ``shas`` the store holds (row and file)."""
        shas = list(shas)
        with self.db.read() as conn:
            rows = {r[0] for r in conn.execute(
                "SELECT sha256 FROM blobs WHERE sha256 IN (SELECT value FROM json_each(?))", (_json_list(shas),))}
        return {s for s in rows if self.path(s).is_file()}

    def open(self, sha256: str):
        return open(self.path(sha256), "rb")

    def gzipped(self, sha256: str) -> Path:
        """A gzip copy of a blob for text types, made on first use (a rebuildable cache)."""
        target = self.gz_root / sha256[:2] / f"{sha256}.gz"
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{uuid.uuid4().hex}.tmp")
        # mtime=0 and no file name: the same blob always compresses to the same bytes.
        with (self.open(sha256) as src, open(tmp, "wb") as raw,
              gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz):
            shutil.copyfileobj(src, gz, 1 << 16)
        os.replace(tmp, target)
        return target

    # -- LRU bookkeeping -------------------------------------------------------------------------
    def touch(self, sha256: str) -> None:
        """Note a read. Kept in memory and written in one batch now and then, so serving an asset
        does not cost a database write."""
        now = time.time()
        with self._access_lock:
            self._access[sha256] = now
            due = time.monotonic() - self._last_flush > ACCESS_FLUSH_S
        if due:
            self.flush_access()

    def flush_access(self) -> None:
        with self._access_lock:
            pending, self._access = self._access, {}
            self._last_flush = time.monotonic()
        if pending:
            self.db.write(lambda c: c.executemany(
                "UPDATE blobs SET last_access = max(last_access, ?) WHERE sha256 = ?",
                [(t, s) for s, t in pending.items()]))

    # -- writing ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def staging(self) -> Iterator[Staging]:
        st = Staging(self.root)
        try:
            yield st
        finally:
            st.discard()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive across threads and processes: placing, pinning and evicting blobs."""
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def place(self, staged: dict[str, Path]) -> None:
        """Move verified staged files into the store (call under ``locked()``). Invisible until a
        ``blobs`` row and a course reference them, so a crash here leaves only orphans for ``recover``."""
        dirs = set()
        for sha, src in staged.items():
            dst = self.path(sha)
            dst.parent.mkdir(exist_ok=True)
            os.replace(src, dst)
            dirs.add(dst.parent)
        for d in dirs:
            _fsync_dir(d)
        if dirs:
            _fsync_dir(self.root)

    @staticmethod
    def register(conn: sqlite3.Connection, blobs: dict[str, tuple[int, str]]) -> None:
        """Inside the import transaction: rows for new blobs, then recompute every pin."""
        now = time.time()
        conn.executemany(
            "INSERT INTO blobs (sha256, size, mime, pinned, last_access) VALUES (?, ?, ?, 0, ?) "
            "ON CONFLICT (sha256) DO UPDATE SET last_access = excluded.last_access",
            [(sha, size, mime, now) for sha, (size, mime) in blobs.items()])
        BlobStore.repin(conn)

    @staticmethod
    def repin(conn: sqlite3.Connection) -> None:
        conn.execute("UPDATE blobs SET pinned = EXISTS (SELECT 1 FROM course_assets a WHERE a.sha256 = blobs.sha256)")

    # -- quota and eviction ----------------------------------------------------------------------
    def usage(self) -> dict:
        with self.db.read() as conn:
            n, used, pinned = conn.execute(
                "SELECT count(*), coalesce(sum(size), 0), coalesce(sum(size * pinned), 0) FROM blobs").fetchone()
        return {"blobs": n, "used_bytes": used, "pinned_bytes": pinned, "quota_bytes": self.quota_bytes}

    def check_room(self, course_id: str, wanted: dict[str, int]) -> None:
        """Refuse an import whose pinned set would not fit the quota or the disk."""
        with self.db.read() as conn:
            other = conn.execute(
                "SELECT sha256, size FROM blobs WHERE sha256 IN "
                "(SELECT sha256 FROM course_assets WHERE course_id != ?)", (course_id,)).fetchall()
            present = {r[0] for r in conn.execute(
                "SELECT sha256 FROM blobs WHERE sha256 IN (SELECT value FROM json_each(?))", (_json_list(wanted),))}
        pinned_after = {r[0]: r[1] for r in other}
        pinned_after.update(wanted)
        total = sum(pinned_after.values())
        if total > self.quota_bytes:
            raise ImportRejected(
                f"not enough room in the content store: installed courses and this one need "
                f"{total / 2**20:.1f} MB, the quota is {self.quota_bytes / 2**20:.0f} MB (content.blob_quota_mb). "
                "Remove a course or raise the quota.")
        new_bytes = sum(size for sha, size in wanted.items() if sha not in present)
        free = shutil.disk_usage(self.root).free
        if new_bytes + (64 << 20) > free:
            raise ImportRejected(f"the disk is too full: this course needs {new_bytes / 2**20:.1f} MB and "
                                 f"{free / 2**20:.0f} MB are free.")

    def evict_to_fit(self, incoming_bytes: int = 0, keep: Iterable[str] = ()) -> list[str]:
        """Evict unpinned blobs, least recently used first, until ``incoming_bytes`` more would fit
        the quota (call under ``locked()``). Returns the evicted hashes."""
        self.flush_access()
        keep = set(keep)
        with self.db.read() as conn:
            used = conn.execute("SELECT coalesce(sum(size), 0) FROM blobs").fetchone()[0]
            candidates = conn.execute(
                "SELECT sha256, size FROM blobs WHERE pinned = 0 ORDER BY last_access, sha256").fetchall()
        evicted = []
        for sha, size in candidates:
            if used + incoming_bytes <= self.quota_bytes:
                break
            if sha in keep:
                continue
            # Row first: a crash between the two steps leaves an orphan file (cleaned by recover),
            # never a row pointing at a missing file.
            gone = self.db.write(lambda c, s=sha: c.execute(
                "DELETE FROM blobs WHERE sha256 = ? AND pinned = 0", (s,)).rowcount)
            if gone:
                self._unlink(sha)
                used -= size
                evicted.append(sha)
        if evicted:
            log.info("evicted %d unpinned blobs to stay within the %d MB quota", len(evicted), self.quota_bytes >> 20)
        return evicted

    def _unlink(self, sha: str) -> None:
        for p in (self.path(sha), self.gz_root / sha[:2] / f"{sha}.gz"):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()

    def recover(self) -> dict:
        """At start: drop staging left by an interrupted import (not one still running in another
        process), files no row knows (a crash between placing and committing; safe because placing
        and committing happen under the same lock), and unpinned rows whose file is gone."""
        with self.locked():
            staging = self.root / ".staging"
            for sub in (staging.iterdir() if staging.is_dir() else ()):
                if Staging.abandoned(sub):
                    shutil.rmtree(sub, ignore_errors=True)
            with self.db.read() as conn:
                rows = {r[0]: r[1] for r in conn.execute("SELECT sha256, pinned FROM blobs")}
            orphans = 0
            for sub in self.root.iterdir():
                if len(sub.name) != 2 or not sub.is_dir():
                    continue
                for f in sub.iterdir():
                    if f.name not in rows:
                        f.unlink()
                        orphans += 1
            missing = [s for s in rows if not self.path(s).is_file()]
            lost_pinned = [s for s in missing if rows[s]]
            unpinned_missing = [s for s in missing if not rows[s]]
            if unpinned_missing:
                self.db.write(lambda c: c.executemany("DELETE FROM blobs WHERE sha256 = ?", [(s,) for s in unpinned_missing]))
        if lost_pinned:
            log.error("%d blobs of installed courses are missing from %s; re-import those courses", len(lost_pinned), self.root)
        return {"orphans_removed": orphans, "missing_pinned": len(lost_pinned)}

    def close(self) -> None:
        try:
            self.flush_access()
        except Exception as exc:  # noqa: BLE001 - LRU order is advisory; losing it must not block shutdown
            log.warning("could not save blob access times: %s", exc)


def _json_list(items: Iterable[str]) -> str:
    return json.dumps(list(items))
