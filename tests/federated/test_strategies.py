"""Each aggregation strategy: what it computes, and that the robust ones resist one scaled-up update."""
from __future__ import annotations

import numpy as np
import pytest

from appliance.federated import strategies


def _honest(n=9, dim=400, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 0.1, size=dim)
    return truth, [truth + rng.normal(0, 0.02, size=dim) for _ in range(n)]


def test_fedavg_is_the_weighted_mean():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    assert np.allclose(strategies.fedavg([a, b], [3.0, 1.0]), [0.75, 0.25])
    with pytest.raises(ValueError):
        strategies.fedavg([a, b], [0.0, 0.0])
    with pytest.raises(ValueError):
        strategies.fedavg([a, np.zeros(3)], [1.0, 1.0])


def test_median_and_trimmed_mean_are_what_they_say():
    rows = [np.array([1.0, 10.0]), np.array([2.0, 20.0]), np.array([3.0, 30.0]), np.array([4.0, 1000.0]),
            np.array([-50.0, 40.0])]
    assert np.allclose(strategies.median(rows), [2.0, 30.0])
    # 5 values, 20% -> drop one at each end per coordinate.
    assert np.allclose(strategies.trimmed_mean(rows, trim_fraction=0.2), [2.0, 30.0])
    assert np.allclose(strategies.trimmed_mean(rows, trim_fraction=0.0), np.mean(np.stack(rows), axis=0))


def test_norm_bound_scales_long_updates_down_to_the_bound_only():
    short, long_ = np.array([0.3, 0.4]), np.array([30.0, 40.0])  # norms 0.5 and 50
    out = strategies.norm_bound([short, long_], [1.0, 1.0], bound=1.0)
    assert np.allclose(out, (short + long_ / 50.0) / 2)


@pytest.mark.parametrize("strategy", ["median", "trimmed_mean", "norm_bound"])
def test_robust_strategies_resist_one_update_scaled_by_100(strategy):
    truth, honest = _honest()
    poisoned = honest[0] * 100
    weights = [100.0] * 10
    clean = strategies.combine(strategy, honest + [honest[0]], weights, trim_fraction=0.2, bound=2.0)
    attacked = strategies.combine(strategy, honest + [poisoned], weights, trim_fraction=0.2, bound=2.0)
    naive = strategies.combine("fedavg", honest + [poisoned], weights)
    err = lambda v: float(np.linalg.norm(v - truth))
    assert err(naive) > 50 * err(clean)  # the attack is real
    assert err(attacked) < 3 * err(clean) + 0.05 * np.linalg.norm(truth)


def test_the_same_buffer_always_gives_the_same_bits():
    _, honest = _honest(seed=3)
    w = list(np.linspace(1, 5, len(honest)))
    for name in ("fedavg", "median", "trimmed_mean", "norm_bound"):
        a = strategies.combine(name, honest, w, bound=1.0)
        b = strategies.combine(name, honest, w, bound=1.0)
        assert a.tobytes() == b.tobytes(), name


def test_unknown_strategy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown aggregation strategy"):
        strategies.combine("krum", [np.zeros(2)], [1.0])
