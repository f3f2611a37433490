"""A teacher's grade replaces the model's: the attempt, the mastery counts, the learner state, the FSRS
review cards of the exercise's skills and an outbox event (``grade_override``) change together in one
transaction.

The learner state and the cards are rebuilt from the stored grades with the new one (the model's view of
the student and the review schedule must equal a replay of what the teacher now says): each graded answer
on a skill is folded into its card as ``review.Reviews.record`` folds it when the answer comes in, and a
card is created where a right answer left the skill mastered (mastery predicted on the replayed state at
that answer's time, by the learner model or the rule estimate). A card the replay does not make is
removed. The new mastery of the exercise's skills is predicted before the write, like an answer's. If the
student answers in between (the state row moved on), the rebuild and predictions are redone inside the
write.

A "right" can finish the exercise's lesson, by the rule an answer that came in right would have met
(``progress.update_lesson``); a "not right" leaves a finished lesson finished, as practising it does.
The teacher's grade given again (the same verdict on an answer a teacher already graded) changes nothing
and sends no second event.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from flask_babel import gettext as _

from appliance.errors import Conflict, NotFound
from appliance.learning import learner_state, progress
from appliance.learning.features import LearnerState
from appliance.learning.plan import plans_of
from appliance.learning.predictor import rule_estimate
from appliance.learning.review import Reviews, card_id, put
from appliance.store.database import now_iso
from appliance.sync import outbox

log = logging.getLogger(__name__)


def reviewable_attempt(conn, attempt_id: int, class_id: int) -> dict:
    """The attempt, if its student is in ``class_id`` (the caller checked the class is theirs)."""
    row = conn.execute(
        "SELECT a.*, u.uid AS student_uid, e.skills, e.kind, e.lesson_id FROM attempts a JOIN users u ON u.id = a.student_id"
        " JOIN class_members m ON m.student_id = a.student_id AND m.class_id = ?"
        " LEFT JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id WHERE a.id = ?",
        (class_id, attempt_id)).fetchone()
    if row is None:
        raise NotFound(_("That answer is not from a student of this class."))
    return dict(row)


@dataclass
class Replayed:
    """The student's learner state and the review cards of the exercise's skills, replayed."""
    state: LearnerState = field(default_factory=LearnerState)
    cards: dict = field(default_factory=dict)  # skill -> (fsrs Card or None, reviews)


def _replay(conn, attempt: dict, correct: bool, skills: list, reviews: Reviews, mastery_at, threshold: float,
            needed: Callable[[str], int], tests: Callable[[str, str], bool] = lambda exercise, skill: True) -> Replayed:
    """State and cards if ``attempt`` had been graded ``correct`` (pending answers stay out).

    ``mastery_at(state, skills, at)`` -> {skill: p}: asked only where a right answer could create a card.
    ``tests(exercise, skill)``: as ``CoursePlan.tests_skill``, what ``Reviews.record`` folds by.
    """
    out = Replayed(cards={s: (None, 0) for s in skills})
    for r in conn.execute(
            "SELECT a.id, a.exercise_id, a.correct, a.graded_by, a.created_at, e.skills FROM attempts a"
            " LEFT JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id"
            " WHERE a.student_id = ? AND a.course_id = ? ORDER BY a.id", (attempt["student_id"], attempt["course_id"])):
        mine = r["id"] == attempt["id"]
        if r["skills"] is None or (r["graded_by"] == "pending" and not mine):
            continue
        ok = correct if mine else bool(r["correct"])
        its_skills, at = json.loads(r["skills"]), learner_state.epoch_of(r["created_at"])
        out.state.observe(r["exercise_id"], its_skills, ok, at)
        touched = [s for s in skills if s in its_skills]
        if not touched:
            continue
        at_dt, mastery = datetime.fromisoformat(r["created_at"]), _asked_once(mastery_at, out.state, touched, at)
        for s in touched:
            card, n = out.cards[s]
            card = reviews.fold(card, card_id(attempt["student_id"], attempt["course_id"], s), ok, at_dt,
                                partial(mastery, s), threshold, out.state.answers_on(s) >= needed(s),
                                tests(r["exercise_id"], s))
            out.cards[s] = (card, n + (card is not None))
    return out


def _asked_once(mastery_at, state: LearnerState, skills: list, at: float):
    """skill -> its mastery on ``state``, predicted on first use for all ``skills`` at once (most answers
    of a replay need none: a card exists already, or the answer is wrong)."""
    asked: dict = {}

    def of(skill: str) -> float:
        if not asked:
            asked.update(mastery_at(state, skills, at))
        return asked[skill]
    return of


def override(services, teacher: dict, class_id: int, attempt_id: int, correct: bool,
             seen: tuple[str, bool | None] | None = None) -> dict:
    """Grade the attempt ``correct`` as ``teacher``; returns {attempt_id, correct, mastery}.

    ``seen``: the grade (graded_by, correct) on the teacher's page. When another member of staff graded
    the answer since that page was made, nothing is saved (Conflict): the teacher was answering a
    grade that is no longer there."""
    learner = services.get("learner")
    predictor = getattr(learner, "predictor", None)
    reviews = getattr(learner, "reviews", None) or Reviews(services.cfg.learning)
    threshold = services.cfg.learning.mastery_threshold

    def mastery_at(st: LearnerState, of_skills: list, at: float) -> tuple[dict, str]:
        if predictor is not None:
            pred = predictor.predict(st, [(None, [s]) for s in of_skills], at)
            return {s: round(p, 4) for s, p in zip(of_skills, pred.p)}, pred.source
        return {s: round(rule_estimate(st, [s]), 4) for s in of_skills}, "rule"

    def replay(conn, before: dict, skills: list) -> Replayed:
        plan = plans_of(services).get(conn, before["course_id"])
        return _replay(conn, before, correct, skills, reviews, lambda st, sk, at: mastery_at(st, sk, at)[0], threshold,
                       lambda s: plan.answers_to_master(s, services.cfg.learning.mastery_min_answers), plan.tests_skill)

    with services.db.read() as conn:
        before = reviewable_attempt(conn, attempt_id, class_id)
        if before["skills"] is None:
            raise NotFound(_("That exercise is no longer in the course, so its grade cannot change."))
        if before["kind"] != "free_text":
            # Choices and numbers are checked against the course's answer key; only written answers
            # are a matter of judgement (the page offers no other).
            raise NotFound(_("Only written answers can be graded by a teacher."))
        skills = json.loads(before["skills"])
        if _same_teacher_grade(before, correct):
            return _unchanged(conn, before, skills, attempt_id, correct)
        if seen is not None and seen != _grade_of(before):
            raise Conflict(_("Someone else graded this answer while your page was open: it is now marked right."
                             " Your grade was not saved; give it again if you disagree.") if before["correct"] else
                           _("Someone else graded this answer while your page was open: it is now marked not right."
                             " Your grade was not saved; give it again if you disagree."))
        base = learner_state.current_version(conn, before["student_id"], before["course_id"])
        replayed = replay(conn, before, skills)

    mastery, source = mastery_at(replayed.state, skills, time.time())

    def write(conn):
        now = now_iso()
        row = conn.execute("SELECT correct, graded_by, score FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
        if row is not None and _same_teacher_grade(row, correct):
            return None  # a double click's first request got here first with the same grade
        if row is None or (row["graded_by"], row["correct"]) != (before["graded_by"], before["correct"]):
            raise Conflict(_("This answer was graded again meanwhile. Reload the page to see the new grade."))
        conn.execute("UPDATE attempts SET correct = ?, score = ?, confidence = 1, graded_by = 'teacher' WHERE id = ?",
                     (int(correct), 1.0 if correct else 0.0, attempt_id))
        r, m = replayed, mastery
        version = learner_state.current_version(conn, before["student_id"], before["course_id"])
        if version != base:  # the student answered since: replay again, now inside the transaction
            r = replay(conn, before, skills)
            m, _src = mastery_at(r.state, skills, time.time())
        _move_counts(conn, before, skills, correct, m, now)
        if correct:
            _finish_lesson(conn, services, before, now)
        learner_state.save(conn, before["student_id"], before["course_id"], r.state, (version or 0) + 1, now)
        for s, (card, n) in r.cards.items():
            put(conn, before["student_id"], before["course_id"], s, card, n)
        outbox.enqueue(conn, "grade_override", {
            "attempt_uid": before["attempt_uid"], "student_uid": before["student_uid"], "course_id": before["course_id"],
            "exercise_id": before["exercise_id"], "correct": correct, "score": 1.0 if correct else 0.0,
            "previous": {"correct": bool(before["correct"]), "score": before["score"], "graded_by": before["graded_by"],
                         "confidence": before["confidence"]},
            "teacher_uid": teacher["uid"], "at": now})
        return m

    mastery = services.db.write(write)
    if mastery is None:
        with services.db.read() as conn:
            return _unchanged(conn, before, skills, attempt_id, correct)
    log.info("teacher %s graded attempt %s %s (mastery by %s)", teacher["uid"], attempt_id,
             "right" if correct else "wrong", source)
    return {"attempt_id": attempt_id, "correct": correct, "mastery": mastery, "source": source}


def _grade_of(row) -> tuple[str, bool | None]:
    return row["graded_by"], None if row["correct"] is None else bool(row["correct"])


def _same_teacher_grade(row, correct: bool) -> bool:
    """The answer already has this grade from a teacher (a second click, two teachers agreeing)."""
    return row["graded_by"] == "teacher" and bool(row["correct"]) == correct


def _unchanged(conn, before: dict, skills: list, attempt_id: int, correct: bool) -> dict:
    """The reply to a grade the answer already has: nothing moves, and no second grade_override event
    (it would read as a change at the hub)."""
    stored = {r[0]: r[1] for r in conn.execute(
        "SELECT skill_id, p_mastery FROM mastery WHERE student_id = ? AND course_id = ?",
        (before["student_id"], before["course_id"])) if r[0] in skills}
    return {"attempt_id": attempt_id, "correct": correct, "mastery": stored, "source": "unchanged"}


def _finish_lesson(conn, services, before: dict, now: str) -> None:
    """The lesson's status after the teacher's "right", as if the answer had come in right: a lesson
    whose last wrong answer this was is done now (the grid's "Lessons done", the student's course page)."""
    student = {"id": before["student_id"], "uid": before["student_uid"]}
    ex = {"course_id": before["course_id"], "lesson_id": before["lesson_id"]}
    progress.update_lesson(conn, student, ex, now, progress.lesson_rule(services, conn, ex), right=True)


def _move_counts(conn, before: dict, skills: list, correct: bool, mastery: dict, now: str) -> None:
    """Successes/failures as if the answer had always had the teacher's grade; p from the new estimate."""
    was_counted = before["graded_by"] != "pending"  # progress.py does not count answers waiting for a grade
    old = bool(before["correct"])
    for s in skills:
        d_ok = int(correct) - (int(old) if was_counted else 0)
        d_bad = int(not correct) - (int(not old) if was_counted else 0)
        conn.execute(
            "INSERT INTO mastery (student_id, course_id, skill_id, successes, failures, p_mastery, last_practice)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (student_id, course_id, skill_id) DO UPDATE SET"
            " successes = MAX(0, successes + excluded.successes), failures = MAX(0, failures + excluded.failures),"
            " p_mastery = excluded.p_mastery",
            (before["student_id"], before["course_id"], s, d_ok, d_bad, float(mastery[s]), now))
