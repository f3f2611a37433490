"""Learner model: online features, training, the flat parameter vector and the ONNX export."""
from __future__ import annotations

import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from appliance.inference.builders.learner import (
    INPUT,
    OUTPUT,
    check_against_numpy,
    learner_to_onnx,
)
from appliance.learning.features import DAY, SHARED_FEATURES, FeatureSpec, LearnerState
from appliance.learning.learner_train import (
    auc,
    build_dataset,
    params_to_vector,
    rmse,
    split_students,
    train,
    train_default,
    vector_to_params,
)
from appliance.learning.simulator import make_curriculum, simulate_classroom


@pytest.fixture(scope="module")
def trained():
    """A model trained on a few simulated classrooms, with its held-out metrics."""
    return train_default(seed=3, classrooms=6, students=30)


def test_state_counts_and_round_trip():
    st = LearnerState()
    st.observe("i1", ("a", "b"), 1, 100.0)
    st.observe("i2", ["a"], 0, 200.0)
    assert (st.skills["a"].success, st.skills["a"].failure, st.skills["a"].last) == (1, 1, 200.0)
    assert (st.skills["b"].success, st.skills["b"].failure) == (1, 0)
    assert (st.success, st.failure, st.items) == (1, 1, {"i1": 1, "i2": 1})
    again = LearnerState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert again == st
    with pytest.raises(ValueError):
        LearnerState.from_dict({"skills": {"a": [1]}})


def test_encoding_is_stable_and_matches_the_layout():
    spec, other = FeatureSpec(), FeatureSpec()
    st = LearnerState()
    for k in range(4):
        st.observe("sim/s01/i00", ("s01",), k % 2, 1000.0 + k)
    row = spec.encode(st, "sim/s01/i03", ("s01",), 1000.0 + 2 * DAY)
    assert row.dtype == np.float32 and row.shape == (spec.n_features,)
    # Hashing is blake2b, not Python's per-process hash(): another instance (or box) agrees.
    assert np.array_equal(row, other.encode(st, "sim/s01/i03", ("s01",), 1000.0 + 2 * DAY))
    j, S, o = spec.skill_index("s01"), spec.skill_buckets, spec.shared_offset
    assert row[spec.item_index("sim/s01/i03")] == 1.0 and row[j] == 1.0
    assert row[j + S] == pytest.approx(math.log1p(2)) and row[j + 2 * S] == pytest.approx(math.log1p(2))
    shared = dict(zip(SHARED_FEATURES, row[o:]))
    assert shared["days_since_practice"] == pytest.approx(math.log1p((2 * DAY - 3) / DAY), rel=1e-5)
    assert shared["item_attempts"] == 0.0 and shared["never_practised"] == 0.0
    # A never-seen skill: only its intercept and the "never practised" flag are set.
    fresh = spec.encode(st, None, ("s09",), 0.0)
    assert fresh[spec.skill_index("s09")] == 1.0 and dict(zip(SHARED_FEATURES, fresh[o:]))["never_practised"] == 1.0
    with pytest.raises(ValueError):
        spec.encode(st, "x", (), 0.0)


def test_spec_round_trip_and_refusals():
    spec = FeatureSpec(256, 32, "salt")
    assert FeatureSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        FeatureSpec.from_dict({**spec.to_dict(), "kind": "dkt"})
    with pytest.raises(ValueError):
        FeatureSpec.from_dict({**spec.to_dict(), "n_features": 5})


def test_online_rows_equal_training_rows():
    """The LMS builds rows one answer at a time; training replays history. They must agree."""
    spec = FeatureSpec()
    attempts = simulate_classroom(5, n_students=3)
    X, y, rows = build_dataset(attempts, spec)
    states: dict[str, LearnerState] = {}
    for i, a in enumerate(rows):
        st = states.setdefault(a.student_id, LearnerState())
        assert np.allclose(spec.encode(st, a.item_id, a.skills, a.timestamp), X[i].toarray()[0], atol=1e-6)
        st.observe(a.item_id, a.skills, a.correct, a.timestamp)
        assert y[i] == a.correct


def test_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.4
    p = np.round(rng.random(300), 1)  # many ties
    pos, neg = p[y], p[~y]
    brute = ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (len(pos) * len(neg))
    assert auc(y, p) == pytest.approx(brute)
    assert auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0 and auc([1, 0], [0.1, 0.9]) == 0.0
    assert rmse([1, 0], [1, 0]) == 0.0
    with pytest.raises(ValueError):
        auc([1, 1], [0.2, 0.3])


def test_held_out_students_are_predicted_well(trained):
    _model, m = trained
    # The default model sees shared counts only (no simulator item/skill weights, which would not
    # transfer to a real course), so it sits a little further below the simulator's ceiling.
    assert m["auc"] > 0.65
    assert m["ceiling_auc"] - m["auc"] < 0.08
    assert m["rmse"] < m["ceiling_rmse"] + 0.03


def test_split_keeps_students_apart():
    rows = simulate_classroom(1, n_students=20)
    tr, te = split_students(rows, 0.25, 0)
    assert not ({r.student_id for r, t in zip(rows, te) if t} & {r.student_id for r, t in zip(rows, tr) if t})
    assert 0 < te.sum() < len(rows)
    with pytest.raises(ValueError):
        split_students(rows, 1.5, 0)


def test_model_behaves_like_a_learner_model(trained):
    model, _ = trained
    spec = model.spec
    st = LearnerState()
    before = model.predict(spec.encode(st, "sim/s00/i01", ("s00",), 0.0)[None])[0]
    for k in range(5):
        st.observe("sim/s00/i02", ("s00",), 1, 60.0 * k)
    after = model.predict(spec.encode(st, "sim/s00/i01", ("s00",), 400.0)[None])[0]
    weeks_later = model.predict(spec.encode(st, "sim/s00/i01", ("s00",), 400.0 + 21 * DAY)[None])[0]
    assert after > before + 0.1        # success raises the prediction
    assert weeks_later < after         # time away lowers it (forgetting)


def test_parameter_vector_round_trip_and_warm_start(trained):
    model, _ = trained
    vec = params_to_vector(model)
    assert vec.dtype == np.float32 and vec.shape == (model.spec.n_features + 1,)
    back = vector_to_params(model.spec, vec)
    assert np.array_equal(back.weights, model.weights) and back.bias == pytest.approx(model.bias)
    with pytest.raises(ValueError):
        vector_to_params(model.spec, vec[:-1])
    with pytest.raises(ValueError):
        vector_to_params(model.spec, np.full_like(vec, np.nan))
    # Warm start from the trained vector on the same data barely moves it (federated local rounds).
    X, y, _ = build_dataset(simulate_classroom(9, n_students=10, curriculum=make_curriculum(3)), model.spec)
    tuned = train(X, y, model.spec, init=vec, maxiter=5)
    assert np.isfinite(params_to_vector(tuned)).all()
    with pytest.raises(ValueError):
        train(X, y, model.spec, init=vec[:10])


def test_onnx_export_matches_numpy(trained, tmp_path):
    model, _ = trained
    proto = learner_to_onnx(model)
    path = tmp_path / "learner.onnx"
    onnx.save(proto, str(path))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.shape[1], out.name, out.shape[1]) == (INPUT, model.spec.n_features, OUTPUT, 1)
    X, _, _ = build_dataset(simulate_classroom(2, n_students=4, curriculum=make_curriculum(3)), model.spec)
    rows = X.toarray().astype(np.float32)
    got = sess.run(None, {INPUT: rows})[0]
    assert got.shape == (len(rows), 1)
    assert np.allclose(got[:, 0], model.predict(rows), atol=1e-5)
    assert check_against_numpy(proto, model, rows) < 1e-5
    meta = {p.key: p.value for p in proto.metadata_props}
    assert FeatureSpec.from_dict(json.loads(meta["learner_feature_spec"])) == model.spec


def test_export_refuses_broken_parameters(trained):
    model, _ = trained
    bad = vector_to_params(model.spec, params_to_vector(model))
    bad.weights[0] = np.inf
    with pytest.raises(ValueError):
        learner_to_onnx(bad)


def test_default_model_carries_no_simulator_item_or_skill_offsets(trained):
    """Buckets have no course namespace: weights learned on simulator ids must not reach real
    exercises. A fresh student gets one prediction for every demo skill, and for every exercise of
    equal stated difficulty (the model has no other way to tell them apart)."""
    from collections import defaultdict

    from appliance.content.demo import build

    model, m = trained
    spec = model.spec
    doc = json.loads(build("en")[0])
    fresh = LearnerState()
    skills = [s["id"] for s in doc["skills"]]
    by_skill = model.predict(np.stack([spec.encode(fresh, None, (s,), 0.0) for s in skills]))
    assert np.ptp(by_skill) == 0.0, dict(zip(skills, by_skill))
    groups: dict[float, list] = defaultdict(list)
    for ex in doc["exercises"]:
        groups[ex["difficulty"]].append(model.predict(spec.encode(fresh, ex["id"], ex["skills"], 0.0)[None])[0])
    assert len(doc["exercises"]) > len(groups) > 1
    for diff, ps in groups.items():
        assert max(ps) == min(ps), (diff, ps)
    assert not model.weights[:spec.shared_offset].any() and model.weights[spec.shared_offset:].any()
