"""Recording an answer: one transaction for the attempt, lesson progress, mastery and the outbox event.

``record_attempt(services, student, submission)`` grades the answer (outside the writer thread: grading
free text may run a model) and then, in ONE ``db.write`` job:

- inserts the attempt with ``INSERT OR IGNORE`` on ``attempt_uid``: the browser retries a submission
  whose reply it never saw (flaky Wi-Fi), and the retry must count once and get the original result;
- stores nothing when the student's last answer, under ``REPEAT_WINDOW_S`` ago, was the very same
  answer to the same exercise (a second Enter, or pressing "Check" again on an answer already graded):
  it is no new evidence, and counting it would let a child raise mastery by tapping one button. The
  reply is that answer's result with ``"repeat": true``. Coming back to the question after others,
  or after a while, counts again (practice and spaced review are exactly that);
- updates ``lesson_progress`` (started; completed when the latest answer to every exercise of the lesson is
  right or waits for the teacher, or when a right answer leaves every skill the lesson's questions are
  questions of mastered, as Next up counts mastered, with ``mastery_min_answers`` of its questions right
  (``LessonRule``): Next up moves a quick student on before the last questions, and "0 of 8 lessons
  done" beside eight mastered skills told them nothing; it stays completed);
- updates ``mastery`` counts and a simple rule estimate of p(mastery) per skill of the exercise;
- enqueues an ``attempt`` event (and ``lesson_progress`` when the status changes) in the outbox.

Extension point for the learner model (issue 3): if ``services.get("learner")`` exists,
- ``learner.prepare(student, exercise, correct) -> token`` (optional) is called before the write,
  outside the writer thread, so the model runs there; the token reaches observe as ``attempt["prepared"]``;
- ``learner.observe(conn, attempt) -> {skill_id: p} | None`` is called inside the same transaction
  (in its own savepoint) after the counts are updated; a returned mapping replaces the rule estimates
  in ``mastery.p_mastery``. It must be quick: it runs in the single writer thread.
- ``learner.next_up(student, course_id) -> dict | None`` is called after the commit, outside the writer;
  its result is returned as ``next``.
A failing hook is logged and the rule estimate is kept: an answer is never lost to a model problem.
Free text uses ``services.get("semantic")``, a callable ``(text, references) -> similarity``.
"""
from __future__ import annotations

import json
import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

from flask_babel import gettext as _

from appliance.errors import BadRequest, Conflict, NotFound
from appliance.learning.grading import Grade, answer_as_graded, grade, spec_of
from appliance.learning.plan import CoursePlan, plans_of
from appliance.store.database import now_iso
from appliance.sync import outbox

log = logging.getLogger(__name__)

UID_RE = re.compile(r"^[A-Za-z0-9-]{8,64}$")
MAX_DURATION_MS = 6 * 3600 * 1000
REPEAT_WINDOW_S = 600  # the same answer again within 10 minutes is a repeat, not new practice


def load_exercise(conn: sqlite3.Connection, course_id: str, exercise_id: str) -> dict:
    row = conn.execute("SELECT * FROM exercises WHERE course_id = ? AND id = ?", (course_id, exercise_id)).fetchone()
    if row is None:
        raise NotFound(_("That exercise does not exist (the course may have been updated)."))
    ex = dict(row)
    ex["spec"] = spec_of(ex)
    ex["skills"] = json.loads(ex["skills"])
    return ex


def _validate(submission: dict) -> tuple[str, str, str, dict, int | None]:
    if not isinstance(submission, dict):
        raise BadRequest("Send a JSON object.")
    uid = submission.get("attempt_uid")
    if not isinstance(uid, str) or not UID_RE.match(uid):
        raise BadRequest("attempt_uid must be a UUID made by the page.")
    course_id, exercise_id = submission.get("course_id"), submission.get("exercise_id")
    if not isinstance(course_id, str) or not isinstance(exercise_id, str):
        raise BadRequest("course_id and exercise_id are required.")
    answer = submission.get("answer")
    if not isinstance(answer, dict):
        raise BadRequest("answer must be a JSON object.")
    duration = submission.get("duration_ms")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or duration < 0:
            raise BadRequest("duration_ms must be a positive number.")
        duration = int(min(duration, MAX_DURATION_MS))
    return uid, course_id, exercise_id, answer, duration


def record_attempt(services, student: dict, submission: dict) -> dict:
    """Grade and store one answer; return the result the browser shows. Idempotent on attempt_uid."""
    uid, course_id, exercise_id, answer, duration = _validate(submission)
    below = services.cfg.learning.review_below_confidence
    with services.db.read() as conn:
        previous = conn.execute("SELECT * FROM attempts WHERE attempt_uid = ?", (uid,)).fetchone()
        if previous is not None:
            return _with_review(_replay(conn, student, dict(previous)), below)
        ex = load_exercise(conn, course_id, exercise_id)
        answer = answer_as_graded(ex["kind"], answer)  # what is stored and sent is what was graded
        same = _recent_same_answer(conn, student, ex, answer)  # before grading: a repeat runs no model
        if same is not None:
            return _with_review(same, below)
        done_when = lesson_rule(services, conn, ex)
    result = grade(ex, answer, semantic=services.get("semantic"))
    learner = services.get("learner")
    prepared = _learner_prepare(learner, student, ex, result)

    def write(conn: sqlite3.Connection) -> dict:
        # Again in the writer: two Enters a few ms apart both got past the read above.
        return _recent_same_answer(conn, student, ex, answer) or _store(
            conn, learner, student, ex, uid, answer, result, duration, prepared, done_when)

    stored = _with_review(services.db.write(write), below)
    if stored.get("replayed"):
        return stored
    stored["next"] = _next_up(learner, student, course_id)
    return stored


def _with_review(reply: dict, below: float) -> dict:
    """``review``: the model graded this free-text answer without much confidence, so the student is
    told only that their teacher will read it (the teacher's review page lists it first). The reply then
    carries no grade at all, as for an answer waiting for the teacher: the page shows none, and the grade,
    the worked answer and the mastery's direction must not sit in the browser's developer tools either."""
    confidence = reply.pop("confidence", None)
    reply.setdefault("repeat", False)
    reply["review"] = reply["graded_by"] == "model" and confidence is not None and confidence < below
    if reply["review"]:
        reply.update(correct=None, score=None, feedback="pending", explanation="", mastery={}, mastery_before={})
        reply.pop("lesson_mastered", None)
    return reply


def _recent_same_answer(conn, student: dict, ex: dict, answer: dict) -> dict | None:
    # The student's very last answer, whatever the exercise: coming back to a question after others
    # is practice again; sending the same thing twice in a row is not.
    row = conn.execute("SELECT * FROM attempts WHERE student_id = ? ORDER BY id DESC LIMIT 1",
                       (student["id"],)).fetchone()
    if row is None or (row["course_id"], row["exercise_id"]) != (ex["course_id"], ex["id"]) \
            or json.loads(row["answer"]) != answer:
        return None
    since = (datetime.now(UTC) - datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))).total_seconds()
    if not 0 <= since <= REPEAT_WINDOW_S:  # negative: the clock was set back; count the answer
        return None
    return {**_replay(conn, student, dict(row)), "repeat": True}


@dataclass(frozen=True)
class LessonRule:
    """When mastery finishes ``ex``'s lesson: every skill its questions are questions of mastered
    (``CoursePlan.mastered``, the rule Next up moves on by), and at least ``min_answers`` of its
    questions (all, when it has fewer) answered right: a review lesson whose skills were mastered
    elsewhere is not done after its first question."""
    plan: CoursePlan
    threshold: float
    min_answers: int
    review_below: float | None = None  # a model grade less sure than this waits for the teacher


def lesson_rule(services, conn, ex: dict) -> LessonRule:
    learning = services.cfg.learning
    return LessonRule(plans_of(services).get(conn, ex["course_id"]), learning.mastery_threshold,
                      learning.mastery_min_answers, learning.review_below_confidence)


def _store(conn, learner, student, ex, uid, answer, result: Grade, duration, prepared=None,
           done_when: LessonRule | None = None) -> dict:
    now = now_iso()
    cur = conn.execute(
        "INSERT OR IGNORE INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score,"
        " confidence, graded_by, created_at, duration_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (uid, student["id"], ex["course_id"], ex["id"], json.dumps(answer), int(result.correct), result.score,
         result.confidence, result.graded_by, now, duration),
    )
    if cur.rowcount == 0:
        # The same uid arrived twice at once: the first writer won; answer with its result.
        row = conn.execute("SELECT * FROM attempts WHERE attempt_uid = ?", (uid,)).fetchone()
        return _replay(conn, student, dict(row))
    mastery, before = ({}, {}) if result.graded_by == "pending" else _update_mastery(
        conn, student, ex, result.correct, now)
    attempt = {"attempt_uid": uid, "student_id": student["id"], "student_uid": student["uid"],
               "course_id": ex["course_id"], "exercise_id": ex["id"], "lesson_id": ex["lesson_id"],
               "skills": ex["skills"], "correct": result.correct, "score": result.score,
               "graded_by": result.graded_by, "created_at": now, "duration_ms": duration}
    if learner is not None and result.graded_by != "pending":
        mastery = _learner_observe(conn, learner, {**attempt, "prepared": prepared}, ex, mastery)
    # After the mastery update: a right answer that masters the lesson's last skill finishes it. The
    # reply says whether the lesson's skills are mastered now, so the page can say so at once.
    graded = result.graded_by != "pending"
    mastered_now = graded and done_when is not None and skills_mastered(conn, student["id"], ex, done_when)
    lesson_status = update_lesson(conn, student, ex, now, done_when, result.correct and graded, mastered_now)
    event = {k: v for k, v in attempt.items() if k != "student_id"}
    event["kind"] = ex["kind"]
    if ex["kind"] != "free_text":
        event["answer"] = answer  # item analysis at the hub; free text may hold personal words, so not sent
    outbox.enqueue(conn, "attempt", event)
    return {
        "attempt_uid": uid, "correct": result.correct, "score": result.score, "feedback": result.feedback,
        "graded_by": result.graded_by, "explanation": _explanation(ex, result.graded_by),
        "mastery": mastery, "mastery_before": before,
        "lesson_status": lesson_status, "lesson_mastered": mastered_now, "replayed": False,
        "confidence": result.confidence,
    }


def _latest_rows(conn, student_id: int, course_id: str, lesson_id: str | None):
    """(exercise id, correct, graded_by, attempt id, confidence) of the student's latest answer to each
    exercise they answered."""
    # SQLite takes the bare columns from the row of MAX(a.id): one pass, no subquery per answer.
    return conn.execute(
        "SELECT a.exercise_id, a.correct, a.graded_by, MAX(a.id), a.confidence FROM attempts a JOIN exercises e"
        " ON e.course_id = a.course_id AND e.id = a.exercise_id WHERE a.student_id = ? AND a.course_id = ?"
        + (" AND e.lesson_id = ?" if lesson_id is not None else "") + " GROUP BY a.exercise_id",
        (student_id, course_id) + ((lesson_id,) if lesson_id is not None else ()))


def _waits(graded_by: str, confidence: float | None, below: float | None) -> bool:
    """The answer waits for the teacher: no grade yet, or a model grade less sure than ``below`` (the
    student was told neither right nor wrong, and a page opened later must not tell them either)."""
    return graded_by == "pending" or (below is not None and graded_by == "model" and confidence is not None
                                      and confidence < below)


def latest_answers(conn, student_id: int, course_id: str, lesson_id: str | None = None,
                   below: float | None = None) -> dict[str, str]:
    """Exercise id -> "right", "wrong" or "pending": the state of the student's latest answer to each
    exercise they answered (of one lesson, when given); with ``below`` (``review_below_confidence``), an
    unsure model grade is "pending" too. The course page ticks a question by it, and a lesson is done
    when none of its questions is "wrong" or unanswered."""
    return {r[0]: "pending" if _waits(r[2], r[4], below) else "right" if r[1] else "wrong"
            for r in _latest_rows(conn, student_id, course_id, lesson_id)}


def teacher_marks(conn, student_id: int, course_id: str, lesson_id: str,
                  below: float | None = None) -> dict[str, tuple[bool | None, str]]:
    """Exercise id -> (the teacher's grade, the text of the answer), for the lesson's questions whose
    latest answer a teacher graded, or (None, text) for one that waits for the teacher (``_waits``):
    the student sees it on the question (an answer answered again since has no mark). Without the
    text, "not right yet" came under an empty box."""
    marks = {}
    for ex_id, correct, graded_by, attempt_id, confidence in _latest_rows(conn, student_id, course_id, lesson_id):
        waiting = graded_by != "teacher" and _waits(graded_by, confidence, below)
        if graded_by == "teacher" or waiting:
            row = conn.execute("SELECT answer FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            answer = json.loads(row[0]) if row else {}
            text = answer.get("text") if isinstance(answer, dict) else None
            marks[ex_id] = (None if waiting else bool(correct), text if isinstance(text, str) else "")
    return marks


def skills_mastered(conn, student_id: int, ex: dict, rule: LessonRule, now: dict[str, float] | None = None) -> bool:
    """Every skill of ``ex``'s lesson is mastered, by its estimate and answers in ``mastery``.

    ``now``: the learner model's estimates at this moment (``LearnerService.mastery_now``), for a page
    that says "mastered" next to the progress page and the teacher's grid, which ask the model again;
    the stored estimate is the one right after the last answer (what finishing a lesson goes by)."""
    skills = rule.plan.lesson_own_skills(ex["lesson_id"])
    if not skills:
        return False
    marks = ",".join("?" * len(skills))
    rows = conn.execute(f"SELECT skill_id, p_mastery, successes + failures FROM mastery WHERE student_id = ?"
                        f" AND course_id = ? AND skill_id IN ({marks})", (student_id, ex["course_id"], *skills))
    now = now or {}
    mastered = {r[0] for r in rows
                if rule.plan.mastered(r[0], now.get(r[0], r[1]), r[2], rule.threshold, rule.min_answers)}
    return mastered == set(skills)


BACKFILL_KEY = "lessons_done_by_mastery"  # kv: when finish_mastered_lessons ran on this box


def finish_mastered_lessons(services) -> int:
    """Once per box: apply the mastery rule of ``update_lesson`` to lessons started before it existed,
    as if the student's last answer there had just come in right. Without it a student who had mastered
    a lesson's skills, and whom Next up had moved on, kept it "started" until answering there again.
    Returns how many lessons it finished."""
    def write(conn) -> int:
        if conn.execute("SELECT 1 FROM kv WHERE key = ?", (BACKFILL_KEY,)).fetchone():
            return 0
        now, finished = now_iso(), 0
        rows = conn.execute("SELECT p.student_id, u.uid, p.course_id, p.lesson_id FROM lesson_progress p"
                            " JOIN users u ON u.id = p.student_id WHERE p.status = 'started'").fetchall()
        for student_id, uid, course_id, lesson_id in rows:
            ex = {"course_id": course_id, "lesson_id": lesson_id}
            try:
                rule = lesson_rule(services, conn, ex)
            except NotFound:
                continue  # progress in a course that is gone
            last = conn.execute("SELECT a.correct FROM attempts a JOIN exercises e ON e.course_id = a.course_id"
                                " AND e.id = a.exercise_id WHERE a.student_id = ? AND a.course_id = ? AND e.lesson_id = ?"
                                " AND a.graded_by != 'pending' ORDER BY a.id DESC LIMIT 1",
                                (student_id, course_id, lesson_id)).fetchone()
            right = bool(last and last[0])  # as the rule wants it: a right answer finishes, a wrong one never
            if right and update_lesson(conn, {"id": student_id, "uid": uid}, ex, now, rule, right=True) == "completed":
                finished += 1
        conn.execute("INSERT INTO kv (key, value) VALUES (?, ?)", (BACKFILL_KEY, now))
        return finished

    finished = services.db.write(write)
    if finished:
        log.info("%d lessons whose skills their students had mastered are now done", finished)
    return finished


def update_lesson(conn, student: dict, ex: dict, now: str, done_when: LessonRule | None = None,
                  right: bool = False, mastered_now: bool | None = None) -> str:
    """The lesson's status after an answer to ``ex`` (``right``: it is graded right; ``done_when``: from
    ``lesson_rule``; ``mastered_now``: ``skills_mastered``, when the caller has it), stored, with a
    ``lesson_progress`` event when it changes. Also a teacher's "right"."""
    old = conn.execute("SELECT status FROM lesson_progress WHERE student_id = ? AND course_id = ? AND lesson_id = ?",
                       (student["id"], ex["course_id"], ex["lesson_id"])).fetchone()
    if old is not None and old[0] == "completed":
        return "completed"  # a completed lesson stays completed when practised again: nothing to look at
    total = conn.execute("SELECT COUNT(*) FROM exercises WHERE course_id = ? AND lesson_id = ?",
                         (ex["course_id"], ex["lesson_id"])).fetchone()[0]
    # Done: every question's latest answer is right or waits for the teacher (a lesson answered all wrong
    # is not done), as the course page ticks questions; or its skills are mastered (see the module doc).
    latest = latest_answers(conn, student["id"], ex["course_id"], ex["lesson_id"],
                            done_when.review_below if done_when is not None else None)
    all_right = sum(state != "wrong" for state in latest.values()) >= total
    mastered = (right and done_when is not None
                and sum(state == "right" for state in latest.values()) >= min(done_when.min_answers, total)
                and (mastered_now if mastered_now is not None else skills_mastered(conn, student["id"], ex, done_when)))
    status = "completed" if mastered or all_right else "started"
    conn.execute(
        "INSERT INTO lesson_progress (student_id, course_id, lesson_id, status, updated_at) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (student_id, course_id, lesson_id) DO UPDATE SET status = excluded.status,"
        " updated_at = excluded.updated_at",
        (student["id"], ex["course_id"], ex["lesson_id"], status, now),
    )
    if old is None or old[0] != status:
        outbox.enqueue(conn, "lesson_progress", {"student_uid": student["uid"], "course_id": ex["course_id"],
                                                 "lesson_id": ex["lesson_id"], "status": status, "at": now})
    return status


def _update_mastery(conn, student, ex, correct: bool, now) -> tuple[dict, dict]:
    """(skill -> the rule estimate after this answer, skill -> the estimate stored before it, for the
    skills that had one: what the page showed, so it can say the estimate went up; a struggling child
    read "26% mastered" under "Well done!", with nothing to say the answer had counted)."""
    out, before = {}, {}
    for skill in ex["skills"]:
        row = conn.execute("SELECT successes, failures, p_mastery FROM mastery WHERE student_id = ? AND course_id = ? "
                           "AND skill_id = ?", (student["id"], ex["course_id"], skill)).fetchone()
        ok, bad = (row[0], row[1]) if row else (0, 0)
        if row is not None and row[2] is not None:
            before[skill] = row[2]
        ok, bad = ok + int(correct), bad + int(not correct)
        # The same rule estimate the recommender falls back to (predictor.rule_estimate), so a
        # teacher sees one scale whether or not a learner model is active.
        p_new = round((ok + 1) / (ok + bad + 2), 4)
        conn.execute(
            "INSERT INTO mastery (student_id, course_id, skill_id, successes, failures, p_mastery, last_practice)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (student_id, course_id, skill_id) DO UPDATE SET"
            " successes = successes + excluded.successes, failures = failures + excluded.failures,"
            " p_mastery = excluded.p_mastery, last_practice = excluded.last_practice",
            (student["id"], ex["course_id"], skill, int(correct), int(not correct), p_new, now),
        )
        out[skill] = p_new
    return out, before


def _learner_prepare(learner, student, ex, result: Grade):
    """Model work before the write (outside the single writer thread); observe() then only persists."""
    prepare = getattr(learner, "prepare", None)
    if prepare is None or result.graded_by == "pending":
        return None
    try:
        return prepare(student, ex, result.correct)
    except Exception:  # observe() recomputes inside the write; the answer is never lost
        log.exception("learner prepare failed for exercise %s", ex["id"])
        return None


def _learner_observe(conn, learner, attempt, ex, mastery: dict) -> dict:
    conn.execute("SAVEPOINT learner")
    try:
        model_mastery = learner.observe(conn, attempt)
        if model_mastery:
            for skill, p in model_mastery.items():
                conn.execute("UPDATE mastery SET p_mastery = ? WHERE student_id = ? AND course_id = ? AND skill_id = ?",
                             (float(p), attempt["student_id"], ex["course_id"], skill))
            mastery = {**mastery, **{k: round(float(v), 4) for k, v in model_mastery.items()}}
        conn.execute("RELEASE learner")
    except Exception:
        conn.execute("ROLLBACK TO learner")
        conn.execute("RELEASE learner")
        log.exception("learner model failed on attempt %s; kept the rule estimate", attempt["attempt_uid"])
    return mastery


def _next_up(learner, student, course_id):
    if learner is None or not hasattr(learner, "next_up"):
        return None
    try:
        return learner.next_up(student, course_id)
    except Exception:
        log.exception("learner next_up failed for course %s", course_id)
        return None


def _explanation(ex: dict, graded_by: str) -> str:
    """The worked answer, once the answer is graded: an answer waiting for the teacher gets none, or
    the child could copy it into the box and send it again before the teacher reads the first."""
    return "" if graded_by == "pending" else ex["spec"].get("explanation", "")


def _replay(conn, student: dict, row: dict) -> dict:
    if row["student_id"] != student["id"]:
        raise Conflict("That answer id was already used.")
    try:
        ex = load_exercise(conn, row["course_id"], row["exercise_id"])
    except NotFound:  # the course was upgraded since; the stored grade still stands
        ex = {"skills": [], "spec": {}, "lesson_id": ""}
    mastery = {r[0]: r[1] for r in conn.execute(
        "SELECT skill_id, p_mastery FROM mastery WHERE student_id = ? AND course_id = ?",
        (student["id"], row["course_id"])) if r[0] in ex["skills"]}
    status = conn.execute("SELECT status FROM lesson_progress WHERE student_id = ? AND course_id = ? AND lesson_id = ?",
                          (student["id"], row["course_id"], ex["lesson_id"])).fetchone()
    correct = bool(row["correct"])
    # A wrong model grade stores its similarity as the score (the teacher's review shows it), but the
    # model grades right or wrong, never "partly": the replay must say what the first reply said.
    feedback = ("pending" if row["graded_by"] == "pending" else "correct" if correct
                else "partly" if row["score"] > 0 and row["graded_by"] != "model" else "incorrect")
    return {"attempt_uid": row["attempt_uid"], "correct": correct, "score": row["score"], "feedback": feedback,
            "graded_by": row["graded_by"], "explanation": _explanation(ex, row["graded_by"]), "mastery": mastery,
            "lesson_status": status[0] if status else "started", "replayed": True, "confidence": row["confidence"]}
