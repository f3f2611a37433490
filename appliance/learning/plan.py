"""A course's structure as the recommender sees it: skills with prerequisites, lessons, exercises.

Read once per course version and kept in memory (a course changes only when it is imported again;
``bundle_sha256`` + ``imported_at`` notice that), so a recommendation after each answer costs no
content queries.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field

from appliance.errors import NotFound


@dataclass(frozen=True)
class Skill:
    id: str
    name: str
    prerequisites: tuple[str, ...]


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    position: int
    skills: tuple[str, ...]


@dataclass(frozen=True)
class Exercise:
    id: str
    lesson_id: str
    position: int
    kind: str
    prompt: str
    skills: tuple[str, ...]


@dataclass
class CoursePlan:
    course_id: str
    title: str
    language: str
    version_key: tuple
    skills: dict[str, Skill]
    lessons: list[Lesson]
    exercises: dict[str, Exercise]
    skill_lessons: dict[str, list[str]] = field(default_factory=dict)
    skill_exercises: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self):
        self._by_id = {le.id: le for le in self.lessons}
        self._own_skills: dict[str, tuple[str, ...]] = {}  # filled on first use; a plan never changes

    def lesson(self, lesson_id: str) -> Lesson | None:
        return self._by_id.get(lesson_id)

    def tests_skill(self, exercise_id: str, skill: str) -> bool:
        """The exercise is a question *of* ``skill``: it practises it, and no other skill it practises
        builds on it. A word problem also tagged "fraction of a number" is a word problem: a slip there
        says more about word problems than about a skill the student had already mastered."""
        ex = self.exercises.get(exercise_id)
        if ex is None or skill not in ex.skills:
            return False
        return not any(skill in self.skills[k].prerequisites for k in ex.skills if k != skill and k in self.skills)

    def answers_to_master(self, skill: str, min_answers: int) -> int:
        """Graded answers ``skill`` needs before it can count as mastered: ``learning.mastery_min_answers``
        (at least 1), but no more than the skill has questions. A skill with one question would otherwise
        need that question answered three times, each ten minutes or another question apart (a quicker
        identical answer is a repeat, not counted). One rule for Next up, review cards and the grid."""
        n = len(self.skill_exercises.get(skill, ()))
        return max(1, min(min_answers, n) if n else min_answers)

    def mastered(self, skill: str, p: float | None, answers: int, threshold: float, min_answers: int) -> bool:
        """The one rule for "mastered" that Next up moves on by and that finishes a lesson: the estimate
        ``p`` at ``threshold`` or above, after ``answers_to_master`` graded answers."""
        return p is not None and p >= threshold and answers >= self.answers_to_master(skill, min_answers)

    def lesson_own_skills(self, lesson_id: str) -> tuple[str, ...]:
        """The skills the lesson's questions are questions *of* (``tests_skill``): mastering all of them
        finishes the lesson. "Word problems" does not wait on "fraction of a number" being mastered."""
        own = self._own_skills.get(lesson_id)
        if own is None:
            own = tuple(dict.fromkeys(s for ex in self.exercises.values() if ex.lesson_id == lesson_id
                                      for s in ex.skills if self.tests_skill(ex.id, s)))
            self._own_skills[lesson_id] = own
        return own


def load_plan(conn: sqlite3.Connection, course_id: str) -> CoursePlan:
    c = conn.execute("SELECT id, title, language, bundle_sha256, imported_at FROM courses WHERE id = ?",
                     (course_id,)).fetchone()
    if c is None:
        raise NotFound(f"There is no course {course_id!r}.")
    skills = {r["id"]: Skill(r["id"], r["name"], tuple(json.loads(r["prerequisites"] or "[]")))
              for r in conn.execute("SELECT id, name, prerequisites FROM skills WHERE course_id = ? ORDER BY rowid",
                                    (course_id,))}
    lessons = [Lesson(r["id"], r["title"], r["position"], tuple(json.loads(r["skills"] or "[]")))
               for r in conn.execute("SELECT id, title, position, skills FROM lessons WHERE course_id = ?"
                                     " ORDER BY position", (course_id,))]
    exercises = {r["id"]: Exercise(r["id"], r["lesson_id"], r["position"], r["kind"], r["prompt"],
                                   tuple(json.loads(r["skills"])))
                 for r in conn.execute("SELECT id, lesson_id, position, kind, prompt, skills FROM exercises"
                                       " WHERE course_id = ? ORDER BY position", (course_id,))}
    plan = CoursePlan(course_id, c["title"], c["language"], (c["bundle_sha256"], c["imported_at"]),
                      skills, lessons, exercises)
    order = {le.id: le.position for le in lessons}
    for ex in exercises.values():
        for s in ex.skills:
            plan.skill_exercises.setdefault(s, []).append(ex.id)
    # A lesson teaches the skills it declares and those its exercises practise.
    taught: dict[str, set[str]] = {le.id: set(le.skills) for le in lessons}
    for ex in exercises.values():
        taught.setdefault(ex.lesson_id, set()).update(ex.skills)
    for lesson_id, skill_ids in taught.items():
        for s in skill_ids:
            plan.skill_lessons.setdefault(s, []).append(lesson_id)
    for ids in plan.skill_lessons.values():
        ids.sort(key=lambda i: order.get(i, 1 << 30))
    return plan


def plans_of(services) -> Plans:
    """The course plans of these services: one cache for Next up, review cards, regrades and the
    teacher's reports, re-read when a course is imported again."""
    return services.shared("course_plans", Plans)


class Plans:
    """Course plans of this process, reloaded when a course is imported again.

    The version is checked at most every ``recheck_s`` per course: every answer asks for the plan, and
    a re-imported course showing up in recommendations a second later is soon enough.
    """

    def __init__(self, recheck_s: float = 1.0):
        self.recheck_s = recheck_s
        self._plans: dict[str, tuple[CoursePlan, float]] = {}
        self._lock = threading.Lock()

    def get(self, conn: sqlite3.Connection, course_id: str) -> CoursePlan:
        now = time.monotonic()
        with self._lock:
            plan, checked = self._plans.get(course_id, (None, 0.0))
        if plan is not None and now - checked < self.recheck_s:
            return plan
        row = conn.execute("SELECT bundle_sha256, imported_at FROM courses WHERE id = ?", (course_id,)).fetchone()
        if row is None:
            raise NotFound(f"There is no course {course_id!r}.")
        if plan is None or plan.version_key != (row[0], row[1]):
            plan = load_plan(conn, course_id)
        with self._lock:
            self._plans[course_id] = (plan, now)
        return plan
