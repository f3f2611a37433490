"""Student simulator: synthetic classrooms with a known truth, for training and benchmarking.

The default learner model is trained on simulated data at install time (no real students yet), and
the benchmark compares models against the simulator's own true P(correct), the ceiling no model can
beat. The federated work simulates many *different* classrooms (pace, ability, curriculum order), so
every knob that makes classrooms non-IID is a parameter of `simulate_classroom`.

The model of a student, per skill:
- consolidated mastery m in [0, 1] grows with practice (more after a correct answer, less when the
  prerequisites are weak);
- forgetting: the usable share of m decays with the time since the skill was last practised,
  exp(-dt / stability); each practice raises the stability, more so after a longer gap (spacing);
- P(correct) = guess + (1 - guess - slip) * sigmoid(ability + 4 * mean(usable mastery) - 2 - difficulty).

Everything is drawn from `numpy.random.default_rng(seed)`, so a seed reproduces a classroom exactly.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

DAY = 86400.0
CURRICULUM_ORDERS = ("topological", "shuffled", "random")
GUESS, SLIP = 0.12, 0.06
# How much of a skill survives complete forgetting (people keep part of what they learnt).
RETAINED_FLOOR = 0.35


@dataclass(frozen=True)
class Skill:
    id: str
    prerequisites: tuple[str, ...]


@dataclass(frozen=True)
class Item:
    id: str
    skills: tuple[str, ...]
    difficulty: float


@dataclass(frozen=True)
class Curriculum:
    skills: tuple[Skill, ...]
    items: tuple[Item, ...]

    def items_by_skill(self) -> dict[str, list[Item]]:
        """Items grouped by their primary (first) skill."""
        out: dict[str, list[Item]] = {s.id: [] for s in self.skills}
        for item in self.items:
            out[item.skills[0]].append(item)
        return out


@dataclass(frozen=True)
class Attempt:
    student_id: str
    item_id: str
    skills: tuple[str, ...]
    correct: int
    timestamp: float
    p_true: float


def make_curriculum(seed: int = 0, n_skills: int = 12, items_per_skill: int = 12,
                    multi_skill_fraction: float = 0.15, max_prerequisites: int = 2) -> Curriculum:
    """A curriculum whose skills form a DAG: skill k may only require skills with a smaller index.

    Classrooms that should share a model (federated learning) must share the curriculum, so it has
    its own seed, separate from the classroom's.
    """
    if n_skills < 1 or items_per_skill < 1:
        raise ValueError("a curriculum needs at least one skill and one item per skill")
    rng = np.random.default_rng(seed)
    skills = []
    for k in range(n_skills):
        # Prerequisites come from the few skills just before, which gives chains with some branching
        # rather than a random graph where everything depends on skill 0.
        window = list(range(max(0, k - 3), k))
        n_pre = min(len(window), int(rng.integers(1, max_prerequisites + 1))) if window else 0
        pre = sorted(rng.choice(window, size=n_pre, replace=False).tolist()) if n_pre else []
        skills.append(Skill(f"s{k:02d}", tuple(f"s{p:02d}" for p in pre)))
    items = []
    for skill in skills:
        base = rng.normal(0.0, 0.4)  # some skills are harder than others
        for j in range(items_per_skill):
            tags = (skill.id,)
            if skill.prerequisites and rng.random() < multi_skill_fraction:
                tags = (skill.id, str(rng.choice(skill.prerequisites)))
            items.append(Item(f"sim/{skill.id}/i{j:02d}", tags, float(base + rng.normal(0.0, 0.8))))
    return Curriculum(tuple(skills), tuple(items))


def _skill_order(curriculum: Curriculum, order: str, rng: np.random.Generator) -> list[str]:
    ids = [s.id for s in curriculum.skills]
    if order == "topological":
        return ids
    if order == "random":  # a teacher who ignores prerequisites
        return [ids[i] for i in rng.permutation(len(ids))]
    # "shuffled": a random order that still respects every prerequisite (Kahn with random picks).
    prereqs = {s.id: set(s.prerequisites) for s in curriculum.skills}
    done: list[str] = []
    while len(done) < len(ids):
        ready = [s for s in ids if s not in done and prereqs[s] <= set(done)]
        done.append(ready[int(rng.integers(len(ready)))])
    return done


class _Student:
    """One simulated learner; holds its latent state per skill."""

    def __init__(self, sid: str, ability: float, learn_rate: float, skills: list[str],
                 forgetting: float, rng: np.random.Generator):
        self.id = sid
        self.ability = ability
        self.learn_rate = learn_rate
        self.forgetting = forgetting
        # Some prior knowledge, more of it for able students.
        self.mastery = {s: float(np.clip(rng.beta(1.2, 6.0) + 0.05 * ability, 0.0, 0.6)) for s in skills}
        self.stability = {s: 1.5 * DAY for s in skills}
        self.last = {s: -math.inf for s in skills}

    def usable(self, skill: str, now: float) -> float:
        if self.last[skill] == -math.inf:
            return self.mastery[skill]  # prior knowledge is not subject to our forgetting clock
        dt = max(0.0, now - self.last[skill])
        retention = math.exp(-self.forgetting * dt / self.stability[skill])
        return self.mastery[skill] * (RETAINED_FLOOR + (1.0 - RETAINED_FLOOR) * retention)

    def p_correct(self, item: Item, now: float) -> float:
        m = sum(self.usable(s, now) for s in item.skills) / len(item.skills)
        z = self.ability + 4.0 * m - 2.0 - item.difficulty
        return GUESS + (1.0 - GUESS - SLIP) / (1.0 + math.exp(-z))

    def practise(self, item: Item, correct: int, now: float, prereqs: dict[str, tuple[str, ...]]):
        for s in item.skills:
            pre = prereqs[s]
            # Learning a skill whose prerequisites are shaky is slow.
            ready = min((self.usable(p, now) for p in pre), default=1.0)
            gain = self.learn_rate * (0.16 if correct else 0.09) * (0.25 + 0.75 * ready)
            # Consolidate what was forgotten before adding: practice restores usable knowledge.
            self.mastery[s] = self.usable(s, now)
            self.mastery[s] += gain * (1.0 - self.mastery[s])
            if self.last[s] != -math.inf:
                gap = max(0.0, now - self.last[s])
                self.stability[s] *= 1.15 + 1.2 * (1.0 - math.exp(-gap / self.stability[s]))
            self.last[s] = now


def simulate_classroom(seed: int, n_students: int = 30, pace: float = 1.0, ability_mean: float = 0.0,
                       ability_sd: float = 1.0, curriculum_order: str = "topological",
                       curriculum: Curriculum | None = None, sessions: int = 10,
                       attempts_per_session: int = 15, review_prob: float = 0.2,
                       forgetting: float = 1.0, mastery_streak: int = 3, max_per_skill: int = 12,
                       start_time: float = 1_700_000_000.0, student_prefix: str | None = None
                       ) -> list[Attempt]:
    """Simulate one classroom; returns its attempts in time order per student.

    `pace` scales how fast students learn, `ability_mean`/`ability_sd` their ability distribution,
    `curriculum_order` is "topological", "shuffled" (random but prerequisite-respecting) or "random"
    (ignores prerequisites), `forgetting` scales the forgetting rate. A student works on the current
    skill until `mastery_streak` right answers in a row or `max_per_skill` attempts, and with
    `review_prob` reviews an earlier skill instead.
    """
    if curriculum_order not in CURRICULUM_ORDERS:
        raise ValueError(f"curriculum_order must be one of {CURRICULUM_ORDERS}, not {curriculum_order!r}")
    if n_students < 0 or sessions < 0 or attempts_per_session < 0:
        raise ValueError("n_students, sessions and attempts_per_session must not be negative")
    if pace <= 0 or forgetting < 0:
        raise ValueError("pace must be positive and forgetting non-negative")
    curriculum = curriculum or make_curriculum()
    rng = np.random.default_rng(seed)
    order = _skill_order(curriculum, curriculum_order, rng)
    by_skill = curriculum.items_by_skill()
    prereqs = {s.id: s.prerequisites for s in curriculum.skills}
    prefix = student_prefix if student_prefix is not None else f"c{seed}"
    attempts: list[Attempt] = []
    for n in range(n_students):
        student = _Student(f"{prefix}-u{n:03d}", float(rng.normal(ability_mean, ability_sd)),
                           pace * float(rng.lognormal(0.0, 0.3)), list(prereqs), forgetting, rng)
        attempts.extend(_run_student(student, order, by_skill, prereqs, rng, sessions,
                                     attempts_per_session, review_prob, mastery_streak,
                                     max_per_skill, start_time))
    log.debug("simulated classroom seed=%s: %d students, %d attempts", seed, n_students, len(attempts))
    return attempts


def _run_student(student: _Student, order: list[str], by_skill: dict[str, list[Item]],
                 prereqs: dict[str, tuple[str, ...]], rng: np.random.Generator, sessions: int,
                 attempts_per_session: int, review_prob: float, mastery_streak: int,
                 max_per_skill: int, start_time: float) -> list[Attempt]:
    out: list[Attempt] = []
    now = start_time + float(rng.uniform(0, 0.5 * DAY))
    current, streak, on_skill = 0, 0, 0
    for _ in range(sessions):
        for _ in range(max(1, int(rng.poisson(attempts_per_session)))):
            finished = current >= len(order)
            if current > 0 and (finished or rng.random() < review_prob):
                skill, review = order[int(rng.integers(min(current, len(order))))], True
            else:
                skill, review = order[current], False
            pool = by_skill[skill]
            item = pool[int(rng.integers(len(pool)))]
            p = student.p_correct(item, now)
            correct = int(rng.random() < p)
            out.append(Attempt(student.id, item.id, item.skills, correct, now, p))
            student.practise(item, correct, now, prereqs)
            if not review:
                streak = streak + 1 if correct else 0
                on_skill += 1
                if streak >= mastery_streak or on_skill >= max_per_skill:
                    current, streak, on_skill = current + 1, 0, 0
            now += float(rng.uniform(20.0, 120.0))
        # Sessions are days apart, with the odd long gap (weekend, holiday).
        now += float(rng.exponential(1.5 * DAY)) + 0.3 * DAY
    return out
