"""Classes and rosters: create a class, add students one by one or from a CSV file, reset PINs,
correct a student's name, move a student to another class, take one out and put them back, choose the
class language, assign lessons."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext

from appliance.errors import BadRequest, NotFound
from appliance.learning.grading import TO_CHECK_SQL
from appliance.people import classes as cls_mod
from appliance.web.ids import row_id
from appliance.web.security import current_user, requires
from appliance.web.teacher import bp

log = logging.getLogger(__name__)
MAX_CSV_BYTES = 256 * 1024
NOT_A_LIST = (".zip", ".xlsx", ".xls", ".ods", ".numbers", ".pdf", ".docx", ".doc", ".odt")


def _db():
    return current_app.extensions["ce"].db


def _class_or_404(class_id: int) -> dict:
    with _db().read() as conn:
        return cls_mod.get_class(conn, class_id, current_user())


def _language(value: str | None) -> str | None:
    return value if value in cls_mod.LANGUAGE_CODES else None


def _below() -> float:
    return current_app.extensions["ce"].cfg.learning.review_below_confidence


def answers_to_check(conn, below: float, class_ids: list[int]) -> dict[int, int]:
    """Class id -> free-text answers waiting for the teacher: pending ones and model grades less sure
    than ``below`` (``TO_CHECK_SQL``, the review page's default list)."""
    if not class_ids:
        return {}
    marks = ", ".join("?" * len(class_ids))
    rows = conn.execute(
        "SELECT m.class_id, COUNT(*) FROM attempts a JOIN class_members m ON m.student_id = a.student_id"
        " JOIN exercises e ON e.course_id = a.course_id AND e.id = a.exercise_id"
        f" WHERE m.class_id IN ({marks}) AND e.kind = 'free_text'"
        f" AND {TO_CHECK_SQL} GROUP BY m.class_id",
        (*class_ids, below)).fetchall()
    return {r[0]: r[1] for r in rows}


@bp.get("/")
@requires("teacher", "admin")
def home():
    return _home(current_user())


def _home(user: dict, error: str | None = None, form=None):
    wanted = request.args.get("student", "")[:60]
    with _db().read() as conn:
        classes = cls_mod.classes_for(conn, user)
        to_check = answers_to_check(conn, _below(), [c["id"] for c in classes])
        teachers = cls_mod.teachers(conn) if user["role"] == "admin" else []
        found, more = cls_mod.find_students(conn, user, wanted)
    return render_template("teacher/home.html", classes=classes, languages=cls_mod.LANGUAGE_CODES, error=error,
                           to_check=to_check, teachers=teachers, form=form or {},
                           wanted=wanted.strip(), found=found, more_found=more)


def _chosen_teacher(user: dict) -> int | None:
    """The teacher an administrator chose for a class (the form's ``teacher_id``); None for a teacher."""
    raw = request.form.get("teacher_id", "")
    if user["role"] != "admin" or not raw:
        return None
    teacher_id = row_id(raw)
    if teacher_id is None:
        raise BadRequest(_("Choose a teacher from the list."))
    return teacher_id


@bp.post("/classes")
@requires("teacher", "admin")
def create_class():
    user = current_user()
    # Read the form here: the write runs in the database's writer thread, outside this request.
    name, uses_pin = request.form.get("name", ""), request.form.get("uses_pin") == "on"
    language = _language(request.form.get("language"))
    teacher_id = _chosen_teacher(user)
    try:
        class_id = _db().write(lambda c: cls_mod.create_class(
            c, name=name, teacher_id=teacher_id or user["id"], uses_pin=uses_pin, language=language))
    except BadRequest as exc:
        return _home(user, error=exc.message, form=request.form), 400
    flash(_("The class was created. Now add your students."))
    return redirect(url_for("teacher.class_page", class_id=class_id))


@bp.get("/classes/<int:class_id>")
@requires("teacher", "admin")
def class_page(class_id: int):
    return _class_page(_class_or_404(class_id))


def _class_page(cls: dict, roster_error: str | None = None, typed: dict | None = None, code: int = 200):
    """The class page; a refused name or list comes back here with the reason next to the form and
    what was typed still in it (it was an error page whose only button went to the start page)."""
    class_id = cls["id"]
    with _db().read() as conn:
        students = cls_mod.roster(conn, class_id)
        courses = [dict(r) for r in conn.execute("SELECT id, title FROM courses ORDER BY title")]
        assigned = {(r[0], r[1]) for r in conn.execute(
            "SELECT course_id, lesson_id FROM assignments WHERE class_id = ?", (class_id,))}
        for course in courses:
            course["lessons"] = [dict(r, assigned=(course["id"], r["id"]) in assigned) for r in conn.execute(
                "SELECT id, title FROM lessons WHERE course_id = ? ORDER BY position", (course["id"],))]
        to_check = answers_to_check(conn, _below(), [class_id]).get(class_id, 0)
        teachers = cls_mod.teachers(conn, keep=cls["teacher_id"]) if current_user()["role"] == "admin" else []
        departed = cls_mod.departures(conn, class_id, current_user())
    return render_template("teacher/class.html", cls=cls, students=students, courses=courses, departed=departed,
                           languages=cls_mod.LANGUAGE_CODES, to_check=to_check, teachers=teachers,
                           roster_error=roster_error, typed=typed or {}), code


@bp.post("/classes/<int:class_id>/settings")
@requires("teacher", "admin")
def class_settings(class_id: int):
    _class_or_404(class_id)
    name, uses_pin = request.form.get("name", ""), request.form.get("uses_pin") == "on"
    language = _language(request.form.get("language"))
    try:
        teacher_id = _chosen_teacher(current_user())
        _db().write(lambda c: cls_mod.update_class(c, class_id, name=name, uses_pin=uses_pin, language=language,
                                                   teacher_id=teacher_id))
    except BadRequest as exc:  # back to the class page, the refusal on top (not an error page)
        flash(_("The class settings were not saved. %(why)s", why=exc.message), "error")
        return redirect(url_for("teacher.class_page", class_id=class_id) + "#settings-h")
    flash(_("The class settings are saved."))
    return redirect(url_for("teacher.class_page", class_id=class_id))


def _pins_page(cls: dict, added: list[dict], title: str, skipped: list[str] = ()):
    return render_template("teacher/pins.html", cls=cls, added=added, title=title, skipped=skipped,
                           address=_address_for_students())


def _address_for_students() -> str:
    """Where students open the box, for the PIN cards: the address this page was opened at, which the
    classroom's devices reach too; none when it is the box itself (127.0.0.1, localhost)."""
    host = urlsplit(request.host_url).hostname or ""
    if not host or host in ("localhost", "::1") or host.startswith("127."):
        return ""
    return request.host_url.rstrip("/")


@bp.post("/classes/<int:class_id>/students")
@requires("teacher", "admin")
def add_student(class_id: int):
    cls = _class_or_404(class_id)
    try:
        added, _skipped = cls_mod.enrol_new_students(_db(), class_id, [request.form.get("name", "")])
    except BadRequest as exc:
        return _class_page(cls, exc.message, {"name": request.form.get("name", "")}, 400)
    return _pins_page(cls, added, _("Student added"))


@bp.post("/classes/<int:class_id>/archive")
@requires("teacher", "admin")
def archive_class(class_id: int):
    """Put the class away (end of the year): off the sign-in page, its history kept."""
    _class_or_404(class_id)
    _db().write(lambda c: cls_mod.set_archived(c, class_id, True))
    flash(_("The class is archived: its students no longer see it when they sign in. Its progress is kept,"
            " and you can restore it from your classes page."))
    return redirect(url_for("teacher.home"))


@bp.post("/classes/<int:class_id>/restore")
@requires("teacher", "admin")
def restore_class(class_id: int):
    _class_or_404(class_id)
    try:
        _db().write(lambda c: cls_mod.set_archived(c, class_id, False))
    except BadRequest as exc:
        flash(_("The class was not restored. %(why)s", why=exc.message), "error")
        return redirect(url_for("teacher.home"))
    flash(_("The class is back: its students can sign in again."))
    return redirect(url_for("teacher.class_page", class_id=class_id))


@bp.post("/classes/<int:class_id>/import")
@requires("teacher", "admin")
def import_roster(class_id: int):
    cls = _class_or_404(class_id)
    try:
        return _import_roster(cls)
    except BadRequest as exc:
        return _class_page(cls, exc.message, {"names": request.form.get("names", "")}, 400)


def _import_roster(cls: dict):
    class_id = cls["id"]
    upload = request.files.get("file")
    if upload is not None and upload.filename:
        if upload.filename.lower().endswith(NOT_A_LIST):
            # A spreadsheet or an archive is not read as text ("this is not a zip" became a pupil).
            raise BadRequest(_("That file is not a class list. Save the list from your spreadsheet as CSV, or"
                               " paste the names."))
        raw = upload.read(MAX_CSV_BYTES + 1)
        if len(raw) > MAX_CSV_BYTES:
            raise BadRequest(_("That file is too big for a class list."))
        text = cls_mod.decode_roster(raw)
    else:
        text = request.form.get("names", "")
        if not text.strip():
            raise BadRequest(_("Choose a class list file or paste the names first."))
    names = cls_mod.parse_roster_csv(text)
    added, skipped = cls_mod.enrol_new_students(_db(), class_id, names, skip_existing=True)
    log.info("imported %d students into class %d", len(added), class_id)
    return _pins_page(cls, added, ngettext("%(num)s student added", "%(num)s students added", len(added)), skipped)


@bp.post("/classes/<int:class_id>/students/<int:student_id>/pin")
@requires("teacher", "admin")
def reset_pin(class_id: int, student_id: int):
    cls = _class_or_404(class_id)
    pin = cls_mod.reset_pin(_db(), class_id, student_id)
    with _db().read() as conn:
        row = dict(conn.execute("SELECT id, display_name, avatar FROM users WHERE id = ?", (student_id,)).fetchone())
    row["pin"] = pin
    return _pins_page(cls, [row], _("New PIN"))


@bp.post("/classes/<int:class_id>/students/<int:student_id>/remove")
@requires("teacher", "admin")
def remove_student(class_id: int, student_id: int):
    _class_or_404(class_id)
    _db().write(lambda c: cls_mod.remove_student(c, class_id, student_id))
    flash(_("The student was taken out of the class. Their progress is kept, and “Put back”, at the bottom of"
            " the list, brings them back."))
    return redirect(url_for("teacher.class_page", class_id=class_id))


@bp.post("/classes/<int:class_id>/students/<int:student_id>/name")
@requires("teacher", "admin")
def rename_student(class_id: int, student_id: int):
    _class_or_404(class_id)
    typed = request.form.get("name", "")
    try:
        name = _db().write(lambda c: cls_mod.rename_student(c, class_id, student_id, typed))
    except BadRequest as exc:
        flash(_("The name was not changed. %(why)s", why=exc.message), "error")
    else:
        flash(_("The name is now “%(name)s”. The PIN and the progress stay the same.", name=name))
    return redirect(url_for("teacher.student", class_id=class_id, student_id=student_id))


@bp.post("/classes/<int:class_id>/students/<int:student_id>/move")
@requires("teacher", "admin")
def move_student(class_id: int, student_id: int):
    """To another class the same teacher (or an admin) manages; the account and its progress go along."""
    _class_or_404(class_id)
    raw = request.form.get("to_class", "")
    target = _class_or_404(row_id(raw)) if row_id(raw) is not None else None  # another teacher's class: 404, as any
    try:
        if target is None:
            raise BadRequest(_("Choose another class."))
        _db().write(lambda c: cls_mod.move_student(c, class_id, target["id"], student_id))
    except (BadRequest, NotFound) as exc:
        flash(_("The student was not moved. %(why)s", why=exc.message), "error")
        return redirect(url_for("teacher.student", class_id=class_id, student_id=student_id))
    flash(_("The student is now in %(name)s, with their PIN and progress.", name=target["name"]))
    return redirect(url_for("teacher.class_page", class_id=class_id))


@bp.post("/classes/<int:class_id>/students/<int:student_id>/back")
@requires("teacher", "admin")
def put_back(class_id: int, student_id: int):
    _class_or_404(class_id)
    user = current_user()  # read here: the writer thread has no request context
    try:
        student = _db().write(lambda c: cls_mod.put_back(c, class_id, student_id, user))
    except (BadRequest, NotFound) as exc:
        flash(_("The student was not put back. %(why)s", why=exc.message), "error")
    else:
        flash(_("%(name)s is back in the class, with everything they did.", name=student["display_name"])
              + (" " + _("They are no longer in %(classes)s.", classes=", ".join(student["left"]))
                 if student["left"] else ""))
    return redirect(url_for("teacher.class_page", class_id=class_id))


@bp.post("/classes/<int:class_id>/assign")
@requires("teacher", "admin")
def assign(class_id: int):
    _class_or_404(class_id)
    course_id = request.form.get("course_id", "")
    lessons = request.form.getlist("lesson")
    _db().write(lambda c: cls_mod.set_assignments(c, class_id, course_id, lessons))
    flash(_("Assigned lessons saved."))
    return redirect(url_for("teacher.class_page", class_id=class_id) + "#assign")
