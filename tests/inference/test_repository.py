"""The repository refuses anything whose bytes or signature do not check out, and keeps ACTIVE/HISTORY
consistent through activations and rollbacks."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inference_models import affine_model, write_version

from appliance.errors import BadRequest, Conflict, IntegrityError, NotFound
from appliance.inference.repository import Repository
from appliance.inference.signing import sign_manifest


def keypair():
    key = Ed25519PrivateKey.generate()
    priv = base64.b64encode(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())).decode()
    pub = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                         serialization.PublicFormat.Raw)).decode()
    return priv, pub


def sign_dir(d, priv):
    manifest = json.loads((d / "model.json").read_text())
    (d / "model.json").write_text(json.dumps(sign_manifest(manifest, priv)))


def test_intact_version_verifies_and_a_changed_byte_is_refused(repo):
    d = write_version(repo, "m", "1", affine_model(1.0))
    r = Repository(repo)
    r.verify(r.version("m", "1"), "onnxruntime")
    data = bytearray((d / "model.onnx").read_bytes())
    data[-1] ^= 0x01
    (d / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its sha256"):
        r.verify(r.version("m", "1"), "onnxruntime")


def test_extra_files_are_hashed_and_cannot_point_outside(repo):
    d = write_version(repo, "m", "1", affine_model(1.0), files={"tokenizer.json": "0" * 64})
    (d / "tokenizer.json").write_text("{}")
    r = Repository(repo)
    with pytest.raises(IntegrityError, match="tokenizer.json does not match"):
        r.verify(r.version("m", "1"), "onnxruntime")
    write_version(repo, "m", "2", affine_model(1.0), files={"../1/model.onnx": "0" * 64})
    with pytest.raises(IntegrityError, match="outside its version directory"):
        r.verify(r.version("m", "2"), "onnxruntime")


def test_unreadable_manifest_is_an_integrity_error(repo):
    d = write_version(repo, "m", "1", affine_model(1.0))
    (d / "model.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="cannot be read"):
        Repository(repo).version("m", "1")


def test_signature_required_when_keys_are_configured(repo):
    priv, pub = keypair()
    other_priv, _ = keypair()
    unsigned = write_version(repo, "m", "1", affine_model(1.0))
    good = write_version(repo, "m", "2", affine_model(2.0))
    sign_dir(good, priv)
    foreign = write_version(repo, "m", "3", affine_model(3.0))
    sign_dir(foreign, other_priv)
    r = Repository(repo, [pub])
    with pytest.raises(IntegrityError, match="not signed"):
        r.verify(r.version("m", "1"), "onnxruntime")
    r.verify(r.version("m", "2"), "onnxruntime")
    with pytest.raises(IntegrityError, match="does not match any trusted key"):
        r.verify(r.version("m", "3"), "onnxruntime")
    # Without keys nothing is required (a lab box with no hub).
    Repository(repo).verify(Repository(repo).version("m", "1"), "onnxruntime")
    assert unsigned.exists()


def test_signature_covers_the_whole_manifest_and_the_weights(repo):
    priv, pub = keypair()
    d = write_version(repo, "m", "1", affine_model(1.0), metrics={"auc": 0.71})
    sign_dir(d, priv)
    r = Repository(repo, [pub])
    r.verify(r.version("m", "1"), "onnxruntime")
    manifest = json.loads((d / "model.json").read_text())
    manifest["metrics"]["auc"] = 0.99  # a forged claim, not a forged model
    (d / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="signature does not match"):
        r.verify(r.version("m", "1"), "onnxruntime")
    # Swapping weights and fixing up the sha256 to match breaks the signature too.
    other = affine_model(9.0)
    (d / "model.onnx").write_bytes(other)
    import hashlib

    manifest["metrics"]["auc"] = 0.71
    manifest["sha256"] = hashlib.sha256(other).hexdigest()
    (d / "model.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match="signature does not match"):
        r.verify(r.version("m", "1"), "onnxruntime")


def test_activate_and_rollback_keep_a_history(repo):
    for v in ("1", "2", "3"):
        write_version(repo, "m", v, affine_model(float(v)))
    r = Repository(repo)
    assert r.active_version("m") == "3"  # no ACTIVE: the highest version
    r.set_active("m", "1")
    r.set_active("m", "2")
    assert r.active_version("m") == "2"
    assert (repo / "m" / "ACTIVE").read_text() == "2\n"
    assert r.rollback_target("m") == "1"
    r.mark_rolled_back("m", "1")
    assert r.active_version("m") == "1"
    assert r.rollback_target("m") == "3"  # before 1 came the implicit 3
    r.mark_rolled_back("m", "3")
    assert r.history("m") == ["3"]
    assert r.rollback_target("m") == "2"  # history used up: the next lower version
    assert not list((repo / "m").glob(".ACTIVE.*")), "no temporary files left behind"


def test_rollback_with_nothing_older_is_a_conflict(repo):
    write_version(repo, "m", "1", affine_model(1.0))
    with pytest.raises(Conflict, match="no earlier version"):
        Repository(repo).rollback_target("m")
    with pytest.raises(NotFound, match="'nosuch' is not in"):  # a typo is a 404, not "no earlier version"
        Repository(repo).rollback_target("nosuch")


def test_rollback_passes_over_a_damaged_version_to_the_last_one_that_can_serve(repo):
    for v in ("1", "2", "3"):
        write_version(repo, "m", v, affine_model(float(v)))
    r = Repository(repo)
    for v in ("1", "2", "3"):
        r.set_active("m", v)
    (repo / "m" / "2" / "model.onnx").write_bytes(b"not the model any more")
    assert r.rollback_target("m") == "1"  # 2 came before 3, but its file no longer matches its sha256
    (repo / "m" / "1" / "model.onnx").write_bytes(b"nor this one")
    with pytest.raises(Conflict, match="versions 1, 2 are damaged or not signed"):
        r.rollback_target("m")


def test_import_is_all_or_nothing(repo, tmp_path):
    src = write_version(tmp_path / "incoming", "m", "x", affine_model(1.0))
    r = Repository(repo)
    mv = r.import_version(src)
    assert (mv.name, mv.version) == ("m", "1")
    bad = write_version(tmp_path / "incoming2", "m", "y", affine_model(2.0))
    (bad / "model.onnx").write_bytes(b"garbage")
    with pytest.raises(IntegrityError):
        r.import_version(bad)
    assert r.versions("m") == ["1"]
    assert not [p for p in (repo / "m").iterdir() if p.name.startswith(".import")]


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden", "x" * 65, "sp ace"])
def test_bad_names_are_refused(repo, name):
    with pytest.raises(BadRequest):
        Repository(repo).version(name, "1")
