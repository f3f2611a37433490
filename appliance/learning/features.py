"""Learner-model features: a student's history -> one float32 row, built online and cheaply.

Best-LR style (Gervet et al., 2020): an item intercept, skill intercepts, per-skill and total
success/failure counts on a log(1+n) scale, plus recency. Items and skills are *hashed* into fixed
buckets instead of given a vocabulary, for two reasons:
- the default model is trained on simulated items but must run on any course, and
- federated averaging needs every box to share one parameter layout whatever courses it holds.
A collision only makes two items share a difficulty parameter; the count features stay exact.

`LearnerState` is the per-student running summary the LMS keeps (JSON-serialisable); after each
answer `observe()` updates it in O(number of skills of the item), and `FeatureSpec.encode()` turns it
into the model's input row for any item (or, with no item, for a skill's typical item = mastery).
"""
from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

DAY = 86400.0
# Weight of the newest answer in the per-skill recent-accuracy average.
RECENT_ALPHA = 0.3
SHARED_FEATURES = ("skill_success", "skill_failure", "total_success", "total_failure",
                   "item_attempts", "days_since_practice", "never_practised", "recent_accuracy")


@dataclass
class SkillStats:
    success: int = 0
    failure: int = 0
    last: float | None = None
    recent: float = 0.5


@dataclass
class LearnerState:
    """What the learner model needs to know about one student's history."""
    skills: dict[str, SkillStats] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    success: int = 0
    failure: int = 0

    def observe(self, item_id: str, skills: tuple[str, ...] | list[str], correct: bool | int,
                timestamp: float) -> None:
        """Fold one answer into the summary (call after predicting for it, never before)."""
        ok = bool(correct)
        for s in skills:
            st = self.skills.setdefault(s, SkillStats())
            if ok:
                st.success += 1
            else:
                st.failure += 1
            st.last = timestamp if st.last is None else max(st.last, timestamp)
            st.recent = (1 - RECENT_ALPHA) * st.recent + RECENT_ALPHA * float(ok)
        self.items[item_id] = self.items.get(item_id, 0) + 1
        if ok:
            self.success += 1
        else:
            self.failure += 1

    def answers_on(self, skill: str) -> int:
        st = self.skills.get(skill)
        return st.success + st.failure if st else 0

    def to_dict(self) -> dict:
        return {"skills": {k: [v.success, v.failure, v.last, v.recent] for k, v in self.skills.items()},
                "items": dict(self.items), "success": self.success, "failure": self.failure}

    @classmethod
    def from_dict(cls, data: dict) -> LearnerState:
        try:
            skills = {k: SkillStats(int(v[0]), int(v[1]), None if v[2] is None else float(v[2]),
                                    float(v[3])) for k, v in data.get("skills", {}).items()}
            return cls(skills, {k: int(v) for k, v in data.get("items", {}).items()},
                       int(data.get("success", 0)), int(data.get("failure", 0)))
        except (TypeError, ValueError, IndexError, AttributeError) as exc:
            raise ValueError(f"not a learner state: {exc}") from exc


@dataclass(frozen=True)
class FeatureSpec:
    """The layout of a feature row; stored next to the model so the LMS builds identical rows."""
    item_buckets: int = 1024
    skill_buckets: int = 128
    salt: str = "ce-learner"
    version: int = 1
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def n_features(self) -> int:
        return self.item_buckets + 3 * self.skill_buckets + len(SHARED_FEATURES)

    @property
    def shared_offset(self) -> int:
        return self.item_buckets + 3 * self.skill_buckets

    def _bucket(self, kind: str, key: str, n: int) -> int:
        # blake2b, not hash(): Python's hash is salted per process and rows must match across boxes.
        k = (kind, key)
        idx = self._cache.get(k)
        if idx is None:
            digest = hashlib.blake2b(f"{self.salt}:{kind}:{key}".encode(), digest_size=8).digest()
            idx = int.from_bytes(digest, "little") % n
            if len(self._cache) < 100_000:  # bounded: ids come from courses, but be safe
                self._cache[k] = idx
        return idx

    def item_index(self, item_id: str) -> int:
        return self._bucket("item", item_id, self.item_buckets)

    def skill_index(self, skill_id: str) -> int:
        return self.item_buckets + self._bucket("skill", skill_id, self.skill_buckets)

    def encode_sparse(self, state: LearnerState, item_id: str | None, skills, now: float
                      ) -> tuple[list[int], list[float]]:
        """Non-zero (indices, values) of the row; `item_id=None` means "a typical item"."""
        if not skills:
            raise ValueError("an item needs at least one skill")
        idx: list[int] = []
        val: list[float] = []
        if item_id is not None:
            idx.append(self.item_index(item_id))
            val.append(1.0)
        w = 1.0 / len(skills)
        S = self.skill_buckets
        succ = fail = recent = days = 0.0
        never = practised = 0
        for s in skills:
            st = self.skills_of(state, s)
            j = self.skill_index(s)
            ls, lf = math.log1p(st.success), math.log1p(st.failure)
            idx += [j, j + S, j + 2 * S]
            val += [w, w * ls, w * lf]
            succ += w * ls
            fail += w * lf
            recent += w * st.recent
            if st.last is None:
                never += 1
            else:
                practised += 1
                days += math.log1p(max(0.0, now - st.last) / DAY)
        shared = [succ, fail, math.log1p(state.success), math.log1p(state.failure),
                  math.log1p(state.items.get(item_id, 0)) if item_id is not None else 0.0,
                  days / practised if practised else 0.0, never * w, recent - 0.5]
        o = self.shared_offset
        for k, v in enumerate(shared):
            if v:
                idx.append(o + k)
                val.append(v)
        return idx, val

    @staticmethod
    def skills_of(state: LearnerState, skill: str) -> SkillStats:
        return state.skills.get(skill) or SkillStats()

    def encode(self, state: LearnerState, item_id: str | None, skills, now: float) -> np.ndarray:
        """One dense float32 row of length `n_features` (what the ONNX model takes)."""
        row = np.zeros(self.n_features, dtype=np.float32)
        idx, val = self.encode_sparse(state, item_id, skills, now)
        np.add.at(row, idx, val)  # add: hashed skills of one item may share a bucket
        return row

    def to_dict(self) -> dict:
        return {"kind": "best-lr-hashed", "version": self.version, "item_buckets": self.item_buckets,
                "skill_buckets": self.skill_buckets, "salt": self.salt,
                "shared_features": list(SHARED_FEATURES), "n_features": self.n_features}

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        if data.get("kind") != "best-lr-hashed" or data.get("version") != 1:
            raise ValueError(f"unsupported learner feature spec: {data.get('kind')!r} v{data.get('version')}")
        if list(data.get("shared_features", SHARED_FEATURES)) != list(SHARED_FEATURES):
            raise ValueError("learner feature spec lists different shared features than this code")
        spec = cls(int(data["item_buckets"]), int(data["skill_buckets"]), str(data["salt"]))
        if "n_features" in data and int(data["n_features"]) != spec.n_features:
            raise ValueError("learner feature spec n_features does not match its buckets")
        return spec
