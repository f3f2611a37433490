"""Train the Best-LR learner model (L2 logistic regression, L-BFGS) and score it.

The model is a flat float32 parameter vector [weights..., bias] plus its `FeatureSpec`, so the
federated code can average deltas of `params_to_vector(model)` across boxes and rebuild a model
with `vector_to_params(spec, vector)`; `train(..., init=vector)` warm-starts local training.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from appliance.lazy import LazyModule
from appliance.learning.features import FeatureSpec, LearnerState

# scipy only when a model is really trained or scored (see appliance/lazy.py for why).
optimize = LazyModule("scipy.optimize")
sparse = LazyModule("scipy.sparse")
_special = LazyModule("scipy.special")
_stats = LazyModule("scipy.stats")


def expit(x):
    return _special.expit(x)


def rankdata(a, *args, **kwargs):
    return _stats.rankdata(a, *args, **kwargs)


log = logging.getLogger(__name__)


@dataclass
class LearnerModel:
    spec: FeatureSpec
    weights: np.ndarray  # float32 [n_features]
    bias: float

    def predict(self, X) -> np.ndarray:
        """P(correct) for dense or sparse rows, float64 [N]."""
        return expit(np.asarray(X @ self.weights.astype(np.float64)).reshape(-1) + self.bias)


def params_to_vector(model: LearnerModel) -> np.ndarray:
    return np.concatenate([model.weights.astype(np.float32), np.float32([model.bias])])


def vector_to_params(spec: FeatureSpec, vector: np.ndarray) -> LearnerModel:
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    if vector.shape[0] != spec.n_features + 1:
        raise ValueError(f"parameter vector has {vector.shape[0]} values, the spec needs "
                         f"{spec.n_features + 1}")
    if not np.all(np.isfinite(vector)):
        raise ValueError("parameter vector holds NaN or infinite values")
    return LearnerModel(spec, vector[:-1].copy(), float(vector[-1]))


def build_dataset(attempts: Iterable, spec: FeatureSpec) -> tuple[sparse.csr_matrix, np.ndarray, list]:
    """Replay each student's attempts in time order: features *before* each answer, then its label.

    `attempts` are objects with student_id, item_id, skills, correct, timestamp (simulator
    `Attempt`s or LMS rows). Returns (X [N, F] CSR, y [N], the attempts in row order).
    """
    by_student: dict[str, list] = defaultdict(list)
    for a in attempts:
        by_student[a.student_id].append(a)
    indptr, indices, values, labels, ordered = [0], [], [], [], []
    for rows in by_student.values():
        rows.sort(key=lambda a: a.timestamp)
        state = LearnerState()
        for a in rows:
            idx, val = spec.encode_sparse(state, a.item_id, tuple(a.skills), a.timestamp)
            indices += idx
            values += val
            indptr.append(len(indices))
            labels.append(int(a.correct))
            ordered.append(a)
            state.observe(a.item_id, a.skills, a.correct, a.timestamp)
    X = sparse.csr_matrix((np.asarray(values, dtype=np.float64), np.asarray(indices, dtype=np.int64),
                           np.asarray(indptr, dtype=np.int64)), shape=(len(labels), spec.n_features))
    X.sum_duplicates()
    return X, np.asarray(labels, dtype=np.float64), ordered


def train(X, y: np.ndarray, spec: FeatureSpec, l2: float = 1.0, init: np.ndarray | None = None,
          maxiter: int = 500) -> LearnerModel:
    """Minimise sum(log loss) + l2/2 * |w|^2 (the bias is not penalised) with L-BFGS."""
    n, f = X.shape
    if f != spec.n_features:
        raise ValueError(f"X has {f} columns, the spec has {spec.n_features}")
    if n == 0 or len(y) != n:
        raise ValueError("training needs at least one row and one label per row")
    y = np.asarray(y, dtype=np.float64)
    x0 = np.zeros(f + 1) if init is None else np.asarray(init, dtype=np.float64).copy()
    if x0.shape != (f + 1,):
        raise ValueError(f"init has shape {x0.shape}, expected ({f + 1},)")
    Xt = X.T.tocsr()

    def loss_grad(theta):
        w, b = theta[:-1], theta[-1]
        z = X @ w + b
        # log(1 + e^z) - y z, computed stably.
        loss = np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * w @ w
        r = expit(z) - y
        grad = np.empty_like(theta)
        grad[:-1] = Xt @ r + l2 * w
        grad[-1] = r.sum()
        return loss, grad

    res = optimize.minimize(loss_grad, x0, jac=True, method="L-BFGS-B",
                            options={"maxiter": maxiter, "gtol": 1e-6})
    if not res.success:
        # L-BFGS stopping on the iteration cap still leaves a usable model; say so rather than fail.
        log.warning("learner training stopped early: %s", res.message)
    log.debug("learner trained on %d rows: loss %.4f after %d iterations", n, res.fun / n, res.nit)
    return vector_to_params(spec, res.x.astype(np.float32))


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve via the rank-sum statistic (ties get average ranks)."""
    y = np.asarray(y).astype(bool)
    n1, n0 = int(y.sum()), int((~y).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("AUC needs both right and wrong answers")
    r = rankdata(np.asarray(p, dtype=np.float64))
    return float((r[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def rmse(y: np.ndarray, p: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, dtype=np.float64) - np.asarray(p)) ** 2)))


def split_students(rows: list, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) that keep each student's rows on one side (held-out students)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError("test_fraction must be between 0 and 1")
    owners = [r.student_id for r in rows]
    students = sorted(set(owners))
    rng = np.random.default_rng(seed)
    test = set(rng.choice(students, size=max(1, round(len(students) * test_fraction)),
                          replace=False).tolist())
    mask = np.fromiter((o in test for o in owners), dtype=bool, count=len(owners))
    return ~mask, mask


def simulate_training_data(seed: int = 0, classrooms: int = 12, students: int = 40) -> list:
    """Varied simulated classrooms (pace, ability, curriculum order) so the default model has seen
    slow and fast, weak and strong, and prerequisite-ignoring classes before it meets a real one."""
    from appliance.learning.simulator import make_curriculum, simulate_classroom

    curriculum = make_curriculum(seed)
    paces, means, orders = (0.6, 1.0, 1.6), (-0.6, 0.0, 0.6, 0.0), ("topological", "shuffled", "random")
    attempts: list = []
    for c in range(classrooms):
        attempts += simulate_classroom(seed * 1000 + c, n_students=students, pace=paces[c % 3],
                                       ability_mean=means[c % 4], curriculum_order=orders[c % 3],
                                       curriculum=curriculum)
    return attempts


def shared_columns_only(X, spec: FeatureSpec):
    """`X` with every item- and skill-bucket column set to zero (shared count/recency columns kept).

    Items and skills are hashed into buckets with no course namespace, so weights learned on the
    simulator's ids would land on whatever real exercises and skills share those buckets and give
    them arbitrary difficulty offsets (seen: up to +-1.1 logits on demo exercises). Only the shared
    features mean the same thing in every course; a model fitted on them alone keeps its other
    weights at exactly zero (the L2 term pulls them there and no gradient moves them).
    """
    keep = np.zeros(spec.n_features)
    keep[spec.shared_offset:] = 1.0
    return (sparse.csr_matrix(X) @ sparse.diags(keep)).tocsr()


def train_default(seed: int = 0, classrooms: int = 12, students: int = 40, l2: float = 1.0,
                  spec: FeatureSpec | None = None) -> tuple[LearnerModel, dict]:
    """Train the shipped default model on simulated classrooms; metrics come from the 20% of
    students held out of training.

    The simulator's item and skill ids are not a real course's, so the default model is fitted on the
    shared features only (`shared_columns_only`): every item- and skill-bucket weight is zero and a
    fresh student gets the same prediction on every skill and exercise of a new course. A box's own
    training (or a federated round) learns real item and skill weights later.
    """
    spec = spec or FeatureSpec()
    X, y, rows = build_dataset(simulate_training_data(seed, classrooms, students), spec)
    X = shared_columns_only(X, spec)
    tr, te = split_students(rows, 0.2, seed)
    model = train(X[tr], y[tr], spec, l2=l2)
    model.weights[:spec.shared_offset] = 0.0  # exact, whatever the optimiser's rounding
    p = model.predict(X[te])
    p_true = np.fromiter((rows[i].p_true for i in np.flatnonzero(te)), dtype=np.float64)
    metrics = {"auc": round(auc(y[te], p), 4), "rmse": round(rmse(y[te], p), 4),
               "ceiling_auc": round(auc(y[te], p_true), 4), "ceiling_rmse": round(rmse(y[te], p_true), 4),
               "train_rows": int(tr.sum()), "test_rows": int(te.sum()),
               "data": f"simulator seed={seed} classrooms={classrooms} students={students}",
               "features": "shared only (item and skill buckets zeroed: simulator ids)"}
    return model, metrics
