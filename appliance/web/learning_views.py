"""Pages of the learning features: search by meaning, the teacher's free-text grade review, and the
template helpers other pages include (next up on the student home, where mastery comes from, the
models on the admin page).

The helpers are Jinja globals set in ``init_app`` so the pages that show them only need an
``{% include "learning/..." %}``; each one degrades to nothing (with a log line) rather than break
the page it sits on.
"""
from __future__ import annotations

import json
import logging

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _

from appliance.errors import BadRequest, Conflict, NotFound, Unavailable
from appliance.languages import base_language
from appliance.learning import overrides
from appliance.learning.grading import REPLACED_SQL, TO_CHECK_SQL
from appliance.learning.spelling import changed_words
from appliance.people import classes as cls_mod
from appliance.web.ids import row_id
from appliance.web.security import current_user, requires

log = logging.getLogger(__name__)
bp = Blueprint("learning", __name__)

REVIEW_LIMIT = 100


def _services():
    return current_app.extensions["ce"]


def init_app(app) -> None:
    app.jinja_env.globals.update(learning_next_up=_next_up_for_home, learning_mastery_source=_mastery_source,
                                 learning_skill_names=_skill_names)


def _skill_names(course_id: str) -> dict[str, str]:
    """Skill id -> name, so the exercise page can name the skills whose mastery an answer changed."""
    with _services().db.read() as conn:
        return {r[0]: r[1] for r in conn.execute("SELECT id, name FROM skills WHERE course_id = ?", (course_id,))}


def _next_up_for_home() -> dict | None:
    user = current_user()
    learner = _services().get("learner")
    if user is None or user["role"] != "student" or learner is None:
        return None
    try:
        return learner.home(user, str(get_locale() or ""))
    except Exception:
        log.exception("next up for the student home failed")
        return None


def _mastery_source() -> dict:
    """Where the grid's numbers come from, for the sentence under it."""
    for part in _services().statuses():
        if part.name == "learning":
            model = part.extra.get("learner_model", {})
            return {"model": bool(model.get("ready")), "detail": model.get("detail", "")}
    return {"model": False, "detail": "the learning part is not running"}


# -- search ---------------------------------------------------------------------------------------
def _search_courses(course_id: str | None) -> list[str]:
    with _services().db.read() as conn:
        if course_id:
            if conn.execute("SELECT 1 FROM courses WHERE id = ?", (course_id,)).fetchone() is None:
                raise NotFound(_("There is no such course."))
            return [course_id]
        lang = str(get_locale() or "")
        rows = conn.execute("SELECT id, language FROM courses ORDER BY title").fetchall()
    mine = [r["id"] for r in rows if base_language(r["language"]) == base_language(lang)]
    return mine or [r["id"] for r in rows]


def _search(q: str, course_id: str | None):
    index = _services().get("search")
    if index is None:
        raise Unavailable(_("Search is not available right now: the learning part did not start."))
    return index.search(q, _search_courses(course_id))


# Students only: the hits link to the lesson pages, which are a student's (a teacher's search found
# lessons it could not open).
@bp.get("/search")
@requires("student")
def search_page():
    q = request.args.get("q", "")
    course_id = request.args.get("course") or None
    result, error = None, None
    if q.strip():
        try:
            result = _search(q, course_id)
        except BadRequest as exc:
            error = exc.message
    elif "q" in request.args:  # the box sent empty: say what it wants rather than show the bare form
        error = _("Type a word or two about what you are looking for, like “equal parts”.")
    return render_template("learning/search.html", q=q, course_id=course_id, result=result, error=error)


@bp.get("/api/v1/search")
@requires("student")
def search_api():
    """Search lessons and exercises by meaning (?q=TEXT, optional &course=ID; else the courses in the
    reader's language). ``mode`` is ``words`` when the embedding model is not available."""
    return jsonify(_search(request.args.get("q", ""), request.args.get("course") or None).to_json())


# -- grade review ---------------------------------------------------------------------------------
_REVIEW_SELECT = (
    "SELECT a.id, a.answer, a.correct, a.score, a.confidence, a.graded_by, a.created_at, a.course_id,"
    " a.exercise_id, u.display_name, u.avatar, e.prompt, e.spec, sc.threshold, sc.detail,"
    " (SELECT c.language FROM courses c WHERE c.id = a.course_id) AS language,"
    f" {REPLACED_SQL} AS replaced")
_REVIEW_FROM = (
    " FROM attempts a JOIN class_members m ON m.student_id = a.student_id AND m.class_id = ?"
    " JOIN users u ON u.id = a.student_id JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id")
_CALIBRATION = (
    " LEFT JOIN semantic_calibration sc ON sc.course_id = a.course_id AND sc.exercise_id = a.exercise_id"
    " AND sc.calibrated_at = (SELECT MAX(calibrated_at) FROM semantic_calibration s2"
    " WHERE s2.course_id = a.course_id AND s2.exercise_id = a.exercise_id)")
_LISTED = f" WHERE e.kind = 'free_text' AND (? OR {TO_CHECK_SQL})"
# Waiting for a teacher first, the longest waiting first; then the model's grades, least sure first;
# then the teachers' own (in "show all").
_REVIEW_ORDER = (" ORDER BY a.graded_by = 'teacher', a.graded_by != 'pending',"
                 " CASE WHEN a.graded_by = 'pending' THEN a.id END, a.confidence, a.id DESC")


def _review_rows(conn, class_id: int, show_all: bool, below: float, page: int, graded: int | None) -> tuple[list[dict], int]:
    """One page of the class's written answers, and how many there are in all.

    ``graded``: the answer the teacher has just graded on this page stays on it, on top, where its new
    grade shows and a mis-click can be put right (it is no longer counted among the answers to check)."""
    args = (class_id, 1 if show_all else 0, below)
    total = conn.execute("SELECT COUNT(*)" + _REVIEW_FROM + _LISTED, args).fetchone()[0]
    rows = conn.execute(_REVIEW_SELECT + _REVIEW_FROM + _CALIBRATION + _LISTED + _REVIEW_ORDER + " LIMIT ? OFFSET ?",
                        (*args, REVIEW_LIMIT, page * REVIEW_LIMIT)).fetchall()
    if graded is not None and all(r["id"] != graded for r in rows):
        kept = conn.execute(_REVIEW_SELECT + _REVIEW_FROM + _CALIBRATION + " WHERE e.kind = 'free_text' AND a.id = ?",
                            (class_id, graded)).fetchone()
        rows = [kept, *rows] if kept is not None else rows
    out = []
    for r in rows:
        d = dict(r)
        spec = json.loads(d.pop("spec"))
        d["references"] = spec.get("references", [])
        d["text"] = (json.loads(d.pop("answer")) or {}).get("text", "")
        detail = json.loads(d.pop("detail") or "{}")
        d["separation"] = detail.get("balanced_accuracy")
        out.append(d)
    return out, total


def _page_arg(name: str) -> int:
    """A non-negative page or id from the query string; anything else is the default (0)."""
    return row_id(request.args.get(name)) or 0


# Calibration's balanced accuracy under which the page says a question is hard for the model to grade.
HARD_TO_GRADE = 0.75


@bp.get("/teach/classes/<int:class_id>/grades")
@requires("teacher", "admin")
def grades(class_id: int):
    services = _services()
    show_all = request.args.get("show") == "all"
    below = services.cfg.learning.review_below_confidence
    page, graded = min(_page_arg("page"), 2**40), _page_arg("graded") or None  # page x 100 stays an SQLite int
    with services.db.read() as conn:
        cls = cls_mod.get_class(conn, class_id, current_user())
        rows, total = _review_rows(conn, class_id, show_all, below, page, graded)
    if page and page * REVIEW_LIMIT >= total:
        # Past the end (answers graded since the link was made): the last page there is.
        last = max(0, (total - 1) // REVIEW_LIMIT)
        return redirect(url_for("learning.grades", class_id=class_id, show="all" if show_all else None,
                                page=last or None, graded=graded))
    semantic = services.get("semantic")
    model_on = semantic is not None and semantic.available()[0]  # off: the page must not talk of a model
    for r in rows:
        r["hard"] = model_on and r["separation"] is not None and r["separation"] < HARD_TO_GRADE
        # The confidence is a distance from the grading threshold, not a probability: say it in words.
        # Below ``below`` the answer is in the list to check; the upper half of the rest is "sure", but
        # not on a question the model grades badly ("The model is sure" above "This question is hard
        # for the model to grade" read as a contradiction).
        r["one_reference"] = model_on and len(r["references"]) == 1
        if r["graded_by"] == "model":
            # The second reading of a misspelt answer (``SemanticGrader.judge``): why "it tels how meny
            # equel parts…" may be graded right.
            read_as = semantic.read_as(r["course_id"], r["text"]) if model_on else ""
            r["read_as"] = changed_words(r["text"], read_as) if read_as else []
            # Within the list to check, a grade near the threshold ("cannot tell") is told apart from one
            # only a little unsure: one badge for both gave the teacher no way to triage.
            r["sure"] = "toss" if r["confidence"] < below / 3 else "unsure" if r["confidence"] < below \
                else "fairly" if r["confidence"] < (1 + below) / 2 or r["hard"] else "sure"
    pages = {"current": page, "first": page * REVIEW_LIMIT + 1, "last": min(total, (page + 1) * REVIEW_LIMIT), "total": total,
             "previous": page - 1 if page else None, "next": page + 1 if (page + 1) * REVIEW_LIMIT < total else None}
    return render_template("learning/grades.html", cls=cls, rows=rows, show_all=show_all, below=below,
                           model_on=model_on, pages=pages, graded=graded)


def _seen_grade() -> tuple[str, bool | None] | None:
    """The grade the teacher's page showed (its form's ``seen_by`` and ``seen_correct``); None from a
    client that does not say, which then grades whatever the answer has now."""
    seen_by = request.form.get("seen_by")
    if seen_by is None:
        return None
    return seen_by, {"1": True, "0": False}.get(request.form.get("seen_correct", ""))


@bp.post("/teach/classes/<int:class_id>/grades/<int:attempt_id>")
@requires("teacher", "admin")
def override_grade(class_id: int, attempt_id: int):
    services = _services()
    verdict = request.form.get("verdict")
    if verdict not in ("correct", "incorrect"):
        raise BadRequest(_("Choose whether the answer is right or not."))
    with services.db.read() as conn:
        cls_mod.get_class(conn, class_id, current_user())
    try:
        overrides.override(services, current_user(), class_id, attempt_id, verdict == "correct", _seen_grade())
    except Conflict as exc:
        # Back to the same row, now showing the other grade, with why nothing was saved.
        flash(exc.message, "error")
        return redirect(_back_to_list(class_id, attempt_id) + f"#attempt-{attempt_id}")
    flash(_("Saved: the answer is marked right.") if verdict == "correct" else _("Saved: the answer is marked not right."))
    # Back to the row after this one (the form names it), so a keyboard user carries on from there;
    # the graded row stays on the page with its new grade.
    after = request.form.get("next", "")
    anchor = f"#attempt-{row_id(after)}" if row_id(after) is not None else "#main"
    return redirect(_back_to_list(class_id, attempt_id) + anchor)


def _back_to_list(class_id: int, attempt_id: int) -> str:
    """The list the grade was given on (the form says which view and page), keeping the answer on it."""
    page = request.form.get("page", "")
    return url_for("learning.grades", class_id=class_id, show=request.form.get("show") or None,
                   page=row_id(page) or None,
                   graded=attempt_id)
