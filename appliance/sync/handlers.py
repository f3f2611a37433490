"""Where verified downlink payloads go: the model repository and the content importer.

A model payload is a tar archive of one version directory (``model.json`` plus the files it lists), as
``classroom-edge hub publish-model`` builds it; a content payload is a course bundle (``.zip``). Both
have passed the manifest signature and sha256 checks before they get here, and both are checked again
by their own importers (the model's own signature and file hashes, the bundle's signature and asset
hashes), so the downlink adds a layer rather than replacing one.

Activation of a newly imported model is the model policy's decision (see ``appliance.inference`` /
``appliance.federated``), not the transport's: the model is imported, not switched on.
"""
from __future__ import annotations

import logging
import shutil
import tarfile
import tempfile
from pathlib import Path

from appliance.errors import IntegrityError

log = logging.getLogger(__name__)

MAX_MEMBERS = 1000


def pack_model_dir(src: Path, out: Path) -> None:
    """Deterministic tar of a model version directory (the publisher's side of ``unpack_model``)."""
    with tarfile.open(out, "w") as tar:
        for p in sorted(Path(src).rglob("*")):
            if p.is_file():
                info = tar.gettarinfo(str(p), arcname=str(p.relative_to(src)))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                with open(p, "rb") as fh:
                    tar.addfile(info, fh)


def unpack_model(archive: Path, dest: Path) -> None:
    """Extract with the 'data' filter: no absolute paths, no '..', no links out, no devices."""
    try:
        with tarfile.open(archive, "r:") as tar:
            members = tar.getmembers()
            if len(members) > MAX_MEMBERS:
                raise IntegrityError(f"model archive has {len(members)} members; at most {MAX_MEMBERS}")
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise IntegrityError(f"model archive cannot be unpacked: {exc}") from None
    if not (dest / "model.json").is_file():
        raise IntegrityError("model archive has no model.json")


class InstallHandler:
    """``DownlinkHandler`` for a box: imports into this box's repository and course store."""

    def __init__(self, services):
        self.services = services

    def on_model(self, name: str, version: str, path: Path) -> None:
        from appliance.bootstrap import model_repository
        from appliance.inference.repository import Repository

        repo_dir = model_repository(self.services)
        repo_dir.mkdir(parents=True, exist_ok=True)
        repo = Repository(repo_dir, self.services.cfg.inference.trusted_keys)
        if version in repo.versions(name):
            log.info("model %s version %s is already in the repository", name, version)
            return
        tmp = Path(tempfile.mkdtemp(dir=repo_dir, prefix=".downlink-"))
        try:
            unpack_model(path, tmp)
            # The hub's plain models keep their rule: with no ACTIVE the newest serves (the federated
            # model's handler pins what is served and lets its policy decide).
            repo.import_version(tmp, name, version, pin_current=False)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        log.info("model %s version %s imported from the hub (activation is up to the model policy)", name, version)

    def on_content(self, course: str, path: Path) -> None:
        importer = self.services.get("content_importer")
        if importer is None:
            raise RuntimeError("the content store is not attached in this process (appliance.content.attach)")
        result = importer.run(path)
        if result.course_id != course:
            log.warning("bundle announced as %s contained course %s", course, result.course_id)
        log.info("course %s %s from the hub: %s", result.course_id, result.version, result.status)
