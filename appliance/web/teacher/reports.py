"""What a class has learned: the students x skills grid, the hardest questions, one student's history.

The grid shows each cell as a level word and a percentage as well as a colour, so it reads the same
in greyscale, on a washed-out projector and for colour-blind teachers.
"""
from __future__ import annotations

import json

from flask import current_app, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from appliance.errors import NotFound
from appliance.languages import base_language, in_language_sql
from appliance.learning.grading import REPLACED_SQL, TO_CHECK_SQL
from appliance.learning.plan import plans_of
from appliance.people import classes as cls_mod
from appliance.web.mastery import refresh as refresh_mastery
from appliance.web.security import current_user, requires
from appliance.web.teacher import bp

HELP_BELOW = 0.4
# This many wrong answers in a row to a skill's own questions flag "Needs help" whatever the model says:
# it leans on how a student does elsewhere and can show 57% for a child who got seven in a row wrong.
WRONG_RUN = 3
# Only a student's latest answers in the course are looked at: an old run they have since moved on from
# is no news for the teacher (and the grid stays one bounded query).
RECENT_ANSWERS = 30
LEVELS = {  # key -> (symbol, label); the symbol is text, not colour
    "none": ("–", _l("Not started")),
    "help": ("!", _l("Needs help")),
    "learning": ("…", _l("Learning")),
    "mastered": ("✓", _l("Mastered")),
}


def _services():
    return current_app.extensions["ce"]


def level_of(p: float | None, attempts: int, mastered: bool, wrong_run: bool = False) -> str:
    """The cell's level; ``mastered``: by ``CoursePlan.mastered``, the rule Next up and the lessons go
    by; ``wrong_run``: the student's last ``WRONG_RUN`` answers to the skill's questions were wrong."""
    if not attempts:
        return "none"
    if wrong_run:
        return "help"
    if mastered:
        return "mastered"
    return "learning" if p >= HELP_BELOW else "help"


def course_for(conn, course_id: str | None, class_id: int | None = None, language: str = "") -> dict | None:
    """The course asked for; else the one the class has answered most in (the one its teacher is
    here about); before any answer, the first by title in ``language`` (the class's, else the page's),
    so a new English class does not open on "Fracciones"."""
    if course_id:
        row = conn.execute("SELECT id, title FROM courses WHERE id = ?", (course_id,)).fetchone()
        if row is None:
            raise NotFound(_("There is no such course."))
        return dict(row)
    row = conn.execute(
        "SELECT c.id, c.title FROM courses c ORDER BY (SELECT COUNT(*) FROM attempts a JOIN class_members cm"
        " ON cm.student_id = a.student_id AND cm.class_id = :class WHERE a.course_id = c.id) DESC,"
        f" {in_language_sql('c.language')} DESC, c.title LIMIT 1",
        {"class": class_id, "lang": base_language(language)}).fetchone()
    return dict(row) if row else None


def class_grid(conn, services, class_id: int, course_id: str) -> dict:
    """{skills: [...], lessons: total, rows: [{student, cells: [{p, level, attempts, right, wrong}], lessons_done}]}"""
    learning, plan = services.cfg.learning, plans_of(services).get(conn, course_id)
    threshold = learning.mastery_threshold
    skills = [dict(r) for r in conn.execute("SELECT id, name FROM skills WHERE course_id = ? ORDER BY rowid", (course_id,))]
    students = cls_mod.roster(conn, class_id)
    stored = [dict(r) for r in conn.execute(
        "SELECT m.* FROM mastery m JOIN class_members cm ON cm.student_id = m.student_id AND cm.class_id = ?"
        " WHERE m.course_id = ?", (class_id, course_id))]
    mastery = {(r["student_id"], r["skill_id"]): r for r in refresh_mastery(conn, stored)}
    done = dict(conn.execute(
        "SELECT p.student_id, COUNT(*) FROM lesson_progress p JOIN class_members cm ON cm.student_id = p.student_id"
        " AND cm.class_id = ? WHERE p.course_id = ? AND p.status = 'completed' GROUP BY p.student_id",
        (class_id, course_id)).fetchall())
    runs = wrong_runs(conn, class_id, plan)
    to_check = _to_check(conn, class_id, course_id, learning.review_below_confidence)
    rows = []
    for s in students:
        cells = []
        for sk in skills:
            m = mastery.get((s["id"], sk["id"]))
            attempts = (m["successes"] + m["failures"]) if m else 0
            p = m["p_mastery"] if m else None
            mastered = plan.mastered(sk["id"], p, attempts, threshold, learning.mastery_min_answers)
            level = level_of(p, attempts, mastered, (s["id"], sk["id"]) in runs)
            cells.append({"skill": sk["id"], "p": p, "attempts": attempts, "level": level,
                          "right": m["successes"] if m else 0, "wrong": m["failures"] if m else 0,
                          "to_check": to_check.get((s["id"], sk["id"]), 0)})
        rows.append({"student": s, "cells": cells, "lessons_done": done.get(s["id"], 0)})
    return {"skills": skills, "lessons": len(plan.lessons), "rows": rows}


def _to_check(conn, class_id: int, course_id: str, below: float) -> dict[tuple[int, str], int]:
    """(student, skill) -> written answers for the teacher to check (``TO_CHECK_SQL``: ungraded and not
    answered again since, or graded by the model too unsure to tell the student), as the class's list
    of answers to check counts them: the cell says so next to its right and wrong counts, which count a
    model's unsure grade already (the student was told "your teacher will read it")."""
    out: dict[tuple[int, str], int] = {}
    for student_id, skills in conn.execute(
            "SELECT a.student_id, e.skills FROM attempts a JOIN class_members cm ON cm.student_id = a.student_id"
            " AND cm.class_id = ? JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id"
            f" WHERE a.course_id = ? AND {TO_CHECK_SQL}", (class_id, course_id, below)):
        for skill in json.loads(skills or "[]"):
            out[(student_id, skill)] = out.get((student_id, skill), 0) + 1
    return out


def wrong_runs(conn, class_id: int, plan) -> set[tuple[int, str]]:
    """(student id, skill) whose last ``WRONG_RUN`` graded answers to the skill's own questions
    (``CoursePlan.tests_skill``), among the student's latest ``RECENT_ANSWERS`` in the course, were all wrong."""
    runs: dict[tuple[int, str], list[bool]] = {}
    for r in conn.execute(
            "SELECT student_id, exercise_id, correct FROM (SELECT a.student_id, a.exercise_id, a.correct, a.id,"
            " ROW_NUMBER() OVER (PARTITION BY a.student_id ORDER BY a.id DESC) AS n FROM attempts a"
            " JOIN class_members cm ON cm.student_id = a.student_id AND cm.class_id = ?"
            " WHERE a.course_id = ? AND a.graded_by != 'pending') WHERE n <= ? ORDER BY student_id, id DESC",
            (class_id, plan.course_id, RECENT_ANSWERS)):
        ex = plan.exercises.get(r["exercise_id"])
        for s in ex.skills if ex else ():
            run = runs.setdefault((r["student_id"], s), [])
            if len(run) < WRONG_RUN and plan.tests_skill(ex.id, s):
                run.append(bool(r["correct"]))
    return {key for key, run in runs.items() if len(run) == WRONG_RUN and not any(run)}


def hardest_questions(conn, class_id: int, course_id: str, limit: int = 15) -> list[dict]:
    """Exercises this class answers right least often (first answers and retries alike)."""
    rows = conn.execute(
        "SELECT e.id, e.prompt, e.kind, l.title AS lesson_title, COUNT(*) AS attempts, SUM(a.correct) AS right,"
        " COUNT(DISTINCT a.student_id) AS students FROM attempts a"
        " JOIN class_members cm ON cm.student_id = a.student_id AND cm.class_id = ?"
        " JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id"
        " LEFT JOIN lessons l ON l.course_id = e.course_id AND l.id = e.lesson_id"
        " WHERE a.course_id = ? AND a.graded_by != 'pending' GROUP BY e.id"
        " ORDER BY CAST(SUM(a.correct) AS REAL) / COUNT(*) ASC, COUNT(*) DESC LIMIT ?",
        (class_id, course_id, limit)).fetchall()
    return [dict(r, rate=(r["right"] or 0) / r["attempts"]) for r in rows]


def student_history(conn, services, student_id: int, limit: int = 200) -> dict:
    attempts = [dict(r) for r in conn.execute(
        "SELECT a.created_at, a.correct, a.score, a.answer, a.graded_by, a.duration_ms, e.prompt, e.kind, e.spec,"
        f" c.title AS course_title, l.title AS lesson_title, {REPLACED_SQL} AS replaced FROM attempts a"
        " LEFT JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id"
        " LEFT JOIN courses c ON c.id = a.course_id LEFT JOIN lessons l ON l.course_id = e.course_id AND l.id = e.lesson_id"
        " WHERE a.student_id = ? ORDER BY a.created_at DESC, a.id DESC LIMIT ?", (student_id, limit))]
    for a in attempts:
        a["answer_text"] = describe_answer(a)
    mastery = refresh_mastery(conn, [dict(r) for r in conn.execute(
        "SELECT c.title AS course_title, s.name, m.course_id, m.skill_id, m.p_mastery, m.successes, m.failures"
        " FROM mastery m JOIN skills s ON s.course_id = m.course_id AND s.id = m.skill_id"
        " JOIN courses c ON c.id = m.course_id WHERE m.student_id = ? ORDER BY c.title, s.rowid", (student_id,))],
        student_id)
    plans = {cid: plans_of(services).get(conn, cid) for cid in {m["course_id"] for m in mastery}}
    learning = services.cfg.learning
    for m in mastery:
        m["mastered"] = plans[m["course_id"]].mastered(m["skill_id"], m["p_mastery"], m["successes"] + m["failures"],
                                                       learning.mastery_threshold, learning.mastery_min_answers)
    lessons = [dict(r) for r in conn.execute(
        "SELECT c.title AS course_title, l.title, p.status, p.updated_at FROM lesson_progress p"
        " JOIN lessons l ON l.course_id = p.course_id AND l.id = p.lesson_id JOIN courses c ON c.id = p.course_id"
        " WHERE p.student_id = ? ORDER BY p.updated_at DESC", (student_id,))]
    return {"attempts": attempts, "mastery": mastery, "lessons": lessons}


def describe_answer(a: dict) -> str:
    """The answer as the child saw it (the chosen option's text, not its index)."""
    try:
        answer = json.loads(a["answer"])
        choices = json.loads(a["spec"]).get("choices", []) if a.get("spec") else []
    except (TypeError, ValueError):
        return a.get("answer") or ""
    if "choice" in answer and isinstance(answer["choice"], int) and answer["choice"] < len(choices):
        return choices[answer["choice"]]
    if "choices" in answer:
        return ", ".join(choices[i] for i in answer["choices"] if isinstance(i, int) and i < len(choices))
    return str(answer.get("value", answer.get("text", "")))


def _class_and_course(class_id: int):
    services = _services()
    with services.db.read() as conn:
        cls = cls_mod.get_class(conn, class_id, current_user())
        course = course_for(conn, request.args.get("course"), class_id, cls.get("language") or get_locale().language)
        courses = [dict(r) for r in conn.execute("SELECT id, title FROM courses ORDER BY title")]
    return cls, course, courses


@bp.get("/classes/<int:class_id>/progress")
@requires("teacher", "admin")
def progress(class_id: int):
    cls, course, courses = _class_and_course(class_id)
    grid = None
    if course is not None:
        with _services().db.read() as conn:
            grid = class_grid(conn, _services(), class_id, course["id"])
    learning = _services().cfg.learning
    return render_template("teacher/grid.html", cls=cls, course=course, courses=courses, grid=grid, levels=LEVELS,
                           help_below=HELP_BELOW, wrong_run=WRONG_RUN, threshold=learning.mastery_threshold,
                           min_answers=max(1, learning.mastery_min_answers))


@bp.get("/classes/<int:class_id>/hardest")
@requires("teacher", "admin")
def hardest(class_id: int):
    cls, course, courses = _class_and_course(class_id)
    rows = []
    if course is not None:
        with _services().db.read() as conn:
            rows = hardest_questions(conn, class_id, course["id"])
    return render_template("teacher/hardest.html", cls=cls, course=course, courses=courses, rows=rows)


@bp.get("/classes/<int:class_id>/students/<int:student_id>")
@requires("teacher", "admin")
def student(class_id: int, student_id: int):
    with _services().db.read() as conn:
        cls = cls_mod.get_class(conn, class_id, current_user())
        row = conn.execute("SELECT u.id, u.display_name, u.avatar FROM users u JOIN class_members m"
                           " ON m.student_id = u.id WHERE m.class_id = ? AND u.id = ?", (class_id, student_id)).fetchone()
        if row is None:
            raise NotFound(_("That student is not in this class."))
        history = student_history(conn, _services(), student_id)
        # Where the student may be moved: the other open classes this teacher (an admin: anyone) manages.
        others = [c for c in cls_mod.classes_for(conn, current_user()) if c["id"] != class_id and not c["archived_at"]]
    return render_template("teacher/student.html", cls=cls, student=dict(row), history=history, other_classes=others)
