"""``classroom-edge models ...`` against a real repository on disk."""
from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from inference_models import affine_model, dense_model, echo_model, write_version

from appliance.cli.main import main
from appliance.inference.repository import Repository


@pytest.fixture
def cli(repo, tmp_path):
    def run(*args):
        where = [] if args[0] == "sign" else ["--repo", str(repo), "--data-dir", str(tmp_path / "data")]  # sign takes a folder
        return main(["models", *args, *where])
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


def test_list_verify_finds_a_tampered_version_before_activate_does(cli, repo, capsys):
    """Plain list reads only model.json (quick); --verify hashes every file as activate would, marks the
    damaged version and exits 1, so an admin's script notices."""
    write_version(repo, "affine", "1", affine_model(1.0))
    bad = write_version(repo, "affine", "2", affine_model(2.0))
    (bad / "model.onnx").write_bytes(b"altered")
    assert cli("list") == 0 and "sha256" not in capsys.readouterr().out
    assert cli("list", "--verify") == 1
    lines = capsys.readouterr().out.splitlines()
    assert "verified" in lines[0] and "FAILED" in lines[1] and "does not match its sha256" in lines[1]
    assert cli("list", "--verify", "--json") == 1
    rows = json.loads(capsys.readouterr().out)
    assert [r["verified"] for r in rows] == [True, False]
    assert rows[1]["sha256"] and not rows[1]["signed"]  # what model.json says, beside the failure


def test_list_says_when_active_names_no_version(cli, repo, capsys):
    """Found in review: ACTIVE naming a missing version (or empty) marked no row and --verify exited 0."""
    write_version(repo, "affine", "1", affine_model(1.0))
    (repo / "affine" / "ACTIVE").write_text("7\n")
    assert cli("list") == 0
    assert "names version 7, which is not in the repository: nothing serves" in capsys.readouterr().out
    assert cli("list", "--verify") == 1
    capsys.readouterr()
    (repo / "affine" / "ACTIVE").write_text("")
    assert cli("list", "--json") == 0
    assert json.loads(capsys.readouterr().out)[-1]["error"].startswith("its ACTIVE file is empty: nothing serves")


def test_activate_refuses_a_broken_version_and_keeps_active(cli, repo, capsys):
    write_version(repo, "affine", "1", affine_model(1.0))
    bad = write_version(repo, "affine", "2", affine_model(2.0))
    Repository(repo).set_active("affine", "1")
    (bad / "model.onnx").write_bytes(b"not a model")
    assert cli("activate", "affine", "2") == 1
    assert "sha256" in capsys.readouterr().err
    assert Repository(repo).active_version("affine") == "1"


def test_quantize_says_nothing_the_admin_cannot_act_on(cli, repo, caplog):
    """onnxruntime's quantizer logs an INFO line per tensor and pre-processing advice on the root
    logger; neither reaches the admin, and the root logger's level is put back afterwards."""
    import logging

    write_version(repo, "dense", "1", dense_model())
    caplog.set_level(logging.INFO)
    assert cli("quantize", "dense") == 0
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "Quantization parameters" in m or "pre-processing" in m], said
    assert logging.getLogger().level == logging.INFO


def test_import_sign_and_quantize(cli, repo, tmp_path, capsys):
    key = Ed25519PrivateKey.generate()
    priv = base64.b64encode(key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                              serialization.NoEncryption())).decode()
    (tmp_path / "key").write_text(priv)
    src = write_version(tmp_path / "incoming", "affine", "src", dense_model())
    assert cli("sign", str(src), "--key-file", str(tmp_path / "key")) == 0
    assert cli("import", str(src), "--activate") == 0
    r = Repository(repo)
    assert r.versions("affine") == ["1"] and r.active_version("affine") == "1"
    assert r.version("affine", "1").meta["signature"]["alg"] == "ed25519"
    before = sorted(p.name for p in (repo / "affine" / "1").iterdir())
    assert cli("quantize", "affine") == 0
    mv = r.version("affine", "2")
    assert mv.meta["provenance"]["quantized_from"] == "1" and "signature" not in mv.meta
    # Not served before someone activates it, and nothing was written next to its source.
    assert r.active_version("affine") == "1"
    assert sorted(p.name for p in (repo / "affine" / "1").iterdir()) == before
    # Its own metrics: what int8 changed (the source's would describe the float weights).
    m = mv.meta["metrics"]
    assert m["source_bytes"] == r.version("affine", "1").model_file("onnxruntime").stat().st_size
    assert m["bytes"] == mv.model_file("onnxruntime").stat().st_size and m["smaller_x"] == round(m["source_bytes"] / m["bytes"], 2)
    assert m["smaller_x"] > 3 and m["generated_rows"] == 8
    assert 0 < m["mean_abs_diff"] <= m["max_abs_diff"] < 0.1 * m["max_abs_output"]
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
    out = capsys.readouterr()
    built = json.loads(out.out)
    assert f"learner: built version {built['learner']}" in out.err
    r = Repository(repo)
    assert list(built) == ["learner"] and r.versions("learner") == [built["learner"]] and not r.versions("minilm")
    r.verify(r.version("learner", built["learner"]), "onnxruntime")
    capsys.readouterr()
    assert cli("build", "learner") == 0  # the same model again: same bytes, so no new version, and it says so
    assert r.versions("learner") == [built["learner"]]
    assert f"learner: version {built['learner']} already holds this build; nothing added" in capsys.readouterr().err
    # The admin's int8 version neither serves by itself nor makes the next build add a copy.
    assert cli("quantize", "learner") == 0
    assert r.versions("learner") == ["1", "2"] and r.active_version("learner") == "1"
    assert cli("activate", "learner", "2") == 0
    assert cli("build", "learner") == 0
    assert r.versions("learner") == ["1", "2"] and r.active_version("learner") == "2"
    capsys.readouterr()
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
    (version / "model.plan").unlink()  # "nothing to build" must not hide a missing engine
    assert cli("build-engine", "shipped") == 1
    assert "model.plan is missing" in capsys.readouterr().err


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("classroom-edge: "), err
    return err


def test_a_new_version_serves_only_once_activated(cli, repo, tmp_path, capsys):
    write_version(repo, "affine", "1", affine_model(1.0))  # built, no ACTIVE: the highest serves
    r = Repository(repo)
    for version in ("2", "candidate"):  # a name sorts after every number
        src = write_version(tmp_path / "incoming" / version, "affine", "src", affine_model(2.0))
        assert cli("import", str(src), "--version", version) == 0
        assert "serves once activated" in capsys.readouterr().out
        assert r.active_version("affine") == "1"
    active = repo / "affine" / "ACTIVE"
    assert active.read_text() == "1\n" and active.stat().st_mode & 0o777 == 0o644  # the service user reads it
    assert cli("activate", "affine", "candidate") == 0
    assert (repo / "affine" / "HISTORY").stat().st_mode & 0o777 == 0o644


def test_a_version_that_cannot_load_is_refused_with_a_reason_and_never_appears(cli, repo, tmp_path, capsys):
    import hashlib

    cut = affine_model(1.0)[:40]  # its sha256 matches: only loading it can tell
    src = write_version(tmp_path / "incoming", "affine", "src", cut, sha256=hashlib.sha256(cut).hexdigest())
    # The model's first version: nothing else to pin, so it must not even appear, with --activate or
    # without (a first version serves at once: it must not be said to "serve now" and fail to load).
    r = Repository(repo)
    for flags in (["--activate"], []):
        assert cli("import", str(src), *flags) == 1
        assert "could not be loaded" in _one_line_error(capsys)
        assert r.versions("affine") == [] and not [p for p in (repo / "affine").iterdir() if p.name != ".lock"]
    write_version(repo, "affine", "1", affine_model(1.0))
    r.set_active("affine", "1")
    assert cli("import", str(src), "--activate") == 1
    assert "could not be loaded" in _one_line_error(capsys)
    assert r.versions("affine") == ["1"] and r.active_version("affine") == "1"
    assert cli("import", str(src)) == 0  # kept when asked only to import: then activate and bench say why
    assert cli("activate", "affine", "2") == 1 and "could not be loaded" in _one_line_error(capsys)
    assert cli("bench", "affine", "--version", "2") == 1 and "could not be loaded" in _one_line_error(capsys)
    assert cli("quantize", "affine", "--version", "2") == 1
    assert "cannot be read as an ONNX model" in _one_line_error(capsys)
    assert r.active_version("affine") == "1"


def test_imported_files_are_readable_by_the_service_user_whoever_imports(cli, repo, tmp_path, capsys):
    """A root shell with umask 077 must not leave versions the web service's user cannot read."""
    import os
    import stat

    old = os.umask(0o077)
    try:
        src = write_version(tmp_path / "incoming", "affine", "src", affine_model(2.0))
        assert cli("import", str(src)) == 0
    finally:
        os.umask(old)
    assert "is the model's only version and serves now" in capsys.readouterr().out
    version = repo / "affine" / "1"
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (version, version / "model.onnx", version / "model.json")}
    assert modes == {"1": 0o755, "model.onnx": 0o644, "model.json": 0o644}


@pytest.mark.parametrize("manifest, says", [
    ({"name": "affine"}, "sha256"),
    ([1, 2], "must be a JSON object"),
    ({"sha256": "0" * 64, "files": ["x"]}, "files must map"),
    ({"sha256": "0" * 64, "max_batch_size": "abc"}, "max_batch_size must be a whole number"),
    ({"sha256": "0" * 64, "max_queue_delay_ms": -1}, "max_queue_delay_ms must be a number"),
    ({"sha256": "0" * 64, "file": "../1/model.onnx"}, "points outside its version directory"),
    ({"sha256": "0" * 64, "file": "/etc/hostname"}, "points outside its version directory"),
    # Keys the code reads as objects or flags: each used to be a TypeError somewhere later.
    ({"sha256": "0" * 64, "metrics": [0.9]}, "metrics must be an object"),
    ({"sha256": "0" * 64, "provenance": "from the hub"}, "provenance must be an object"),
    ({"sha256": "0" * 64, "trt_profile": "1x16"}, "trt_profile must be an object"),
    ({"sha256": "0" * 64, "batch_padding": ["input_ids"]}, "batch_padding must map input names"),
    ({"sha256": "0" * 64, "batch_padding": {"input_ids": "0"}}, "batch_padding must map input names"),
    ({"sha256": "0" * 64, "warmup": "zeros"}, "warmup must be a list of OIP JSON tensors"),
    ({"sha256": "0" * 64, "trt_int8_native_table": "yes"}, "trt_int8_native_table must be true or false"),
    ({"sha256": "0" * 64, "trt_int8_calibration_table": "../calib.bin"}, "points outside its version directory"),
])
def test_a_bad_manifest_is_named_not_a_traceback(cli, repo, tmp_path, capsys, manifest, says):
    src = tmp_path / "incoming" / "affine" / "src"
    src.mkdir(parents=True)
    (src / "model.onnx").write_bytes(affine_model(1.0))
    (src / "model.json").write_text(json.dumps(manifest))
    assert cli("import", str(src)) == 1
    assert says in _one_line_error(capsys)
    assert not (repo / "affine").exists() or not Repository(repo).versions("affine")


def test_import_takes_the_named_files_from_their_folders_and_nothing_else(cli, repo, tmp_path, capsys):
    import hashlib

    model = affine_model(3.0)
    src = tmp_path / "incoming" / "affine" / "src"
    (src / "onnx").mkdir(parents=True)
    (src / "onnx" / "model.onnx").write_bytes(model)
    (src / "model.json").write_text(json.dumps({"file": "onnx/model.onnx", "sha256": hashlib.sha256(model).hexdigest()}))
    (src / "notes.txt").write_text("not part of the model")
    (src / "gone").symlink_to(tmp_path / "nowhere")
    assert cli("import", str(src), "--activate") == 0
    version = repo / "affine" / "1"
    assert sorted(str(p.relative_to(version)) for p in version.rglob("*")) == ["model.json", "onnx", "onnx/model.onnx"]
    (version / "model.onnx").write_bytes(b"a decoy where the basename would point")
    Repository(repo).verify(Repository(repo).version("affine", "1"), "onnxruntime")  # hashes onnx/model.onnx


def test_quantize_refuses_what_int8_cannot_improve(cli, repo, capsys):
    write_version(repo, "echo", "1", echo_model())
    assert cli("quantize", "echo") == 1
    assert "no float weights in a MatMul, Gemm or Conv" in _one_line_error(capsys)
    write_version(repo, "dense", "1", dense_model())
    assert cli("quantize", "dense", "--activate") == 0
    assert cli("quantize", "dense") == 1
    assert "already quantized" in _one_line_error(capsys)
    assert Repository(repo).versions("dense") == ["1", "2"]


def test_file_errors_and_odd_states_get_one_line(cli, repo, tmp_path, capsys):
    write_version(repo, "affine", "1", affine_model(1.0))
    assert cli("sign", str(repo / "affine" / "1"), "--key-file", str(tmp_path / "no-such.key")) == 1
    assert "No such file or directory" in _one_line_error(capsys)
    assert cli("rollback", "nosuch") == 1 and "'nosuch' is not in" in _one_line_error(capsys)
    (repo / "affine" / "ACTIVE").write_text("")
    assert cli("bench", "affine") == 1 and "ACTIVE file is empty" in _one_line_error(capsys)
    (repo / "affine" / "2").mkdir()
    assert cli("activate", "affine", "2") == 1 and "affine/2 has no model.json" in _one_line_error(capsys)
    with pytest.raises(SystemExit):
        main(["--log-level", "bogus", "models", "list", "--repo", str(repo)])


def test_a_mistyped_model_or_repository_is_named_as_such(cli, repo, tmp_path, capsys):
    """An admin's typo: no such model (not "no version 1" of it), no such repository (not an empty one)."""
    write_version(repo, "affine", "1", affine_model(1.0))
    assert cli("activate", "afine", "1") == 1
    assert "there is no model 'afine' in" in _one_line_error(capsys)
    assert cli("activate", "affine", "7") == 1 and "model 'affine' has no version '7'" in _one_line_error(capsys)
    assert main(["models", "list", "--repo", str(tmp_path / "typo"), "--data-dir", str(tmp_path / "data")]) == 1
    assert "there is no model repository at" in _one_line_error(capsys)
    assert not (tmp_path / "typo").exists()


def test_sign_replaces_the_manifest_whole_or_not_at_all(repo, tmp_path):
    """On a full disk (a file size limit here) the old model.json stays, and the message says why."""
    import os
    import subprocess
    import sys

    key = Ed25519PrivateKey.generate()
    (tmp_path / "key").write_text(base64.b64encode(key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())).decode())
    src = write_version(tmp_path / "incoming", "affine", "src", affine_model(1.0),
                        provenance={"notes": "x" * 3000})
    before = (src / "model.json").read_bytes()
    limited = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
               "resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024)); from appliance.cli.main import main; "
               "sys.exit(main(sys.argv[1:]))")
    run = subprocess.run([sys.executable, "-c", limited, "models", "sign", str(src), "--key-file", str(tmp_path / "key")],
                         capture_output=True, text=True, env={**os.environ}, timeout=60)
    assert run.returncode == 1 and "File too large" in run.stderr and "Traceback" not in run.stderr
    assert (src / "model.json").read_bytes() == before
    assert [p.name for p in src.iterdir() if p.name.startswith(".")] == []


def test_list_and_quantize_name_a_bad_key_of_a_version_already_in_the_repository(cli, repo, capsys):
    """A manifest written by hand into the repository (not imported): `list` showed a traceback for
    a metrics list, and `quantize` for a provenance string."""
    write_version(repo, "dense", "1", dense_model(), metrics=["auc", 0.7])
    write_version(repo, "dense", "2", dense_model(), provenance="from the hub")
    assert cli("list") == 0
    listed = capsys.readouterr().out
    assert "dense/1: metrics must be an object" in listed and "dense/2: provenance must be an object" in listed
    assert cli("quantize", "dense", "--version", "2") == 1
    assert "provenance must be an object" in _one_line_error(capsys)
    assert Repository(repo).versions("dense") == ["1", "2"]


@pytest.mark.parametrize("meta, says", [
    ({"warmup": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]},
     "model.json warmup: input 'x' must have shape"),
    ({"warmup": [{"name": "z", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
     "model.json warmup: missing input(s): x"),
    ({"batch_padding": {"input_id": 0}}, "batch_padding names ['input_id'], which the model does not take"),
])
def test_activate_names_a_warmup_or_padding_that_does_not_fit_the_model(cli, repo, capsys, meta, says):
    """A wrong warm-up failed in the runtime as "could not run on this input"; a misspelt padded input
    was never padded, silently."""
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "affine", "2", affine_model(2.0), **meta)
    Repository(repo).set_active("affine", "1")
    assert cli("activate", "affine", "2") == 1
    assert says in _one_line_error(capsys)
    assert Repository(repo).active_version("affine") == "1"


def test_build_replaces_a_damaged_copy_of_the_default_and_serves_the_repair(cli, repo, capsys):
    assert cli("build", "learner") == 0
    r = Repository(repo)
    assert cli("activate", "learner", "1") == 0  # pinned, as an admin's "Serve this version" leaves it
    (repo / "learner" / "1" / "model.onnx").write_bytes(b"not the model any more")
    capsys.readouterr()
    assert cli("build", "learner") == 0  # it said "already holds this build", and the box stayed broken
    assert "learner: built version 2" in capsys.readouterr().err
    assert r.versions("learner") == ["1", "2"] and r.active_version("learner") == "2"
    r.verify(r.version("learner", "2"), "onnxruntime")
