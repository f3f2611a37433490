"""The student's pages: courses, a lesson with its exercises, and their own progress.

Answers go to ``POST /api/v1/attempts`` from ``static/runner.js``; the page never contains the correct
answers (only prompts, choices and hints), so reading the HTML source does not give them away.
"""
from __future__ import annotations

import json

from flask import Blueprint, current_app, render_template
from flask_babel import get_locale
from flask_babel import gettext as _

from appliance.errors import NotFound
from appliance.languages import base_language, in_language_sql
from appliance.learning.grading import FORMS, form_words
from appliance.learning.plan import plans_of
from appliance.learning.progress import latest_answers, lesson_rule, skills_mastered, teacher_marks
from appliance.web.mastery import of_skills as mastery_of_skills
from appliance.web.mastery import refresh as refresh_mastery
from appliance.web.security import current_user, requires

bp = Blueprint("student", __name__)


def _db():
    return current_app.extensions["ce"].db


def _assigned(conn, student_id: int) -> set[tuple[str, str]]:
    rows = conn.execute(
        "SELECT a.course_id, a.lesson_id FROM assignments a JOIN class_members m ON m.class_id = a.class_id"
        " WHERE m.student_id = ?", (student_id,)).fetchall()
    return {(r[0], r[1]) for r in rows}


@bp.get("/learn")
@requires("student")
def home():
    user = current_user()
    with _db().read() as conn:
        courses = [dict(r) for r in conn.execute(
            "SELECT c.id, c.title, c.description, c.language,"
            " (SELECT COUNT(*) FROM lessons l WHERE l.course_id = c.id) AS lessons,"
            " (SELECT COUNT(*) FROM lesson_progress p WHERE p.course_id = c.id AND p.student_id = ?"
            "  AND p.status = 'completed') AS done,"
            " (SELECT COUNT(*) FROM lesson_progress p WHERE p.course_id = c.id AND p.student_id = ?) AS begun"
            " FROM courses c ORDER BY c.language = ? DESC, c.title", (user["id"], user["id"], str(get_locale())))]
        assigned = _assigned(conn, user["id"])
        todo = []
        if assigned:
            todo = [dict(r) for r in conn.execute(
                "SELECT l.course_id, l.id, l.title, c.title AS course_title, c.language, p.status FROM lessons l"
                " JOIN courses c ON c.id = l.course_id LEFT JOIN lesson_progress p ON p.course_id = l.course_id"
                " AND p.lesson_id = l.id AND p.student_id = ? ORDER BY c.title, l.position", (user["id"],))
                if (r["course_id"], r["id"]) in assigned and r["status"] != "completed"]
    # A Spanish class's pupil saw the English course's card, "Start" and all, beside the Spanish one.
    # A course in another language is folded away unless the student has begun it or has lessons in it.
    mine = {cid for cid, _lesson in assigned}
    shown = [c for c in courses if _in_page_language(c["language"]) or c["begun"] or c["id"] in mine]
    others = [c for c in courses if c not in shown]
    return render_template("student/home.html", courses=shown, other_courses=others, todo=todo)


def _in_page_language(language: str | None) -> bool:
    return base_language(language) == base_language(str(get_locale()))


@bp.get("/learn/<course_id>")
@requires("student")
def course(course_id: str):
    user = current_user()
    with _db().read() as conn:
        c = conn.execute("SELECT id, title, description FROM courses WHERE id = ?", (course_id,)).fetchone()
        if c is None:
            raise NotFound(_("There is no such course."))
        lessons = [dict(r) for r in conn.execute(
            "SELECT l.id, l.title, l.position, p.status,"
            " (SELECT COUNT(*) FROM exercises e WHERE e.course_id = l.course_id AND e.lesson_id = l.id) AS exercises"
            " FROM lessons l LEFT JOIN lesson_progress p ON p.course_id = l.course_id AND p.lesson_id = l.id"
            " AND p.student_id = ? WHERE l.course_id = ? ORDER BY l.position", (user["id"], course_id))]
        assigned = _assigned(conn, user["id"])
    for lesson in lessons:
        lesson["assigned"] = (course_id, lesson["id"]) in assigned
    return render_template("student/course.html", course=dict(c), lessons=lessons)


def _exercise_view(row) -> dict:
    """What the page may show: prompt, choices and hints; never the answer or the explanation."""
    spec = json.loads(row["spec"])
    return {"id": row["id"], "kind": row["kind"], "prompt": row["prompt"], "choices": spec.get("choices", []),
            "hints": [h for h in spec.get("hints", []) if h],
            # A question that asks for a form says which under it: "like 0.75, 3/4" under "write 3/4 as a
            # decimal" offered a form it refuses, and its answer.
            "form_hint": form_words(spec["form"]) if spec.get("form") in FORMS else None}


@bp.get("/learn/<course_id>/<lesson_id>")
@requires("student")
def lesson(course_id: str, lesson_id: str):
    user = current_user()
    with _db().read() as conn:
        row = conn.execute(
            "SELECT l.*, c.title AS course_title FROM lessons l JOIN courses c ON c.id = l.course_id"
            " WHERE l.course_id = ? AND l.id = ?", (course_id, lesson_id)).fetchone()
        if row is None:
            raise NotFound(_("There is no such lesson."))
        exercises = [_exercise_view(r) for r in conn.execute(
            "SELECT id, kind, prompt, spec FROM exercises WHERE course_id = ? AND lesson_id = ? ORDER BY position",
            (course_id, lesson_id))]
        # The latest answer decides, as on the page after an answer: wrong after right is not done.
        below = current_app.extensions["ce"].cfg.learning.review_below_confidence
        done = {ex_id: state != "wrong" for ex_id, state in latest_answers(conn, user["id"], course_id,
                                                                            below=below).items()}
        marks = teacher_marks(conn, user["id"], course_id, lesson_id, below)
        status = conn.execute("SELECT status FROM lesson_progress WHERE student_id = ? AND course_id = ? AND lesson_id = ?",
                              (user["id"], course_id, lesson_id)).fetchone()
        # Done by mastering its skills before every question was right (progress.update_lesson): say why
        # the course page ticks it while questions here are still open. Only while its skills really are
        # mastered, by the model's estimate now as the progress page says it (not the one stored at the
        # last answer): a lesson done question by question, answered wrong since, is not "mastered"
        # (it stays done). Asked only where the page may say it: it costs a model run.
        mastered_early = False
        if status is not None and status[0] == "completed" and not all(done.get(ex["id"]) for ex in exercises):
            where = {"course_id": course_id, "lesson_id": lesson_id}
            rule = lesson_rule(current_app.extensions["ce"], conn, where)
            mastered_early = skills_mastered(conn, user["id"], where, rule, mastery_of_skills(
                conn, user["id"], course_id, rule.plan.lesson_own_skills(lesson_id)))
        siblings = conn.execute("SELECT id, title FROM lessons WHERE course_id = ? AND position > ? ORDER BY position"
                                " LIMIT 1", (course_id, row["position"])).fetchone()
    media = [m for m in json.loads(row["media"] or "[]") if _show_media(m, row["body"], course_id)]
    for ex in exercises:
        ex["done"] = done.get(ex["id"])
        mark = marks.get(ex["id"])
        ex["teacher_mark"], ex["marked_answer"] = mark if mark else (None, "")
        ex["waiting"] = mark is not None and mark[0] is None
    return render_template("student/lesson.html", lesson=dict(row), media=media, exercises=exercises,
                           next_lesson=dict(siblings) if siblings else None, mastered_early=mastered_early)


def _show_media(item: dict, body: str, course_id: str) -> bool:
    """Media blocks the body does not already show (the importer renders images inline)."""
    asset = item.get("asset")
    if not asset or item.get("kind", item.get("type")) not in ("video", "audio", "pdf", "image"):
        return False
    return f"/content/{course_id}/assets/{asset}" not in body


def _question_counts(conn, student_id: int, course_id: str) -> tuple[dict, dict[str, dict]]:
    """Questions, not attempts: ({right, wrong, pending} for the course, the same per skill id). A
    question answered wrong five times is one question to try again."""
    latest = latest_answers(conn, student_id, course_id,
                            below=current_app.extensions["ce"].cfg.learning.review_below_confidence)
    skills_of = {r[0]: json.loads(r[1]) for r in conn.execute(
        "SELECT id, skills FROM exercises WHERE course_id = ?", (course_id,)) if r[0] in latest}
    total = dict.fromkeys(("right", "wrong", "pending"), 0)
    per_skill: dict[str, dict] = {}
    for ex_id, state in latest.items():
        total[state] += 1
        for skill in skills_of.get(ex_id, []):
            per_skill.setdefault(skill, dict.fromkeys(("right", "wrong", "pending"), 0))[state] += 1
    return total, per_skill


@bp.get("/me/progress")
@requires("student")
def my_progress():
    user = current_user()
    with _db().read() as conn:
        courses = []
        # Courses in the page's language first (one answer in another language's course did not make it
        # the first), then those with answers (as on the home page).
        lang = base_language(str(get_locale()))
        rows = conn.execute(
            f"SELECT c.id, c.title, c.language FROM courses c ORDER BY {in_language_sql('c.language')} DESC,"
            " EXISTS (SELECT 1 FROM attempts a WHERE a.course_id = c.id AND a.student_id = :student) DESC, c.title",
            {"student": user["id"], "lang": lang}).fetchall()
        for c in rows:
            skills = [dict(r) for r in conn.execute(
                "SELECT s.id, s.id AS skill_id, s.course_id, s.name, m.p_mastery, m.successes, m.failures"
                " FROM skills s LEFT JOIN mastery m ON m.course_id = s.course_id AND m.skill_id = s.id"
                " AND m.student_id = ? WHERE s.course_id = ? ORDER BY s.rowid", (user["id"], c["id"]))]
            lessons = conn.execute(
                "SELECT COUNT(*) AS total, SUM(p.status = 'completed') AS done FROM lessons l LEFT JOIN lesson_progress p"
                " ON p.course_id = l.course_id AND p.lesson_id = l.id AND p.student_id = ? WHERE l.course_id = ?",
                (user["id"], c["id"])).fetchone()
            questions, per_skill = _question_counts(conn, user["id"], c["id"])
            if not sum(questions.values()) and not _in_page_language(c["language"]):
                continue  # "not started yet" for a course in another language: not one for this student
            for sk in skills:
                sk["questions"] = per_skill.get(sk["id"])
            courses.append({"id": c["id"], "title": c["title"], "language": c["language"], "skills": skills, "lessons_total": lessons["total"],
                            "lessons_done": lessons["done"] or 0, "questions": questions,
                            "answered": sum(questions.values())})
        # Every course's skills in one model run (the rows are changed in place).
        refresh_mastery(conn, [sk for c in courses for sk in c["skills"]], user["id"])
        # "Mastered" by the rule Next up and the lessons go by (the lesson page says so, the grid too).
        learning, plans = current_app.extensions["ce"].cfg.learning, plans_of(current_app.extensions["ce"])
        for c in courses:
            plan = plans.get(conn, c["id"])
            for sk in c["skills"]:
                sk["mastered"] = plan.mastered(sk["id"], sk["p_mastery"], (sk["successes"] or 0) + (sk["failures"] or 0),
                                               learning.mastery_threshold, learning.mastery_min_answers)
    return render_template("student/progress.html", courses=courses)
