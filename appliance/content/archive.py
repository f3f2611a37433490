"""Reading a bundle safely, whether it is a ``.zip`` or an unpacked directory (a USB stick).

Nothing here trusts the bundle: every member name is checked for path tricks before use, symlinks and
special files are refused (a FIFO would hang the import, a symlink could read /etc/shadow into a
course), and sizes are bounded twice: by what the archive declares (cheap, before any work) and by the
bytes actually produced while reading (a zip header may lie about ``file_size``).
"""
from __future__ import annotations

import logging
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from appliance.errors import ImportRejected

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# Below this size a member cannot be a meaningful bomb, whatever its ratio (a tiny all-zero file
# compresses 1000:1 and is harmless); the absolute limit still counts it.
RATIO_FLOOR = 64 * 1024
_ALLOWED_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}


@dataclass(frozen=True)
class Limits:
    max_total_bytes: int
    max_ratio: float
    max_files: int
    max_manifest_bytes: int

    @classmethod
    def from_config(cls, cfg) -> Limits:
        c = cfg.content
        return cls(c.max_bundle_mb * 1024 * 1024, float(c.max_compression_ratio), c.max_files,
                   c.max_manifest_mb * 1024 * 1024)


def check_member_name(name: str) -> None:
    """Refuse names that could escape the bundle or mean different things on different systems."""
    if not name or len(name) > 512:
        raise ImportRejected(f"bundle member name {name[:80]!r} is empty or too long.")
    if "\\" in name:
        raise ImportRejected(f"bundle member {name!r} contains a backslash; refusing a path that could escape the bundle.")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ImportRejected(f"bundle member {name!r} is an absolute path; refusing it.")
    parts = name.rstrip("/").split("/")
    if any(p in ("..", ".", "") for p in parts):
        raise ImportRejected(f"bundle member {name!r} contains '..' or an empty part (path traversal); refusing it.")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise ImportRejected(f"bundle member {name!r} contains control characters.")


class Source:
    """Members of a bundle by POSIX name -> size, and a bounded way to read them."""

    label: str
    sizes: dict[str, int]

    def iter_bytes(self, name: str) -> Iterator[bytes]:
        raise NotImplementedError

    def read(self, name: str, max_bytes: int) -> bytes:
        if self.sizes[name] > max_bytes:
            raise ImportRejected(f"{name} is {self.sizes[name]} bytes; the limit is {max_bytes}.")
        return b"".join(self.iter_bytes(name))

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_totals(self, limits: Limits) -> None:
        total = sum(self.sizes.values())
        if total > limits.max_total_bytes:
            raise ImportRejected(
                f"{self.label} unpacks to {total / 2**20:.1f} MB, more than the limit of "
                f"{limits.max_total_bytes / 2**20:.0f} MB (content.max_bundle_mb)."
            )


class ZipSource(Source):
    def __init__(self, path: Path, limits: Limits):
        self.label = path.name
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise ImportRejected(f"{path.name} is not a readable zip file ({exc}).") from None
        try:
            self._infos = self._scan(limits)
        except BaseException:
            self._zip.close()
            raise
        self.sizes = {n: i.file_size for n, i in self._infos.items()}
        self._check_totals(limits)

    def _scan(self, limits: Limits) -> dict[str, zipfile.ZipInfo]:
        infos: dict[str, zipfile.ZipInfo] = {}
        members = self._zip.infolist()
        if len(members) > limits.max_files:
            raise ImportRejected(f"{self.label} has {len(members)} files; the limit is {limits.max_files} (content.max_files).")
        for info in members:
            check_member_name(info.orig_filename)
            check_member_name(info.filename)
            mode = info.external_attr >> 16
            if info.create_system == 3 and stat.S_IFMT(mode) == stat.S_IFLNK:
                raise ImportRejected(f"bundle member {info.filename!r} is a symbolic link; links are not allowed.")
            if info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise ImportRejected(f"bundle member {info.filename!r} is not a regular file.")
            if info.is_dir():
                continue
            if info.flag_bits & 0x1:
                raise ImportRejected(f"bundle member {info.filename!r} is encrypted; bundles cannot use zip passwords.")
            if info.compress_type not in _ALLOWED_METHODS:
                raise ImportRejected(f"bundle member {info.filename!r} uses an unsupported compression method.")
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > RATIO_FLOOR and ratio > limits.max_ratio:
                raise ImportRejected(
                    f"bundle member {info.filename!r} expands {ratio:.0f} times (limit {limits.max_ratio:.0f}, "
                    "content.max_compression_ratio): this looks like a zip bomb."
                )
            if info.filename in infos:
                raise ImportRejected(f"bundle member {info.filename!r} appears twice; refusing an ambiguous archive.")
            infos[info.filename] = info
        return infos

    def iter_bytes(self, name: str) -> Iterator[bytes]:
        info = self._infos[name]
        produced = 0
        try:
            with self._zip.open(info) as fh:
                while chunk := fh.read(CHUNK):
                    produced += len(chunk)
                    if produced > info.file_size:
                        raise ImportRejected(f"bundle member {name!r} is larger than its header says; refusing it.")
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ImportRejected(f"bundle member {name!r} is damaged ({exc}).") from None
        if produced != info.file_size:
            raise ImportRejected(f"bundle member {name!r} is shorter than its header says.")

    def close(self) -> None:
        self._zip.close()


class DirSource(Source):
    """An unpacked bundle. Files are opened relative to directory descriptors with O_NOFOLLOW, so a
    symlink swapped in after the scan still cannot redirect a read."""

    def __init__(self, path: Path, limits: Limits):
        self.label = f"directory {path}"
        try:
            self._root = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            raise ImportRejected(f"cannot open directory {path}: {exc.strerror}.") from None
        self.sizes = {}
        try:
            self._walk(self._root, "", limits, depth=0)
            self._check_totals(limits)
        except OSError as exc:
            os.close(self._root)
            # e.g. a USB stick's unreadable system folder: say which, rather than fail obscurely.
            raise ImportRejected(f"cannot read {exc.filename or 'a file'} in {self.label}: {exc.strerror}.") from None
        except BaseException:
            os.close(self._root)
            raise

    def _walk(self, dir_fd: int, prefix: str, limits: Limits, depth: int) -> None:
        if depth > 8:
            raise ImportRejected(f"{self.label} nests folders too deeply under {prefix!r}.")
        for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
            name = prefix + entry.name
            check_member_name(name)
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise ImportRejected(f"{name!r} in {self.label} is a symbolic link; links are not allowed.")
            if stat.S_ISDIR(st.st_mode):
                sub = os.open(entry.name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
                try:
                    self._walk(sub, name + "/", limits, depth + 1)
                finally:
                    os.close(sub)
            elif stat.S_ISREG(st.st_mode):
                self.sizes[name] = st.st_size
                if len(self.sizes) > limits.max_files:
                    raise ImportRejected(f"{self.label} has more than {limits.max_files} files (content.max_files).")
            else:
                raise ImportRejected(f"{name!r} in {self.label} is not a regular file.")

    def _open(self, name: str) -> int:
        fd = self._root
        parts = name.split("/")
        opened: list[int] = []
        try:
            for part in parts[:-1]:
                fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                opened.append(fd)
            return os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError as exc:
            raise ImportRejected(f"cannot read {name!r} from {self.label}: {exc.strerror}.") from None
        finally:
            for d in opened:
                os.close(d)

    def iter_bytes(self, name: str) -> Iterator[bytes]:
        expected = self.sizes[name]
        fd = self._open(name)
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ImportRejected(f"{name!r} in {self.label} is not a regular file.")
            produced = 0
            while chunk := fh.read(CHUNK):
                produced += len(chunk)
                if produced > expected:
                    raise ImportRejected(f"{name!r} in {self.label} changed while it was being imported.")
                yield chunk
        if produced != expected:
            raise ImportRejected(f"{name!r} in {self.label} changed while it was being imported.")

    def close(self) -> None:
        os.close(self._root)


def open_source(path: str | os.PathLike, limits: Limits) -> Source:
    p = Path(path)
    if p.is_dir():
        return DirSource(p, limits)
    if p.is_file():
        return ZipSource(p, limits)
    raise ImportRejected(f"{p} is neither a course bundle (.zip) nor a folder holding course.json.")
