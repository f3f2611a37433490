"""The model repository on disk, Triton-style: ``<repo>/<model>/<version>/`` with a ``model.json``.

``model.json`` (the manifest) says which file to load and its sha256, the extra files and their sha256
(``files``), the tensors (OIP ``inputs``/``outputs``), batching hints (``max_batch_size``,
``max_queue_delay_ms``), an Ed25519 ``signature`` (see ``signing``), ``metrics`` and ``provenance``.
Nothing is loaded before every hash (and, when keys are configured, the signature) checks out. How a
manifest is read and checked, and the ``ModelVersion`` it describes, is in ``manifest``.

One version per model is active, named in ``<repo>/<model>/ACTIVE``; ``HISTORY`` is the stack of
activations that ``rollback`` pops. Both are replaced by atomic rename under a lock file, so a crash
or two admins at once leave either the old or the new state, never half of one. Without ACTIVE the
highest version is active (a freshly built repository needs no extra step); so importing a version
into a model that has none first pins the one being served, and a new version never goes live by
merely being the highest (``import_version(pin_current=...)``).

Everything written here is world-readable (version folders 0755, files 0644, whatever the umask): an
admin running the CLI as root must not leave a version or ACTIVE unreadable to the web service's user.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from appliance.errors import AppError, BadRequest, Conflict, IntegrityError, NotFound
from appliance.inference.manifest import (
    NAME_RE,
    RESERVED_VERSION_NAMES,
    ModelVersion,
    check_name,
    read_manifest,
    sha256_file,
    version_key,
    write_atomic,
)
from appliance.inference.signing import verify_manifest

log = logging.getLogger(__name__)

def _has_manifest(version_dir: Path) -> bool:
    try:
        return (version_dir / "model.json").is_file()
    except PermissionError:  # e.g. made by root with a strict umask: listed, so loading it says why
        log.warning("cannot read %s (permission denied)", version_dir)
        return True


_DAMAGE_CHECKS: dict[tuple, str | None] = {}  # (version dir, file stamps, sha256) -> why damaged, or None
_DAMAGE_LOCK = threading.Lock()


def stat_stamp(path: Path) -> tuple[int, int]:
    """(size, mtime in ns) of a file, (-1, -1) when it is not there: whether it changed, without reading it."""
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


class Repository:
    def __init__(self, root: str | os.PathLike, trusted_keys: list[str] | None = None, *, trust_own_key: bool = False):
        self.root = Path(root)
        self.configured_keys = list(trusted_keys or [])
        self.trust_own_key = trust_own_key

    @classmethod
    def for_serving(cls, root: str | os.PathLike, trusted_keys: list[str] | None = None) -> Repository:
        """The repository as the engine serves it: when keys are configured, this box's own key
        (``own_key``: what it built itself, the default models and ``models quantize``) is trusted
        next to them. A hub's global versions are checked by the federated code against the hub's
        keys only (``federated.models.open_repository``)."""
        return cls(root, trusted_keys, trust_own_key=True)

    @property
    def trusted_keys(self) -> list[str]:
        """Read at each check, not once: the engine starts before the first build makes the key."""
        keys = list(self.configured_keys)
        if keys and self.trust_own_key:
            from appliance.inference.own_key import own_public_key

            own = own_public_key(self.root)
            if own and own not in keys:
                keys.append(own)
        return keys

    # -- reading -------------------------------------------------------------------------------
    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and NAME_RE.match(p.name) and self.versions(p.name))

    def versions(self, name: str) -> list[str]:
        d = self.root / check_name("model", name)
        if not d.is_dir():
            return []
        found = [p.name for p in d.iterdir() if p.is_dir() and NAME_RE.match(p.name)
                 and p.name not in RESERVED_VERSION_NAMES and _has_manifest(p)]
        return sorted(found, key=version_key)

    def _no_version(self, name: str, version: str) -> NotFound:
        """"No such version", or "no such model" when the model itself is missing (an admin who
        typed the model's name wrong should not go looking for versions)."""
        if not (self.root / name).is_dir():
            return NotFound(f"there is no model {name!r} in {self.root}")
        return NotFound(f"model {name!r} has no version {version!r}")

    def version(self, name: str, version: str) -> ModelVersion:
        path = self.root / check_name("model", name) / check_name("version", version)
        if not path.is_dir():
            raise self._no_version(name, version)
        meta = read_manifest(path / "model.json", f"{name}/{version}")
        if meta.get("name", name) != name:
            raise IntegrityError(f"{name}/{version}/model.json names model {meta.get('name')!r}")
        return ModelVersion(name, version, path, meta)

    def active_version(self, name: str) -> str | None:
        active = self.root / check_name("model", name) / "ACTIVE"
        try:
            value = active.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            # Nothing pinned: the highest version that can serve. A damaged copy, or an unsigned one
            # on a box that loads only signed models, is passed over, as rollback passes over it:
            # taken as the highest, it stopped the model at the next start although a good version
            # lay beside it. When none can serve, the highest, whose refusal the status then reports.
            versions = self.versions(name)
            for v in reversed(versions):
                if self.unservable(name, v) is None:
                    return v
            return versions[-1] if versions else None
        return value or None  # an empty ACTIVE serves nothing; `models` commands say so

    def history(self, name: str) -> list[str]:
        try:
            text = (self.root / check_name("model", name) / "HISTORY").read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    # -- checking ------------------------------------------------------------------------------
    def verify(self, mv: ModelVersion, backend: str, where: str | None = None) -> None:
        """Every file's sha256, then the signature (when keys are configured). Raises IntegrityError."""
        where = where or f"model {mv.name} version {mv.version}"
        self.verify_files(mv, backend, where)
        verify_manifest(mv.meta, self.trusted_keys, where)

    def unsigned(self, name: str, version: str) -> str | None:
        """Why a version's signature is refused here (None with no keys configured, or when a trusted
        key signed it, or when it cannot be read as a version: that is the loader's to report)."""
        keys = self.trusted_keys
        if not keys:
            return None
        try:
            meta = self.version(name, version).meta
        except AppError:
            return None
        try:
            verify_manifest(meta, keys, f"model {name} version {version}")
        except AppError as exc:
            return exc.message
        return None

    def unservable(self, name: str, version: str) -> str | None:
        """Why this version cannot serve here: damaged files, or a signature this box refuses."""
        return self.damaged(name, version) or self.unsigned(name, version)

    def damaged(self, name: str, version: str) -> str | None:
        """Why a version's files do not match their sha256, or its model.json cannot be read (None when
        all is well). Remembered per file size and mtime: the admin page asks on every view, and hashing
        an embedding model each time would cost a second of CPU."""
        try:
            mv = self.version(name, version)
            backend = mv.meta.get("backend") or "onnxruntime"
            files = [mv.model_file_name(backend), *(mv.meta.get("files") or {})]
            stamp = tuple((rel, *stat_stamp(mv.path / rel)) for rel in files)
        except AppError as exc:  # a model.json that cannot be read: no version to serve or roll back to
            return exc.message
        key = (str(mv.path), stamp, mv.sha256)
        with _DAMAGE_LOCK:
            if key in _DAMAGE_CHECKS:
                return _DAMAGE_CHECKS[key]
        try:
            self.verify_files(mv, backend)
            why = None
        except IntegrityError as exc:
            why = exc.message
        with _DAMAGE_LOCK:
            _DAMAGE_CHECKS[key] = why
            while len(_DAMAGE_CHECKS) > 256:
                _DAMAGE_CHECKS.pop(next(iter(_DAMAGE_CHECKS)))
        return why

    @staticmethod
    def verify_files(mv: ModelVersion, backend: str, where: str | None = None) -> None:
        """Every file's sha256 (not the signature). Raises IntegrityError."""
        where = where or f"model {mv.name} version {mv.version}"
        files = {mv.model_file_name(backend): mv.sha256, **(mv.meta.get("files") or {})}
        for rel, want in files.items():
            target = (mv.path / rel).resolve()
            if mv.path.resolve() not in target.parents:
                raise IntegrityError(f"{where}: file {rel!r} points outside its version directory")
            if not target.is_file():
                raise IntegrityError(f"{where}: file {rel} is missing")
            if sha256_file(target) != want:
                raise IntegrityError(f"{where}: {rel} does not match its sha256 (damaged or altered)")

    # -- changing ------------------------------------------------------------------------------
    @contextmanager
    def _locked(self, name: str):
        d = self.root / check_name("model", name)
        d.mkdir(parents=True, exist_ok=True)
        # Read-only: a lock file root created (a CLI run as root) must not stop the service's user.
        fd = os.open(d / ".lock", os.O_RDONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield d
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def set_active(self, name: str, version: str) -> None:
        """Make ``version`` the active one (the caller has verified it)."""
        if version not in self.versions(name):
            raise self._no_version(name, version)
        with self._locked(name) as d:
            stack = self.history(name)
            current = self.active_version(name)
            if current and (not stack or stack[-1] != current):
                stack.append(current)  # ACTIVE written by hand, or a version older than HISTORY
            if not stack or stack[-1] != version:
                stack.append(version)
            # ACTIVE first: a crash between the two leaves HISTORY one short, which the next activate
            # repairs (above) and rollback reads right. HISTORY first left a version on top that never
            # served, and rollback went to it.
            write_atomic(d / "ACTIVE", version + "\n")
            write_atomic(d / "HISTORY", "\n".join(stack[-100:]) + "\n")
        log.info("model %s: version %s is now active", name, version)

    def rollback_target(self, name: str) -> str:
        """The version that was active before the current one, is still on disk, whose files match
        their sha256 and, with keys configured, whose signature is trusted; else the one before that,
        and so on down the history, then the highest such version below the current one. One that
        cannot serve is passed over rather than ending the search: the admin who rolls back wants
        the last version that can serve."""
        current = self.active_version(name)
        available = set(self.versions(name))
        if not available:
            raise NotFound(f"model {name!r} is not in {self.root}")  # not "no earlier version" (a 409)
        history = [v for v in self.history(name) if v in available and v != current]
        older = [v for v in sorted(available, key=version_key) if current and version_key(v) < version_key(current)]
        seen: set[str] = set()
        for v in [*reversed(history), *reversed(older)]:
            if v in seen:
                continue
            seen.add(v)
            if self.unservable(name, v) is None:
                return v
        if seen:
            raise Conflict(f"model {name!r} has no earlier version to roll back to that can serve (versions"
                           f" {', '.join(sorted(seen, key=version_key))} are damaged or not signed by a trusted key)")
        raise Conflict(f"model {name!r} has no earlier version to roll back to")

    def mark_rolled_back(self, name: str, target: str, expected_current: str | None) -> None:
        """Pop the history down to ``target`` and make it active, if ``expected_current`` (the version
        active when the target was chosen) still is: another admin's activate meanwhile must not be
        undone without a word."""
        with self._locked(name) as d:
            now_active = self.active_version(name)
            if now_active != expected_current:
                raise Conflict(f"model {name!r}: version {now_active} was activated while this rollback ran (it started"
                               f" from {expected_current}); nothing changed, roll back again if meant")
            stack = self.history(name)
            while stack and stack[-1] != target:
                stack.pop()
            if not stack:
                stack = [target]
            write_atomic(d / "HISTORY", "\n".join(stack) + "\n")
            write_atomic(d / "ACTIVE", target + "\n")
        log.info("model %s: rolled back to version %s", name, target)

    def import_version(self, src: Path, name: str | None = None, version: str | None = None, *,
                       pin_current: bool = True, sign_key: str | None = None,
                       before_publish=None) -> ModelVersion:
        """Copy a version directory into the repository, all or nothing: its model.json and the files
        it names (nothing else, so a stray file or a dangling link next to them is not carried along).

        ``pin_current``: a model without ACTIVE serves its highest version, so unless the caller wants
        exactly that (the default-model builder, the hub's plain models), ACTIVE is first written with
        the version being served: a new version then serves only once someone activates it.
        ``sign_key``: sign the manifest with this Ed25519 private key (base64) on the way in.
        ``before_publish(staged ModelVersion)``: a last check on the verified copy before it appears
        (``import --activate`` loads and warms it there, so a version that cannot load never appears).
        """
        src = Path(src)
        meta = read_manifest(src / "model.json", str(src))
        # resolve(): "import ." is named by the folder above the version's, not ''.
        name = check_name("model", name or meta.get("name") or src.resolve().parent.name)
        if meta.get("name", name) != name:
            # Renaming would change the signed manifest; the publisher must name it.
            raise BadRequest(f"{src}/model.json names model {meta['name']!r}, not {name!r}")
        if sign_key is not None:
            from appliance.inference.signing import sign_manifest

            meta = sign_manifest(meta, sign_key)
        if version is None:
            existing = [v for v in self.versions(name) if v.isdigit()]
            version = str(max((int(v) for v in existing), default=0) + 1)
        check_name("version", version)
        final = self.root / name / version
        if final.exists():
            raise Conflict(f"model {name!r} already has a version {version!r}")
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".import-{version}-"))
        try:
            os.chmod(staging, 0o755)  # mkdtemp makes it 0700: the web service's user must read it
            mv = ModelVersion(name, version, staging, meta)
            self._copy_named_files(src, mv, signed_here=sign_key is not None)
            self.verify(mv, mv.backend or "onnxruntime", where=f"{src} (to be {name} version {version})")
            if before_publish is not None:
                before_publish(mv)
            with self._locked(name) as d:
                if pin_current and not (d / "ACTIVE").exists():
                    current = self.active_version(name)
                    if current is not None:
                        write_atomic(d / "ACTIVE", current + "\n")
                if final.exists():  # another import took the number while this one copied and checked
                    raise Conflict(f"model {name!r} got a version {version!r} while this import ran; import again")
                os.rename(staging, final)  # the version appears whole or not at all
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return self.version(name, version)

    @staticmethod
    def _copy_named_files(src: Path, mv: ModelVersion, signed_here: bool) -> None:
        named = {mv.model_file_name(mv.backend or "onnxruntime"), *(mv.meta.get("files") or {})}
        for rel in named:
            source = src / rel
            if not source.is_file():
                raise IntegrityError(f"{src}: file {rel} named in model.json is missing")
            (mv.path / rel).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            shutil.copyfile(source, mv.path / rel)
            os.chmod(mv.path / rel, 0o644)
        left = sorted(str(p.relative_to(src)) for p in src.rglob("*")
                      if p.is_file() and p.name != "model.json" and str(p.relative_to(src)) not in named)
        if left:  # only hashed files are carried: a tokenizer the manifest forgot would be unverified
            log.warning("%s: not imported, because model.json does not name them in 'files': %s", src, ", ".join(left))
        if signed_here:
            write_atomic(mv.path / "model.json", json.dumps(mv.meta, indent=2) + "\n")
        else:
            shutil.copyfile(src / "model.json", mv.path / "model.json")  # byte for byte, as published
            os.chmod(mv.path / "model.json", 0o644)
