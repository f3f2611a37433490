"""``classroom-edge models ...`` against a real repository on disk."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inference_models import affine_model, write_version

from appliance.cli.main import main
from appliance.inference.repository import Repository


@pytest.fixture
def cli(repo, tmp_path):
    def run(*args):
        return main(["models", *args, "--repo", str(repo), "--data-dir", str(tmp_path / "data")])
    return run


def test_list_activate_rollback(cli, repo, capsys):
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "affine", "2", affine_model(2.0))
    assert cli("list", "--json") == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["version"], r["active"]) for r in rows] == [("1", False), ("2", True)]
    assert cli("activate", "affine", "1") == 0
    assert Repository(repo).active_version("affine") == "1"
    assert cli("rollback", "affine") == 0
    assert Repository(repo).active_version("affine") == "2"


def test_activate_refuses_a_broken_version_and_keeps_active(cli, repo, capsys):
    write_version(repo, "affine", "1", affine_model(1.0))
    bad = write_version(repo, "affine", "2", affine_model(2.0))
    Repository(repo).set_active("affine", "1")
    (bad / "model.onnx").write_bytes(b"not a model")
    assert cli("activate", "affine", "2") == 1
    assert "sha256" in capsys.readouterr().err
    assert Repository(repo).active_version("affine") == "1"


def test_import_sign_and_quantize(cli, repo, tmp_path, capsys):
    key = Ed25519PrivateKey.generate()
    priv = base64.b64encode(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())).decode()
    (tmp_path / "key").write_text(priv)
    src = write_version(tmp_path / "incoming", "affine", "src", affine_model(5.0))
    assert cli("sign", str(src), "--key-file", str(tmp_path / "key")) == 0
    assert cli("import", str(src), "--activate") == 0
    r = Repository(repo)
    assert r.versions("affine") == ["1"] and r.active_version("affine") == "1"
    assert r.version("affine", "1").meta["signature"]["alg"] == "ed25519"
    assert cli("quantize", "affine") == 0
    mv = r.version("affine", "2")
    assert mv.meta["provenance"]["quantized_from"] == "1" and "signature" not in mv.meta
    # Its own metrics: what int8 changed (the source's would describe the float weights).
    m = mv.meta["metrics"]
    assert m["source_bytes"] == r.version("affine", "1").model_file("onnxruntime").stat().st_size
    assert m["bytes"] == mv.model_file("onnxruntime").stat().st_size and m["smaller_x"] == round(m["source_bytes"] / m["bytes"], 2)
    assert m["generated_rows"] == 8 and 0 <= m["mean_abs_diff"] <= m["max_abs_diff"] < 0.1 * m["max_abs_output"]
    r.verify(mv, "onnxruntime")
    capsys.readouterr()
    assert cli("bench", "affine", "--version", "2", "--batch", "4", "--seconds", "0.2") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == "2" and out["batch"] == 4 and out["runs"] >= 5


def test_build_engine_without_tensorrt_fails_clearly(cli, repo, capsys):
    from appliance.inference.backends.tensorrt import TensorRTBackend

    if TensorRTBackend.check_environment() is None:
        pytest.skip("tensorrt is installed here")
    write_version(repo, "affine", "1", affine_model(1.0))
    assert cli("build-engine", "affine") == 1
    assert "TensorRT is not available on this box" in capsys.readouterr().err


def test_build_makes_the_named_default_models_and_refuses_unknown_names(cli, repo, capsys):
    assert cli("build", "learner") == 0
    built = json.loads(capsys.readouterr().out)
    r = Repository(repo)
    assert list(built) == ["learner"] and r.versions("learner") == [built["learner"]] and not r.versions("minilm")
    r.verify(r.version("learner", built["learner"]), "onnxruntime")
    assert cli("build", "learner") == 0  # the same model again: same bytes, so no new version
    assert r.versions("learner") == [built["learner"]]
    assert cli("build", "gpt") == 1
    assert "unknown default model" in capsys.readouterr().err


def test_build_engine_has_nothing_to_build_for_a_version_that_ships_its_engine(cli, repo, capsys):
    import hashlib

    from appliance.inference.backends.tensorrt import shipped_engine

    version = repo / "shipped" / "1"
    version.mkdir(parents=True)
    (version / "model.plan").write_bytes(b"serialized engine bytes")
    (version / "model.json").write_text(json.dumps({
        "backend": "tensorrt", "file": "model.plan", "sha256": hashlib.sha256(b"serialized engine bytes").hexdigest(),
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}))
    mv = Repository(repo).version("shipped", "1")
    assert shipped_engine(mv.model_file("tensorrt")) and not shipped_engine(repo / "x" / "1" / "model.onnx")
    assert cli("build-engine", "shipped") == 0  # whether or not TensorRT is installed here
    assert "ships its TensorRT engine (model.plan): there is nothing to build" in capsys.readouterr().out
