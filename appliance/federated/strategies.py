"""How the hub combines a buffer of updates into one step.

Every strategy takes the deltas in a fixed order (the aggregator sorts them by update key) and works in
float64, so the same buffer always gives the bit-identical result, whatever order the updates arrived in.

- ``fedavg``: weighted mean (weights = samples x staleness factor). Efficient, not robust: one update
  scaled by 100 moves the model 100 times too far.
- ``median``: coordinate-wise median (Yin et al. 2018). Unweighted: a weight is a claim made by the
  sender, and a robust rule must not let one sender buy influence by claiming many samples.
- ``trimmed_mean``: per coordinate, drop the ``trim_fraction`` largest and smallest values, then average
  the rest (also unweighted, same reason).
- ``norm_bound``: scale every update down to at most ``bound`` in L2 norm, then the weighted mean
  (Sun et al. 2019): a scaled-up update keeps its direction but loses its extra length.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)


def _stack(deltas: Sequence[np.ndarray]) -> np.ndarray:
    if len(deltas) == 0:
        raise ValueError("nothing to aggregate")
    sizes = {np.asarray(d).size for d in deltas}
    if len(sizes) != 1:
        raise ValueError(f"updates of different sizes: {sorted(sizes)}")
    return np.stack([np.asarray(d, dtype=np.float64).reshape(-1) for d in deltas])


def fedavg(deltas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    stack = _stack(deltas)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (stack.shape[0],) or np.any(w < 0) or not math.isfinite(float(w.sum())) or w.sum() <= 0:
        raise ValueError("weights must be non-negative, finite, one per update, and not all zero")
    acc = np.zeros(stack.shape[1], dtype=np.float64)
    for row, wi in zip(stack, w):  # explicit order: the sum is the same every time
        acc += wi * row
    return acc / w.sum()


def median(deltas: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    return np.median(_stack(deltas), axis=0)


def trimmed_mean(deltas: Sequence[np.ndarray], weights: Sequence[float] | None = None,
                 trim_fraction: float = 0.2) -> np.ndarray:
    if not 0 <= trim_fraction < 0.5:
        raise ValueError("trim_fraction must be in [0, 0.5)")
    stack = np.sort(_stack(deltas), axis=0)
    m = stack.shape[0]
    # At least one value per end is trimmed as soon as there are 3 updates: the point is to resist one
    # outlier even in a small buffer. Never trim everything.
    k = min(max(math.floor(trim_fraction * m), 1 if m >= 3 and trim_fraction > 0 else 0), (m - 1) // 2)
    return stack[k: m - k].mean(axis=0)


def norm_bound(deltas: Sequence[np.ndarray], weights: Sequence[float], bound: float) -> np.ndarray:
    if bound <= 0:
        raise ValueError("norm bound must be positive")
    stack = _stack(deltas)
    norms = np.linalg.norm(stack, axis=1)
    factors = np.minimum(1.0, bound / np.maximum(norms, 1e-300))
    if np.any(factors < 1.0):
        log.info("norm bound %.3g scaled down %d of %d updates (largest norm %.3g)",
                 bound, int(np.sum(factors < 1.0)), len(norms), float(norms.max()))
    return fedavg(stack * factors[:, None], weights)


def combine(strategy: str, deltas: Sequence[np.ndarray], weights: Sequence[float], *,
            trim_fraction: float = 0.2, bound: float = 0.0) -> np.ndarray:
    """Dispatch on the configured strategy name (see ``FederatedSettings.strategy``)."""
    table: dict[str, Callable[[], np.ndarray]] = {
        "fedavg": lambda: fedavg(deltas, weights),
        "median": lambda: median(deltas),
        "trimmed_mean": lambda: trimmed_mean(deltas, trim_fraction=trim_fraction),
        "norm_bound": lambda: norm_bound(deltas, weights, bound),
    }
    try:
        fn = table[strategy]
    except KeyError:
        raise ValueError(f"unknown aggregation strategy {strategy!r}; one of {', '.join(table)}") from None
    out = fn()
    if not np.all(np.isfinite(out)):
        raise ValueError("aggregated update is not finite")
    return out
