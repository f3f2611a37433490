"""Global model versions in the box's model repository: finding, verifying and reading them.

A global version is used (trained from, evaluated, activated) only after its ONNX file matches the
sha256 in ``model.json`` and the manifest's Ed25519 signature matches a trusted hub key. Unlike locally
built models, a global model is never used unsigned: with no trusted key configured, nothing passes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from appliance.errors import IntegrityError
from appliance.federated.artifact import REPO_VERSION_RE, global_version, read_params
from appliance.learning.features import FeatureSpec

log = logging.getLogger(__name__)


def trusted_keys(cfg) -> list[str]:
    """Hub keys for global models: [federated], else [inference], else [sync] trusted_keys."""
    return list(cfg.federated.trusted_keys or cfg.inference.trusted_keys or cfg.sync.trusted_keys)


def repository_dir(cfg) -> Path:
    repo = cfg.inference.repository
    return Path(repo) if repo else Path(cfg.storage.data_dir) / "models"


def open_repository(cfg):
    from appliance.inference.repository import Repository

    return Repository(repository_dir(cfg), trusted_keys(cfg))


@dataclass
class LoadedGlobal:
    version: int                 # global version number
    repo_version: str            # its directory name in the repository
    params: np.ndarray
    spec: FeatureSpec
    sha256: str


def global_versions(repo, model: str) -> list[tuple[int, str]]:
    """(global version, repository version) of every global version on disk, oldest first."""
    out = []
    for v in repo.versions(model):
        m = REPO_VERSION_RE.match(v)
        if m:
            out.append((int(m.group(1)), v))
    return sorted(out)


def load_verified(repo, model: str, repo_version: str) -> LoadedGlobal:
    """Verify hashes and signature, then read the parameters. Raises ``IntegrityError``."""
    if not repo.trusted_keys:
        raise IntegrityError("no trusted hub key is configured (federated/inference/sync trusted_keys): "
                             "global models are never used unsigned")
    mv = repo.version(model, repo_version)
    repo.verify(mv, mv.backend or "onnxruntime")
    version = global_version(mv.meta)
    if version is None or repo_version != f"g{version:06d}":
        raise IntegrityError(f"model {model} version {repo_version}: model.json does not name global version "
                             f"{repo_version[1:]}")
    params, spec = read_params(mv.path, mv.meta)
    return LoadedGlobal(version, repo_version, params, spec, mv.sha256)


def newest_verified(repo, model: str) -> LoadedGlobal | None:
    """The newest global version that passes verification (older ones are tried if the newest fails)."""
    for version, rv in reversed(global_versions(repo, model)):
        try:
            return load_verified(repo, model, rv)
        except IntegrityError as exc:
            log.warning("global model %s version %d is not usable: %s", model, version, exc.message)
    return None


def load_any(repo, model: str, repo_version: str) -> tuple[np.ndarray, FeatureSpec]:
    """Parameters of any learner version (a locally built default included), hashes checked."""
    mv = repo.version(model, repo_version)
    repo.verify(mv, mv.backend or "onnxruntime")
    return read_params(mv.path, mv.meta)
