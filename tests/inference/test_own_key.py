"""The box signs what it builds itself, so turning on ``inference.trusted_keys`` (only signed models)
does not switch off the default models it built at install time, nor an admin's ``models quantize``
of a trusted version; and that trust never extends to a folder copied in from elsewhere."""
from __future__ import annotations

import json
import shutil
import stat

import pytest
from test_repository import keypair

from appliance.errors import BadRequest, IntegrityError
from appliance.inference.builders import build_default_models
from appliance.inference.own_key import PRIVATE_FILE, PUBLIC_FILE, own_private_key, own_public_key
from appliance.inference.repository import Repository
from appliance.inference.signing import verify_manifest
from appliance.inference.versions import quantize_version


@pytest.fixture
def learner_repo(repo):
    assert build_default_models(repo, models=("learner",)) == {"learner": "1"}
    return repo


def test_the_default_models_are_signed_with_a_key_made_once_for_the_box(learner_repo):
    own = own_public_key(learner_repo)
    meta = json.loads((learner_repo / "learner" / "1" / "model.json").read_text())
    verify_manifest(meta, [own], "learner 1")  # raises if not signed by it
    assert stat.S_IMODE((learner_repo / PRIVATE_FILE).stat().st_mode) == 0o600
    assert stat.S_IMODE((learner_repo / PUBLIC_FILE).stat().st_mode) == 0o644
    assert Repository(learner_repo).model_names() == ["learner"]  # the key files are not models
    # The same key on every later use; a public half lost in a crash is written again from it.
    (learner_repo / PUBLIC_FILE).unlink()
    own_private_key(learner_repo)
    assert own_public_key(learner_repo) == own


def test_a_box_that_loads_only_signed_models_serves_its_own_defaults(learner_repo, make_engine):
    hub_key = keypair()[1]
    engine = make_engine(trusted_keys=[hub_key])
    assert engine.loaded("learner") is not None and engine.loaded("learner").version == "1"
    # The box's key vouches for what it built, not for anything in its folder: the same learner copied
    # in unsigned (say, from a USB stick) as version 2 is refused.
    meta = json.loads((learner_repo / "learner" / "1" / "model.json").read_text())
    copied = learner_repo / "learner" / "2"
    shutil.copytree(learner_repo / "learner" / "1", copied)
    del meta["signature"]
    (copied / "model.json").write_text(json.dumps(meta))
    engine.close()
    engine = make_engine(trusted_keys=[hub_key])
    # Nothing pinned: the highest version that can serve, not the highest (which stopped the model at
    # the next start although version 1 lay beside it); the copy is named as refused, and why.
    assert engine.loaded("learner").version == "1"
    assert "not signed" in engine.repository.unservable("learner", "2")
    assert engine.repository.unservable("learner", "1") is None


def test_own_key_is_not_a_hub_key(learner_repo):
    """Only the serving side trusts it: the federated code checks global versions against the hub's keys."""
    hub_key = keypair()[1]
    mv = Repository(learner_repo).version("learner", "1")
    Repository.for_serving(learner_repo, [hub_key]).verify(mv, "onnxruntime")
    with pytest.raises(IntegrityError, match="does not match any trusted key"):
        Repository(learner_repo, [hub_key]).verify(mv, "onnxruntime")
    # With no keys configured nothing is checked, as before.
    Repository.for_serving(learner_repo, []).verify(mv, "onnxruntime")


def test_quantizing_keeps_trust_and_never_creates_it(learner_repo):
    repo = Repository.for_serving(learner_repo, [keypair()[1]])
    trusted = quantize_version(repo, repo.version("learner", "1"))
    repo.verify(trusted, "onnxruntime")  # signed by the box: it came from a version the box trusts
    # An unsigned version (allowed in while no key was configured) gives an unsigned int8 copy.
    meta = json.loads((learner_repo / "learner" / "1" / "model.json").read_text())
    del meta["signature"]
    src = learner_repo.parent / "unsigned"
    shutil.copytree(learner_repo / "learner" / "1", src)
    (src / "model.json").write_text(json.dumps(meta))
    plain = Repository(learner_repo)
    unsigned = quantize_version(plain, plain.import_version(src, "learner", version="copy"))
    assert "signature" not in unsigned.meta
    with pytest.raises(IntegrityError, match="not signed"):
        repo.verify(repo.version("learner", unsigned.version), "onnxruntime")
    # Where keys are configured, the copy would be refused: said at once, naming the version and the way out.
    before = repo.versions("learner")
    with pytest.raises(BadRequest, match="learner version copy is not signed .* --sign-key"):
        quantize_version(repo, repo.version("learner", "copy"))
    assert repo.versions("learner") == before


def test_an_older_release_s_unsigned_defaults_are_replaced_even_when_active_pins_one(learner_repo, make_engine):
    """The upgrade: learner 1 as an older builder wrote it (unsigned), pinned in ACTIVE (an admin served
    it). The next start builds it again, signed, and serves the new copy of the same weights; the
    unsigned copy is no version to roll back to on a box that loads only signed models."""
    from appliance.inference.builders import stale_default_models

    path = learner_repo / "learner" / "1" / "model.json"
    meta = json.loads(path.read_text())
    del meta["signature"]
    meta["provenance"]["builder_version"] = 2
    path.write_text(json.dumps(meta))
    repo = Repository(learner_repo)
    repo.set_active("learner", "1")
    assert stale_default_models(repo) == ("learner",)
    assert build_default_models(learner_repo, stale_default_models(repo)) == {"learner": "2"}
    assert repo.active_version("learner") == "2"
    engine = make_engine(trusted_keys=[keypair()[1]])
    assert engine.loaded("learner").version == "2"
    with pytest.raises(Exception, match="not signed by a trusted key"):
        engine.repository.rollback_target("learner")


def test_a_pin_on_different_weights_is_left_alone(learner_repo):
    """Only a copy of the same model file moves the pin: a default the admin chose over another
    build (other weights) stays served."""
    path = learner_repo / "learner" / "1" / "model.json"
    meta = json.loads(path.read_text())
    meta["provenance"]["builder_version"] = 2
    meta["sha256"] = "0" * 64
    path.write_text(json.dumps(meta))
    repo = Repository(learner_repo)
    repo.set_active("learner", "1")
    build_default_models(learner_repo, ("learner",))
    assert repo.active_version("learner") == "1"


def test_a_key_made_by_root_belongs_to_the_repository_s_owner(tmp_path):
    import os

    if os.geteuid() != 0:
        pytest.skip("needs root: chown to the repository's owner is what a `sudo models build` does")
    repo = tmp_path / "models"
    repo.mkdir()
    os.chown(repo, 65534, 65534)  # the service user's repository
    own_private_key(repo)
    st = (repo / PRIVATE_FILE).stat()
    assert (st.st_uid, st.st_gid) == (65534, 65534) and stat.S_IMODE(st.st_mode) == 0o600


def test_a_file_system_without_hard_links_still_gets_one_key(tmp_path, monkeypatch):
    import os

    def no_links(src, dst):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    first = own_private_key(tmp_path)
    assert own_private_key(tmp_path) == first
    assert not list(tmp_path.glob("*.tmp-*"))


def test_an_unsigned_copy_of_this_build_does_not_count_as_built(learner_repo):
    """`models build` said "version 2 already holds this build" of a copy someone put there unsigned,
    and added nothing: a signed-only box was left with nothing to serve."""
    copy = learner_repo / "learner" / "2"
    shutil.copytree(learner_repo / "learner" / "1", copy)
    meta = json.loads((copy / "model.json").read_text())
    del meta["signature"]
    (copy / "model.json").write_text(json.dumps(meta))
    shutil.rmtree(learner_repo / "learner" / "1")
    assert build_default_models(learner_repo, ("learner",)) == {"learner": "3"}
    repo = Repository.for_serving(learner_repo, [keypair()[1]])
    assert repo.active_version("learner") == "3"
