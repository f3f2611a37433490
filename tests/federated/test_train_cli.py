"""``classroom-edge train``, ``train status``, ``train rollback``, ``train activate`` as a person types them."""
from __future__ import annotations

import json

import numpy as np
import pytest
from fl_util import install_version, keypair

from appliance.cli.main import main
from appliance.federated.models import open_repository
from appliance.learning.features import FeatureSpec

SPEC = FeatureSpec()


@pytest.fixture
def env(tmp_path, monkeypatch):
    seed, pub = keypair()
    monkeypatch.setenv("CLASSROOM_EDGE_STORAGE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CLASSROOM_EDGE_CONTENT__INSTALL_DEMO", "false")
    monkeypatch.setenv("CLASSROOM_EDGE_FEDERATED__TRUSTED_KEYS", pub)
    monkeypatch.setenv("CLASSROOM_EDGE_SYNC__DEVICE", "box7")
    return seed


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_train_on_a_new_box_says_why_it_did_nothing_and_exits_0(env, capsys):
    assert main(["train", "--now"]) == 0
    out = _json(capsys)
    assert out["status"] == "no_global" and "hub" in out["message"]


def test_status_rollback_and_activate(env, capsys):
    from appliance.config import load_config
    from appliance.federated.activation import consider
    from appliance.services import Services

    assert main(["train", "rollback"]) == 1
    assert "nothing to roll back" in capsys.readouterr().err

    cfg = load_config()
    repo = open_repository(cfg)
    params = np.random.default_rng(0).normal(0, 0.1, SPEC.n_features + 1).astype(np.float32)
    s = Services.open(cfg)
    try:
        for v in (1, 2):
            consider(s, install_version(repo, version=v, params=params * v, spec=SPEC, key_b64=env))
    finally:
        s.close()

    assert main(["train", "status"]) == 0
    st = _json(capsys)
    assert st["box"] == "demo-site/box7" and st["serving_version"] == "g000002" and st["active_global"] == 2
    assert st["privacy"]["text"] == "no update sent yet"

    assert main(["train", "rollback"]) == 0
    assert _json(capsys) == {"model": "learner", "from": "g000002", "to": "g000001"}
    assert main(["train", "activate", "2"]) == 0
    assert _json(capsys)["status"] == "active"
    assert main(["train", "status"]) == 0
    assert _json(capsys)["serving_version"] == "g000002"
    assert main(["train", "activate", "9"]) == 1
    assert "has not been received" in capsys.readouterr().err
