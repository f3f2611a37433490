"""A global model as it travels: a signed model-repository version directory.

The hub writes each global version as an ordinary version of the learner model (``model.onnx`` plus a
``model.json`` in the repository's format), signed with the hub key over the whole manifest (which
holds the ONNX file's sha256). So the downlink ships it like any model, the box's repository verifies
it like any model, and the inference engine serves it like any model. The ``federated`` block of the
manifest says which global version it is; the parameters are read back from the ONNX initializers, which
hold the float32 values exactly, so a box trains from the very bytes the hub aggregated.

Global version N lives in repository version ``gNNNNNN``: never a plain number, so it cannot collide
with the versions ``classroom-edge models build`` numbers locally.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path

import numpy as np

from appliance.errors import IntegrityError
from appliance.learning.features import FeatureSpec
from appliance.learning.learner_train import vector_to_params

log = logging.getLogger(__name__)

REPO_VERSION_RE = re.compile(r"^g(\d{6,})$")


def repo_version(version: int) -> str:
    return f"g{int(version):06d}"


def global_version(meta: dict) -> int | None:
    """The global version a model.json describes, or None for a locally built model."""
    fed = meta.get("federated")
    if not isinstance(fed, dict) or not isinstance(fed.get("version"), int):
        return None
    return fed["version"]


def params_sha256(params: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(params, dtype="<f4").tobytes()).hexdigest()


def write_version_dir(dest: Path, *, model: str, version: int, parent: int | None, params: np.ndarray,
                      spec: FeatureSpec, info: dict, signing_key_b64: str | None) -> dict:
    """Write ``model.onnx`` and a signed ``model.json`` into ``dest``; returns the manifest."""
    import onnx

    from appliance.inference.builders.learner import INPUT, OUTPUT, learner_to_onnx
    from appliance.inference.signing import sign_manifest

    dest.mkdir(parents=True, exist_ok=True)
    proto = learner_to_onnx(vector_to_params(spec, params))
    onnx.save(proto, str(dest / "model.onnx"))
    digest = hashlib.sha256((dest / "model.onnx").read_bytes()).hexdigest()
    f = spec.n_features
    manifest = {
        "name": model, "backend": "onnxruntime", "file": "model.onnx", "sha256": digest,
        "inputs": [{"name": INPUT, "datatype": "FP32", "shape": [-1, f]}],
        "outputs": [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, 1]}],
        "task": "knowledge-tracing", "max_batch_size": 256, "dynamic_batching": False,
        "learner_feature_spec": spec.to_dict(),
        "federated": {"version": int(version), "parent": parent, "params_sha256": params_sha256(params), **info},
        "provenance": {"source": {"kind": "federated", "version": int(version)},
                       "builder": "appliance.federated.artifact"},
    }
    if signing_key_b64:
        manifest = sign_manifest(manifest, signing_key_b64)
    (dest / "model.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return manifest


def read_params(version_dir: Path, meta: dict) -> tuple[np.ndarray, FeatureSpec]:
    """The parameter vector [weights..., bias] and feature spec of a learner model version directory."""
    import onnx
    from onnx import numpy_helper

    where = f"{version_dir}"
    try:
        spec = FeatureSpec.from_dict(meta["learner_feature_spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"{where}: model.json has no usable learner_feature_spec ({exc})") from None
    try:
        proto = onnx.load(str(version_dir / meta.get("file", "model.onnx")))
    except Exception as exc:  # noqa: BLE001 - onnx raises OSError, protobuf DecodeError and others
        raise IntegrityError(f"{where}: the ONNX file cannot be read ({exc})") from None
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    if "W" not in inits or "b" not in inits:
        raise IntegrityError(f"{where}: not a learner model (no W/b initializers)")
    w = np.asarray(inits["W"], dtype=np.float32).reshape(-1)
    b = np.asarray(inits["b"], dtype=np.float32).reshape(-1)
    if w.size != spec.n_features or b.size != 1:
        raise IntegrityError(f"{where}: parameters do not match the feature spec")
    params = np.concatenate([w, b]).astype(np.float32)
    want = (meta.get("federated") or {}).get("params_sha256")
    if want and params_sha256(params) != want:
        raise IntegrityError(f"{where}: parameters do not match the params_sha256 of the manifest")
    return params, spec
