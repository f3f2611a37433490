"""Local training: fit the learner model on this classroom's answers, starting from the global model.

The objective differs from the install-time trainer (``learning.learner_train.train``) in two ways,
both so that many small classrooms average into one good model:
- the L2 penalty applies only to the weights of features that occur in the local data. A classroom
  that never saw an item must not pull that item's weight towards zero (it knows nothing about it),
  and leaving unseen weights untouched keeps the update sparse, hence small on the wire;
- a FedProx term ``mu/2 * |theta - theta_global|^2`` per interaction keeps a classroom with unusual
  students (non-IID data) from running far from the shared model in one night.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from appliance.learning.features import FeatureSpec
from appliance.learning.learner_train import build_dataset, expit, optimize, sparse  # scipy, loaded on first use

log = logging.getLogger(__name__)


@dataclass
class LocalFit:
    params: np.ndarray     # float32 [n_features + 1]
    rows: int
    loss_before: float     # mean log loss of the base model on the training rows
    loss_after: float
    iterations: int


def fit_local(X: sparse.csr_matrix, y: np.ndarray, base: np.ndarray, *, l2: float, mu: float,
              max_iter: int) -> LocalFit:
    """Minimise sum(log loss) + l2/2 |w_seen|^2 + n mu/2 |theta - base|^2 from ``base`` with L-BFGS."""
    n, f = X.shape
    base64 = np.asarray(base, dtype=np.float64).reshape(-1)
    if base64.shape != (f + 1,):
        raise ValueError(f"base model has {base64.size} parameters, the features need {f + 1}")
    if n == 0:
        raise ValueError("no training rows")
    y = np.asarray(y, dtype=np.float64)
    seen = np.zeros(f, dtype=np.float64)
    seen[np.unique(X.indices)] = 1.0
    Xt = X.T.tocsr()
    prox = mu * n

    def loss_grad(theta):
        w, b = theta[:-1], theta[-1]
        z = X @ w + b
        diff = theta - base64
        loss = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * np.sum(seen * w * w) + 0.5 * prox * diff @ diff
        r = expit(z) - y
        grad = np.empty_like(theta)
        grad[:-1] = Xt @ r + l2 * seen * w
        grad[-1] = r.sum()
        return loss, grad + prox * diff

    before = _mean_log_loss(X, y, base64)
    res = optimize.minimize(loss_grad, base64.copy(), jac=True, method="L-BFGS-B",
                            options={"maxiter": max_iter, "gtol": 1e-6})
    if not res.success:
        log.info("local training stopped after %d iterations: %s", res.nit, res.message)
    params = res.x.astype(np.float32)
    if not np.all(np.isfinite(params)):
        raise ValueError("local training diverged (non-finite parameters)")
    return LocalFit(params, n, before, _mean_log_loss(X, y, params.astype(np.float64)), int(res.nit))


def _mean_log_loss(X, y, theta) -> float:
    z = X @ theta[:-1] + theta[-1]
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


@dataclass
class Rows:
    """Every answer as a feature row, with who gave it and when, so callers can pick windows cheaply.

    Features are built from each student's *whole* history (the counts need it); windows only pick
    which rows are labels for training or evaluation.
    """
    X: sparse.csr_matrix
    y: np.ndarray
    owners: np.ndarray   # student id per row
    seqs: np.ndarray     # recording order per row (``Interaction.seq``; the timestamp for simulator rows)

    @classmethod
    def build(cls, attempts: Sequence, spec: FeatureSpec) -> Rows:
        X, y, ordered = build_dataset(attempts, spec)
        owners = np.asarray([a.student_id for a in ordered], dtype=object)
        seqs = np.fromiter((float(getattr(a, "seq", 0) or a.timestamp) for a in ordered), dtype=np.float64,
                           count=len(ordered))
        return cls(X, y, owners, seqs)

    def mask(self, *, since: float | None = None, exclude: frozenset | set = frozenset(),
             only: frozenset | set | None = None) -> np.ndarray:
        """Rows recorded after ``since`` (a ``seqs`` value; all when None), minus/only the given students."""
        keep = np.fromiter((o not in exclude and (only is None or o in only) for o in self.owners),
                           dtype=bool, count=len(self.owners))
        if since is not None:
            keep &= self.seqs > since
        return keep
