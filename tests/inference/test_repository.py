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
    r.mark_rolled_back("m", "1", "2")
    assert r.active_version("m") == "1"
    assert r.rollback_target("m") == "3"  # before 1 came the implicit 3
    r.mark_rolled_back("m", "3", "1")
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


def test_a_rollback_does_not_undo_an_activation_made_while_it_ran(repo):
    """Found in review: a rollback chose its target, another admin activated version 4 meanwhile, and the
    rollback then wrote its target over it, without a word."""
    for v in ("1", "2", "3", "4"):
        write_version(repo, "m", v, affine_model(float(v)))
    r = Repository(repo)
    for v in ("1", "2", "3"):
        r.set_active("m", v)
    current, target = r.active_version("m"), r.rollback_target("m")
    r.set_active("m", "4")  # the other admin
    with pytest.raises(Conflict, match="was activated while this rollback ran"):
        r.mark_rolled_back("m", target, current)
    assert r.active_version("m") == "4" and r.history("m")[-2:] == ["3", "4"]


def test_a_crash_between_active_and_history_leaves_rollback_right(repo, monkeypatch):
    """ACTIVE is written first: a crash before HISTORY leaves it one short, not a version on top that never
    served (rollback went to that one)."""
    import appliance.inference.repository as repository

    for v in ("1", "2", "3"):
        write_version(repo, "m", v, affine_model(float(v)))
    r = Repository(repo)
    r.set_active("m", "1")
    r.set_active("m", "2")
    real = repository.write_atomic

    def crash_at_history(path, data, mode=0o644):
        if path.name == "HISTORY":
            raise KeyboardInterrupt("power cut")
        real(path, data, mode)
    monkeypatch.setattr(repository, "write_atomic", crash_at_history)
    with pytest.raises(KeyboardInterrupt):
        r.set_active("m", "3")
    monkeypatch.setattr(repository, "write_atomic", real)
    assert r.active_version("m") == "3" and r.rollback_target("m") == "2"
    r.set_active("m", "1")  # the next activate repairs the history
    assert r.history("m")[-3:] == ["2", "3", "1"]


@pytest.mark.parametrize("reserved", ["ACTIVE", "HISTORY"])
def test_a_version_cannot_take_the_name_of_the_active_and_history_files(repo, tmp_path, reserved):
    write_version(repo, "m", "1", affine_model(1.0))
    src = write_version(tmp_path / "incoming", "m", "9", affine_model(2.0))
    with pytest.raises(BadRequest, match="taken by the file that records the active version"):
        Repository(repo).import_version(src, "m", reserved)
    assert Repository(repo).versions("m") == ["1"]


def test_an_unreadable_model_json_is_no_version_to_serve_or_roll_back_to(repo):
    for v in ("1", "2", "3"):
        write_version(repo, "m", v, affine_model(float(v)))
    (repo / "m" / "3" / "model.json").write_text('{"trunc')
    r = Repository(repo)
    assert "model.json" in (r.damaged("m", "3") or "")
    assert r.active_version("m") == "2"  # no ACTIVE: the highest that can serve
    r.set_active("m", "2")
    (repo / "m" / "1" / "model.json").write_text("")
    with pytest.raises(Conflict, match="no earlier version to roll back to that can serve"):
        r.rollback_target("m")


def test_import_of_the_current_folder_takes_the_model_name_from_the_folder_above(repo, tmp_path, monkeypatch):
    src = write_version(tmp_path / "incoming", "affine", "9", affine_model(1.0))
    meta = json.loads((src / "model.json").read_text())
    del meta["name"]
    (src / "model.json").write_text(json.dumps(meta))
    monkeypatch.chdir(src)
    from pathlib import Path

    assert Repository(repo).import_version(Path(".")).name == "affine"  # was "model name '' is not valid"
