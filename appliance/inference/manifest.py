"""What one version of a model is, read from its folder: names, the manifest (``model.json``) and
its checks, the ``ModelVersion`` it describes, and the file helpers every writer of the repository
shares (sha256 of a file, atomic durable replacement). The repository (``repository``) lists,
activates and imports versions; this module knows nothing of ACTIVE, HISTORY or signatures.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import BadRequest, IntegrityError, NotFound
from appliance.inference.backends import DEFAULT_FILES
from appliance.inference.tensors import TensorSpec

log = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


# Files that sit beside a model's versions: a version of one of these names would be taken for them.
RESERVED_VERSION_NAMES = frozenset({"ACTIVE", "HISTORY"})


def check_name(kind: str, value: str) -> str:
    """Model and version names end up in paths and URLs: refuse anything but a plain name."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise BadRequest(f"{kind} name {value!r} is not valid (letters, digits, '.', '_', '-'; up to 64)")
    if kind == "version" and value in RESERVED_VERSION_NAMES:
        raise BadRequest(f"version name {value!r} is taken by the file that records the active version")
    return value


def version_key(v: str):
    # Numeric versions sort as numbers (Triton's convention); others after them, alphabetically.
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def write_atomic(path: Path, data: str | bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` whole or not at all, durably (a full disk or a power cut leaves
    the old file). ``mode``: mkstemp makes 0600 files, which another user (the service) cannot read.
    Used for ACTIVE/HISTORY, signed manifests and cached TensorRT engines."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, str):
                data = data.encode("utf-8")
            try:
                os.fchmod(f.fileno(), mode)
            except PermissionError:  # a file system without Unix modes (a FAT USB stick): nothing to set
                pass
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)  # the rename itself survives a power cut
    finally:
        os.close(dfd)


def _relative_file(value, where: str, key: str) -> str:
    """A file named by a manifest: a plain relative path inside the version directory."""
    if not isinstance(value, str) or not value or value.startswith("/") or "\\" in value \
            or any(part in ("", ".", "..") for part in value.split("/")):
        raise IntegrityError(f"{where}: {key} {value!r} points outside its version directory (name a relative path inside it)")
    return value


def _non_negative(meta: dict, key: str, kind: type, where: str) -> None:
    value = meta.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, kind) or value < 0:
        what = "a whole number" if kind is int else "a number"
        raise IntegrityError(f"{where}: {key} must be {what} of at least 0, not {value!r}")


def check_manifest(meta, where: str) -> dict:
    """The checks every model.json passes before anything uses it (import, list, load), each naming
    the key at fault: a typo in a hand-written manifest is a message, never a traceback."""
    if not isinstance(meta, dict):
        raise IntegrityError(f"{where}: model.json must be a JSON object")
    sha = meta.get("sha256")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise IntegrityError(f"{where}: model.json needs the model file's sha256 (64 lowercase hex digits)")
    for key in ("name", "backend"):
        if key in meta and not isinstance(meta[key], str):
            raise IntegrityError(f"{where}: {key} must be a string")
    if "file" in meta:
        _relative_file(meta["file"], where, "file")
    files = meta.get("files")
    if files is not None:
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise IntegrityError(f"{where}: files must map file names to their sha256")
        for rel in files:
            _relative_file(rel, where, "file")
    for key in ("inputs", "outputs"):
        if key in meta and not isinstance(meta[key], list):
            raise IntegrityError(f"{where}: {key} must be a list of tensors")
    _non_negative(meta, "max_batch_size", int, where)
    _non_negative(meta, "max_queue_delay_ms", (int, float), where)
    for key in ("dynamic_batching", "trt_int8_native_table"):
        if key in meta and not isinstance(meta[key], bool):
            raise IntegrityError(f"{where}: {key} must be true or false")
    _check_optional_keys(meta, where)
    return meta


# Keys whose values the code reads as objects: a hand-written string or list there used to surface
# as a TypeError (a traceback from `models list` or `quantize`, "string indices must be integers"
# from a load) instead of naming the key. ``null`` is taken as absent, as the code reads it.
_OBJECT_KEYS = ("metrics", "provenance", "trt_profile")


def _check_optional_keys(meta: dict, where: str) -> None:
    for key in _OBJECT_KEYS:
        if meta.get(key) is not None and not isinstance(meta[key], dict):
            raise IntegrityError(f"{where}: {key} must be an object")
    padding = meta.get("batch_padding")
    if padding is not None and not (isinstance(padding, dict) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in padding.values())):
        raise IntegrityError(f"{where}: batch_padding must map input names to a pad value, like {{\"input_ids\": 0}}")
    warmup = meta.get("warmup")
    if warmup is not None and not (isinstance(warmup, list) and all(isinstance(t, dict) for t in warmup)):
        raise IntegrityError(f"{where}: warmup must be a list of OIP JSON tensors (name, datatype, shape, data)")
    table = meta.get("trt_int8_calibration_table")
    if table is not None:
        _relative_file(table, where, "trt_int8_calibration_table")


def read_manifest(path: Path, where: str) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"{where} has no model.json") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{where}: model.json cannot be read: {exc}") from None
    return check_manifest(meta, where)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    path: Path
    meta: dict = field(repr=False)

    @property
    def backend(self) -> str | None:
        return self.meta.get("backend")

    @property
    def sha256(self) -> str:
        return self.meta["sha256"]

    def serving_backend(self, settings) -> str:
        """The backend this version runs on here: the one model.json names (a shipped TensorRT engine can
        run nowhere else), else ONNX Runtime for a model kept on the CPU (``inference.cpu_models``), else
        ``inference.backend``."""
        if self.backend:
            return self.backend
        return "onnxruntime" if self.name in settings.cpu_models else settings.backend

    def model_file_name(self, backend: str) -> str:
        """The model file, relative to the version directory (what is hashed is what is loaded)."""
        return self.meta.get("file", DEFAULT_FILES.get(backend, "model.onnx"))

    def model_file(self, backend: str) -> Path:
        return self.path / self.model_file_name(backend)

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec.from_json(t, f"{self.name}/{self.version}/model.json") for t in self.meta.get("inputs", [])]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec.from_json(t, f"{self.name}/{self.version}/model.json") for t in self.meta.get("outputs", [])]
