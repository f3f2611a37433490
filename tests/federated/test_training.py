"""``classroom-edge train`` on a real box database: what it trains on, what it queues, when it declines."""
from __future__ import annotations

import numpy as np
import pytest
from config_helpers import make_config
from fl_util import as_lms, install_version, keypair, seed_answers

from appliance.federated.data import holdout_students, load_interactions
from appliance.federated.local_train import Rows
from appliance.federated.models import open_repository
from appliance.federated.training import run_training
from appliance.federated.update import decode
from appliance.learning.features import FeatureSpec
from appliance.learning.simulator import make_curriculum, simulate_classroom
from appliance.services import Services

SPEC = FeatureSpec()


@pytest.fixture
def keys():
    return keypair()


@pytest.fixture
def box(tmp_path, keys):
    opened = []

    def make(**env):
        base = {"federated__trusted_keys": keys[1], "sync__device": "box1", "sync__site": "school1"}
        base.update(env)
        s = Services.open(make_config(tmp_path / "data", **base))
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


def _answers(seed=1, students=15, sessions=4):
    return simulate_classroom(seed, n_students=students, sessions=sessions, curriculum=make_curriculum(0))


def _blobs(services):
    from appliance.sync import outbox

    with services.db.read() as conn:
        out, after = [], 0
        while (b := outbox.next_blob(conn, after)) is not None:
            out.append((b, b"".join(outbox.blob_chunk(conn, b.id, i) for i in range(b.chunks))))
            after = b.id
    return out


def test_without_a_signed_global_model_there_is_nothing_to_train_from(box, keys):
    s = box()
    seed_answers(s.db, _answers())
    assert run_training(s).status == "no_global"
    install_version(open_repository(s.cfg), version=1, params=np.zeros(SPEC.n_features + 1, np.float32), spec=SPEC,
                    key_b64=None)  # unsigned: never used
    assert run_training(s).status == "no_global"
    assert _blobs(s) == []


def test_train_queues_one_update_from_the_newest_global_version(box, keys):
    s = box()
    repo = open_repository(s.cfg)
    zeros = np.zeros(SPEC.n_features + 1, np.float32)
    install_version(repo, version=1, params=zeros, spec=SPEC, key_b64=keys[0])
    base = np.random.default_rng(0).normal(0, 0.01, SPEC.n_features + 1).astype(np.float32)
    install_version(repo, version=2, params=base, spec=SPEC, key_b64=keys[0])
    attempts = _answers()
    seed_answers(s.db, attempts)

    res = run_training(s, rng=np.random.default_rng(5))
    assert res.status == "sent" and res.base_version == 2
    assert res.loss_after < res.loss_before
    assert res.size_bytes <= 0.25 * res.float32_bytes

    # It learnt from every answer except those of the held-out students.
    with s.db.read() as conn:
        inter = load_interactions(conn)
    held = holdout_students(inter, s.cfg.federated.holdout_fraction)
    assert held and res.samples == sum(1 for i in inter if i.student_id not in held)

    [(blob, data)] = _blobs(s)
    assert blob.type == "fl_update"
    upd = decode(data)
    assert upd.key.box == "school1/box1" and upd.key.base_version == 2 and upd.samples == res.samples
    with s.db.read() as conn:
        row = conn.execute("SELECT status, size_bytes, update_id FROM fl_updates WHERE direction = 'sent'").fetchone()
    assert tuple(row) == ("queued", len(data), upd.key.update_id)
    # The update points downhill: base + delta has a lower loss on the local data than base.
    rows = Rows.build(as_lms(attempts), SPEC)
    m = rows.mask(exclude=held)

    def loss(theta):
        z = rows.X[m] @ theta[:-1].astype(np.float64) + theta[-1]
        return float(np.mean(np.logaddexp(0, z) - rows.y[m] * z))

    assert loss(base + upd.delta) < loss(base)

    from appliance.federated.status import federated_status

    st = federated_status(s)
    assert st["updates_waiting_for_uplink"] == 1 and st["updates_sent"][0]["delivered"] is False
    assert "unbounded" in st["privacy"]["text"]  # no noise configured: said plainly


def test_train_declines_politely_when_there_is_nothing_new_or_it_is_too_soon(box, keys):
    s = box(federated__min_samples=50)
    install_version(open_repository(s.cfg), version=1, params=np.zeros(SPEC.n_features + 1, np.float32), spec=SPEC,
                    key_b64=keys[0])
    seed_answers(s.db, _answers(students=2, sessions=1))  # about 20 answers
    assert run_training(s).status == "not_enough_data"
    seed_answers(s.db, _answers(seed=2))
    assert run_training(s).status == "sent"
    assert run_training(s).status == "too_soon"           # the timer fired twice in a night
    assert run_training(s, now=True).status == "not_enough_data"  # --now, but no new answers
    assert len(_blobs(s)) == 1


def test_privacy_budget_is_recorded_and_enforced(box, keys):
    s = box(federated__noise_multiplier=2.0, federated__epsilon_budget=8.5, federated__min_samples=10)
    install_version(open_repository(s.cfg), version=1, params=np.zeros(SPEC.n_features + 1, np.float32), spec=SPEC,
                    key_b64=keys[0])
    seed_answers(s.db, _answers(seed=3))
    first = run_training(s, now=True)
    assert first.status == "sent" and first.epsilon is not None and 0 < first.epsilon < 8.5
    seed_answers(s.db, _answers(seed=4))
    second = run_training(s, now=True)
    assert second.status == "sent" and second.epsilon > first.epsilon
    seed_answers(s.db, _answers(seed=5))
    third = run_training(s, now=True)
    assert third.status == "budget" and third.epsilon > 8.5
    with s.db.read() as conn:
        assert [r[0] for r in conn.execute("SELECT rho FROM fl_updates")] == [pytest.approx(0.5)] * 2


def test_training_sees_the_same_history_the_lms_serves_from(box):
    """Item and skill ids and per-course histories must match the LMS's learner state, or the model
    would be trained on rows it is never asked about."""
    from appliance.learning.features import LearnerState
    from appliance.learning.learner_state import rebuild

    s = box()
    seed_answers(s.db, _answers(students=3, sessions=2))
    with s.db.read() as conn:
        inter = load_interactions(conn)
        uid, db_id = conn.execute("SELECT uid, id FROM users WHERE role = 'student' LIMIT 1").fetchone()
        served = rebuild(conn, db_id, "sim")
    mine = LearnerState()
    for i in inter:
        if i.student_id == f"{uid}/sim":
            mine.observe(i.item_id, i.skills, i.correct, i.timestamp)
    assert mine.success + mine.failure > 0
    assert mine.to_dict() == served.to_dict()
