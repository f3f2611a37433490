"""P(a student answers right): the learner model through the inference engine, or a rule estimate.

Queries are ``(item_id, skills)`` pairs; ``item_id=None`` asks for a typical item of those skills,
which is how the learner model expresses mastery of a skill. All queries of one call go to the engine
as one batch (and the engine's batcher joins concurrent students' batches).

When the model is not loaded (no repository, a failed load, the engine missing) the prediction is a
rule estimate from the same counts, Laplace-smoothed accuracy per skill, and ``source`` says so: the
LMS keeps working and the status explains why the model is not used.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from appliance.errors import AppError
from appliance.learning.features import SHARED_FEATURES, FeatureSpec, LearnerState

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    p: list[float]
    source: str          # 'model' or 'rule'
    version: str | None  # model version that answered


def rule_estimate(state: LearnerState, skills) -> float:
    """Smoothed accuracy over the item's skills: (successes + 1) / (answers + 2), averaged."""
    vals = []
    for s in skills:
        st = state.skills.get(s)
        n_ok, n_bad = (st.success, st.failure) if st else (0, 0)
        vals.append((n_ok + 1) / (n_ok + n_bad + 2))
    return float(sum(vals) / len(vals)) if vals else 0.5


def feature_rows(spec: FeatureSpec, state: LearnerState, queries, now: float) -> np.ndarray:
    """``spec.encode`` for many queries at once: the same numbers, several times faster.

    A next-up asks about every exercise of a course (dozens of rows per answer, under a classroom's
    load), and exercises share their skills: the skill part of a row is encoded once per skill set,
    rows are copied from it in one numpy step, and only the item's own two features (its indicator and
    how often the student answered it) are set per exercise, exactly where ``encode_sparse`` puts them.
    """
    item_col = spec.shared_offset + SHARED_FEATURES.index("item_attempts")
    sets: dict[tuple, int] = {}
    which = np.empty(len(queries), dtype=np.intp)
    item_rows, item_cols, seen_rows, seen_vals = [], [], [], []
    for i, (item, skills) in enumerate(queries):
        which[i] = sets.setdefault(tuple(skills), len(sets))
        if item is not None:
            item_rows.append(i)
            item_cols.append(spec.item_index(item))
            n = state.items.get(item, 0)
            if n:
                seen_rows.append(i)
                seen_vals.append(math.log1p(n))
    bases = np.zeros((len(sets), spec.n_features), dtype=np.float32)
    for skills, j in sets.items():
        idx, val = spec.encode_sparse(state, None, list(skills), now)
        np.add.at(bases[j], idx, val)  # add: hashed skills of one item may share a bucket
    rows = bases[which]
    # Item columns and the item-attempts column are zero in every base row, and each (row, column)
    # pair occurs once, so plain assignment gives what encode's add would.
    rows[item_rows, item_cols] = 1.0
    rows[seen_rows, item_col] = np.asarray(seen_vals, dtype=np.float32)
    return rows


class LearnerPredictor:
    def __init__(self, services, model_name: str):
        self._services = services
        self.model_name = model_name
        self._specs: dict[str, FeatureSpec] = {}
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def _engine(self):
        return self._services.get("inference")

    def model(self):
        """(loaded model, feature spec) or (None, why not)."""
        engine = self._engine()
        if engine is None:
            return None, "the inference engine is not running"
        loaded = engine.loaded(self.model_name)
        if loaded is None:
            status = {m["name"]: m for m in engine.models_status()}.get(self.model_name)
            why = (status or {}).get("error") or "not in the model repository"
            return None, f"model '{self.model_name}' is not loaded ({why})"
        return loaded, self._spec_of(loaded)

    def _spec_of(self, loaded) -> FeatureSpec | str:
        key = f"{loaded.name}/{loaded.version}"
        with self._lock:
            spec = self._specs.get(key)
        if spec is None:
            try:
                spec = FeatureSpec.from_dict(loaded.mv.meta["learner_feature_spec"])
            except (KeyError, ValueError, TypeError) as exc:
                return f"model '{key}' has no usable learner_feature_spec ({exc})"
            with self._lock:
                self._specs[key] = spec
        return spec

    def available(self) -> tuple[bool, str]:
        loaded, spec = self.model()
        if loaded is None or isinstance(spec, str):
            return False, spec
        return True, f"{self.model_name} v{loaded.version}"

    def predict(self, state: LearnerState, queries: list[tuple[str | None, list]], now: float) -> Prediction:
        if not queries:
            return Prediction([], "rule", None)
        loaded, spec = self.model()
        if loaded is not None and not isinstance(spec, str):
            try:
                return self._run(loaded, spec, state, queries, now)
            except AppError as exc:  # queue full, swap in progress...: this answer uses the rule
                self.last_error = exc.message
                log.warning("learner model unavailable for one request: %s", exc.message)
        return Prediction([rule_estimate(state, skills) for _item, skills in queries], "rule", None)

    def predict_many(self, items: list[tuple[LearnerState, list]], now: float) -> list[Prediction] | None:
        """``predict`` for several students' (state, queries) at once, in one model run (a class grid
        of 40 students is one run, not 40). All from the model, or None when it is not serving or the
        run failed: a page must not show the model's values for some students and the rule's for others."""
        loaded, spec = self.model()
        if loaded is None or isinstance(spec, str):
            return None
        asked = [(state, queries) for state, queries in items if queries]
        p = np.zeros(0, dtype=np.float32)
        version = loaded.version
        if asked:
            try:
                version, p = self._run_rows(loaded, spec, lambda sp: np.vstack(
                    [feature_rows(sp, state, queries, now) for state, queries in asked]))
            except AppError as exc:
                self.last_error = exc.message
                log.warning("learner model unavailable for a page's predictions: %s", exc.message)
                return None
        out, at = [], 0
        for _state, queries in items:
            out.append(Prediction([float(x) for x in p[at:at + len(queries)]], "model", version))
            at += len(queries)
        return out

    def _run(self, loaded, spec: FeatureSpec, state, queries, now) -> Prediction:
        version, p = self._run_rows(loaded, spec, lambda sp: feature_rows(sp, state, queries, now))
        return Prediction([float(x) for x in p], "model", version)

    def _run_rows(self, loaded, spec: FeatureSpec, make_rows) -> tuple[str, np.ndarray]:
        """(version that answered, one probability per row) for the rows ``make_rows(spec)`` builds."""
        rows = make_rows(spec)
        input_name = loaded.mv.inputs[0].name if loaded.mv.inputs else "features"
        version, out = self._engine().run(self.model_name, {input_name: rows})
        if version != loaded.version:
            # Swapped between reading the spec and running: rows may not fit the new version.
            fresh, fresh_spec = self.model()
            if fresh is None or isinstance(fresh_spec, str):
                raise AppError(f"model {self.model_name} changed while predicting")
            if fresh_spec != spec:
                return self._run_rows(fresh, fresh_spec, make_rows)
        return version, next(iter(out.values())).reshape(-1)
