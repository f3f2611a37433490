"""The student simulator: reproducible, well-formed, and its students learn, forget and differ."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from appliance.learning.simulator import (
    DAY,
    GUESS,
    SLIP,
    Attempt,
    _skill_order,
    _Student,
    make_curriculum,
    simulate_classroom,
)


def test_same_seed_same_classroom_other_seed_other_classroom():
    a = simulate_classroom(7, n_students=5)
    assert a == simulate_classroom(7, n_students=5)
    assert a != simulate_classroom(8, n_students=5)


def test_attempts_are_well_formed():
    cur = make_curriculum(3)
    items = {i.id: i for i in cur.items}
    attempts = simulate_classroom(1, n_students=8, curriculum=cur)
    assert attempts and all(isinstance(a, Attempt) for a in attempts)
    last: dict[str, float] = {}
    for a in attempts:
        assert a.item_id in items and a.skills == items[a.item_id].skills
        assert a.correct in (0, 1)
        assert GUESS <= a.p_true <= 1 - SLIP
        assert a.timestamp >= last.get(a.student_id, -math.inf)
        last[a.student_id] = a.timestamp
    assert len(last) == 8


def test_curriculum_is_a_dag_and_shuffled_order_respects_prerequisites():
    cur = make_curriculum(5, n_skills=15)
    index = {s.id: k for k, s in enumerate(cur.skills)}
    assert all(index[p] < index[s.id] for s in cur.skills for p in s.prerequisites)
    assert any(s.prerequisites for s in cur.skills)
    order = _skill_order(cur, "shuffled", np.random.default_rng(0))
    seen: set[str] = set()
    for sid in order:
        assert set(cur.skills[index[sid]].prerequisites) <= seen
        seen.add(sid)
    assert sorted(order) == sorted(index)
    # Multi-skill items pair a skill with one of its prerequisites.
    multi = [i for i in cur.items if len(i.skills) > 1]
    assert multi and all(i.skills[1] in cur.skills[index[i.skills[0]]].prerequisites for i in multi)


def _accuracy(**kw) -> float:
    return float(np.mean([a.correct for a in simulate_classroom(11, n_students=120, **kw)]))


def test_classrooms_differ_by_pace_ability_and_order():
    assert _accuracy(pace=2.0) > _accuracy(pace=0.5) + 0.03
    assert _accuracy(ability_mean=1.0) > _accuracy(ability_mean=-1.0) + 0.1
    # Skipping prerequisites makes learning slower.
    assert _accuracy(curriculum_order="topological") > _accuracy(curriculum_order="random")


def test_students_learn_with_practice():
    attempts = simulate_classroom(2, n_students=100, review_prob=0.0)
    first, later = [], []
    seen: dict[tuple[str, str], int] = {}
    for a in attempts:
        k = (a.student_id, a.skills[0])
        n = seen.get(k, 0)
        (first if n == 0 else later if n >= 3 else []).append(a.p_true)
        seen[k] = n + 1
    assert np.mean(later) > np.mean(first) + 0.05


def test_forgetting_over_time_and_practice_restores():
    cur = make_curriculum(0)
    item = cur.items_by_skill()["s00"][0]
    prereqs = {s.id: s.prerequisites for s in cur.skills}
    st = _Student("x", 0.0, 1.0, list(prereqs), 1.0, np.random.default_rng(0))
    for t in range(5):
        st.practise(item, 1, t * 60.0, prereqs)
    fresh = st.p_correct(item, 300.0)
    later = st.p_correct(item, 300.0 + 20 * DAY)
    assert later < fresh - 0.03
    st.practise(item, 1, 300.0 + 20 * DAY, prereqs)
    assert st.p_correct(item, 301.0 + 20 * DAY) > later
    # No forgetting: nothing is lost over the same gap.
    keep = _Student("y", 0.0, 1.0, list(prereqs), 0.0, np.random.default_rng(0))
    for t in range(5):
        keep.practise(item, 1, t * 60.0, prereqs)
    assert keep.p_correct(item, 300.0 + 20 * DAY) == pytest.approx(keep.p_correct(item, 300.0))


def test_outcomes_follow_the_true_probabilities():
    attempts = simulate_classroom(4, n_students=150)
    y = np.array([a.correct for a in attempts])
    p = np.array([a.p_true for a in attempts])
    assert abs(y.mean() - p.mean()) < 0.01
    # Calibration by decile of p_true: outcomes track the known truth.
    edges = np.quantile(p, np.linspace(0, 1, 11))
    for lo, hi in itertools.pairwise(edges):
        sel = (p >= lo) & (p <= hi)
        assert abs(y[sel].mean() - p[sel].mean()) < 0.05


@pytest.mark.parametrize("kw", [{"curriculum_order": "alphabetical"}, {"pace": 0}, {"n_students": -1},
                                {"forgetting": -1.0}])
def test_bad_parameters_are_refused(kw):
    with pytest.raises(ValueError):
        simulate_classroom(0, **kw)


def test_make_curriculum_refuses_empty():
    with pytest.raises(ValueError):
        make_curriculum(0, n_skills=0)
