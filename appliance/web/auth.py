"""Signing in and out.

Students: pick the class (big buttons), then their name (with their picture), then type their 4-digit
PIN on a keypad when the class uses PINs. Teachers and admins: username and password. Every failed
try counts against the account and the address (``appliance.people.throttle``).
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from appliance.errors import BadRequest, NotFound, TooManyRequests
from appliance.people import classes as classes_mod
from appliance.people.accounts import admin_exists
from appliance.people.passwords import verify_password, verify_pin
from appliance.people.throttle import LoginThrottle, minutes_of, student_account
from appliance.store.database import now_iso
from appliance.web import ui
from appliance.web.i18n import use_class_language
from appliance.web.security import current_user, requires, sign_in

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__)

HOME_BY_ROLE = {"student": "student.home", "teacher": "teacher.home", "admin": "admin.status"}


def init_app(app) -> None:
    ui.init_app(app)


def _services():
    return current_app.extensions["ce"]


def _throttle() -> LoginThrottle:
    cfg = _services().cfg.web
    return LoginThrottle(_services().db, cfg.login_max_failures, cfg.login_window_s)


def _paused(page: str, exc: TooManyRequests):
    """A 429 with the page and how long to wait (``Retry-After``, for scripts and tests)."""
    return page, 429, {"Retry-After": str(exc.detail["retry_after_s"])}


def _safe_next(target: str | None, fallback: str) -> str:
    """Only same-site paths: an open redirect would let a phishing link borrow our sign-in page."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/") and not target.startswith("//"):
            return target
    return fallback


def _sign_in_keeping_language(user: dict) -> None:
    _services().db.write(lambda c: c.execute("UPDATE users SET last_signin_at = ? WHERE id = ?",
                                             (now_iso(), user["id"])))
    lang = session.get("lang")
    sign_in(user)  # clears the session (no fixation) and makes a new CSRF token
    if lang:
        session["lang"] = lang


@bp.get("/")
@requires("anonymous")
def index():
    user = current_user()
    if user is not None:
        return redirect(url_for(HOME_BY_ROLE[user["role"]]))
    with _services().db.read() as conn:
        if not admin_exists(conn):
            return redirect(url_for("setup.setup"))
    return redirect(url_for("auth.signin"))


@bp.get("/signin")
@requires("anonymous")
def signin():
    with _services().db.read() as conn:
        rows = conn.execute(
            "SELECT c.id, c.name, c.uses_pin FROM classes c WHERE EXISTS (SELECT 1 FROM class_members m"
            " JOIN users u ON u.id = m.student_id WHERE m.class_id = c.id AND u.disabled = 0)"
            " AND c.archived_at IS NULL ORDER BY c.name"
        ).fetchall()
    return render_template("auth/classes.html", classes=rows)


@bp.get("/signin/class/<int:class_id>")
@requires("anonymous")
def pick_name(class_id: int):
    with _services().db.read() as conn:
        cls = classes_mod.class_to_sign_in(conn, class_id)
        students = classes_mod.roster(conn, class_id)
    use_class_language(cls["language"])
    return render_template("auth/names.html", cls=cls, students=students)


def _student_for_signin(conn, student_id: int, class_id: int) -> tuple[dict, dict]:
    row = conn.execute(
        "SELECT u.* FROM users u JOIN class_members m ON m.student_id = u.id"
        " WHERE u.id = ? AND m.class_id = ? AND u.role = 'student' AND u.disabled = 0", (student_id, class_id)
    ).fetchone()
    if row is None:
        raise NotFound(_("That name is not in this class."))
    return dict(row), classes_mod.class_to_sign_in(conn, class_id)


def _needs_pin(conn, student_id: int) -> bool:
    return conn.execute("SELECT 1 FROM classes c JOIN class_members m ON m.class_id = c.id"
                        " WHERE m.student_id = ? AND c.uses_pin = 1 LIMIT 1", (student_id,)).fetchone() is not None


@bp.route("/signin/class/<int:class_id>/student/<int:student_id>", methods=["GET", "POST"])
@requires("anonymous")
def student_pin(class_id: int, student_id: int):
    db = _services().db
    with db.read() as conn:
        student, cls = _student_for_signin(conn, student_id, class_id)
        needs_pin = _needs_pin(conn, student_id)
    use_class_language(cls["language"])
    if request.method == "GET":
        if not needs_pin:
            return render_template("auth/confirm.html", cls=cls, student=student)
        return render_template("auth/pin.html", cls=cls, student=student, error=None)
    account = student_account(student_id)
    throttle = _throttle()
    try:
        throttle.check(account, request.remote_addr)
    except TooManyRequests as exc:
        return _paused(render_template("auth/pin.html", cls=cls, student=student, error=_(
            "Too many wrong tries. Please wait %(minutes)s minute(s) or ask your teacher for a new PIN.",
            minutes=minutes_of(exc.detail["retry_after_s"]))), exc)
    if needs_pin:
        if not student["pin_hash"]:
            return render_template("auth/pin.html", cls=cls, student=student,
                                   error=_("You do not have a PIN yet. Please ask your teacher.")), 403
        if not verify_pin(student["pin_hash"], request.form.get("pin", "")):
            throttle.failed(account, request.remote_addr)
            return render_template("auth/pin.html", cls=cls, student=student,
                                   error=_("That PIN is not right. Try again!")), 401
    throttle.succeeded(account, request.remote_addr)
    _sign_in_keeping_language(student)
    log.info("student %s signed in", student["uid"])
    return redirect(url_for("student.home"))


@bp.route("/signin/staff", methods=["GET", "POST"])
@requires("anonymous")
def staff():
    if request.method == "GET":
        return render_template("auth/staff.html", error=None, username="", next=request.args.get("next", ""))
    username = request.form.get("username", "").strip().lower()
    password = request.form.get("password", "")
    nxt = request.form.get("next", "")
    throttle = _throttle()
    try:
        throttle.check(username or "-", request.remote_addr)
    except TooManyRequests as exc:
        return _paused(render_template("auth/staff.html", username=username, next=nxt, error=_(
            "Too many failed sign-ins. Please wait %(minutes)s minute(s), or ask your administrator to set a"
            " new password.", minutes=minutes_of(exc.detail["retry_after_s"]))), exc)
    with _services().db.read() as conn:
        row = conn.execute("SELECT * FROM users WHERE username = ? AND role IN ('teacher', 'admin')",
                           (username,)).fetchone()
    ok = verify_password(row["password_hash"] if row else None, password)
    if not ok:
        throttle.failed(username or "-", request.remote_addr)
        return render_template("auth/staff.html", username=username, next=nxt,
                               error=_("The username or password is not right.")), 401
    if row["disabled"]:
        # Only someone who knows the password learns that the account is switched off: no failure.
        return render_template("auth/staff.html", username=username, next=nxt,
                               error=_("This account is switched off. Please ask your administrator.")), 403
    throttle.succeeded(username, request.remote_addr)
    _sign_in_keeping_language(dict(row))
    return redirect(_safe_next(nxt, url_for(HOME_BY_ROLE[row["role"]])))


@bp.post("/signout")
@requires("student", "teacher", "admin")
def signout():
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("auth.signin"))


@bp.post("/language")
@requires("anonymous")
def language():
    from appliance.web.i18n import available_languages

    lang = request.form.get("lang", "")
    if lang not in available_languages():
        raise BadRequest(_("That language is not available."))
    session["lang"] = lang
    return redirect(_safe_next(request.form.get("next"), url_for("auth.index")))
