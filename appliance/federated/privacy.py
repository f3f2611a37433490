"""Clipping, local differential-privacy noise and the privacy budget it costs.

The mechanism run on the box for every update is the Gaussian mechanism on a clipped vector:

    M(D) = clip(delta(D), C) + N(0, (z C)^2 I)        z = noise_multiplier, C = clip_norm

Accounting (documented here because the admin page shows its result):
- Neighbouring inputs are *any two data sets of the whole box*: after clipping, two updates differ by
  at most 2C in L2 norm, so the sensitivity is 2C. That protects every student of the class, and the
  class as a whole, which is stronger than the usual per-example guarantee.
- The Gaussian mechanism with sensitivity S and noise sd sigma satisfies Renyi DP of every order alpha
  with eps(alpha) = alpha S^2 / (2 sigma^2) (Mironov 2017, Prop. 7), i.e. rho-zCDP with
  rho = S^2 / (2 sigma^2) = 2 / z^2 here. Compositions add rho, so the box only has to sum rho over the
  updates it has sent.
- Conversion to (eps, delta): eps = min_alpha [alpha rho + log(1/delta) / (alpha - 1)]
  (Mironov 2017, Prop. 3) = rho + 2 sqrt(rho log(1/delta)), at alpha = 1 + sqrt(log(1/delta) / rho).
  This is the simple, slightly conservative conversion; it never under-reports the budget.
With z = 0 there is no noise and no privacy guarantee: rho and eps are infinite, and shown as such.
"""
from __future__ import annotations

import logging
import math

import numpy as np

log = logging.getLogger(__name__)


def clip_l2(vector: np.ndarray, max_norm: float) -> tuple[np.ndarray, float, bool]:
    """Scale ``vector`` down to L2 norm ``max_norm`` if it is longer; returns (vector, norm before, clipped)."""
    if max_norm <= 0:
        raise ValueError("clip norm must be positive")
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v.astype(np.float64)))
    if not math.isfinite(norm):
        raise ValueError("update holds NaN or infinite values")
    if norm <= max_norm:
        return v.copy(), norm, False
    # float64 for the scaling so the clipped norm is max_norm to float32 precision, never above it by more.
    return (v.astype(np.float64) * (max_norm / norm)).astype(np.float32), norm, True


def gaussian_noise(vector: np.ndarray, clip_norm: float, noise_multiplier: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Add N(0, (noise_multiplier * clip_norm)^2) to every coordinate (the vector must be clipped first)."""
    if noise_multiplier < 0:
        raise ValueError("noise multiplier must not be negative")
    if noise_multiplier == 0:
        return np.asarray(vector, dtype=np.float32).copy()
    sigma = noise_multiplier * clip_norm
    noise = rng.normal(0.0, sigma, size=np.shape(vector))
    return (np.asarray(vector, dtype=np.float64) + noise).astype(np.float32)


def rho_per_update(noise_multiplier: float) -> float:
    """zCDP cost of one update (sensitivity 2C, sd zC); infinite without noise."""
    if noise_multiplier <= 0:
        return math.inf
    return 2.0 / noise_multiplier ** 2


def epsilon_from_rho(rho: float, delta: float) -> float:
    """(eps, delta)-DP implied by rho-zCDP (see the module docstring)."""
    if not 0 < delta < 1:
        raise ValueError("delta must be between 0 and 1")
    if rho <= 0:
        return 0.0
    if math.isinf(rho):
        return math.inf
    return rho + 2.0 * math.sqrt(rho * math.log(1.0 / delta))


def budget_summary(rhos: list[float], delta: float) -> dict:
    """What the admin page and ``train status`` show about the privacy budget spent so far."""
    total = float(sum(rhos)) if rhos else 0.0
    eps = epsilon_from_rho(total, delta)
    return {"updates": len(rhos), "rho": total, "delta": delta,
            "epsilon": eps if math.isfinite(eps) else None,
            "noise": bool(rhos) and math.isfinite(total),
            "text": ("no update sent yet" if not rhos else
                     f"epsilon = {eps:.2f} at delta = {delta:g} over {len(rhos)} updates" if math.isfinite(eps)
                     else f"no privacy noise: epsilon is unbounded ({len(rhos)} updates)")}
