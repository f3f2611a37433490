"""Who may call what: every route declares its roles, and one check enforces them.

``@requires("teacher", "admin")`` records the roles on the view; ``enforce_roles`` runs before every
request and refuses anything the current user may not do. A view without a declaration is refused for
everyone (fail closed) and ``undeclared_endpoints`` lets a test prove there are none.

CSRF: state-changing requests authenticated by the session cookie must carry the session's CSRF token
(form field ``csrf_token`` or header ``X-CSRF-Token``). Requests authenticated by an API bearer token
carry no cookie, so they cannot be forged cross-site and need none.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets

from flask import current_app, g, request, session, url_for
from flask_babel import gettext as _

from appliance.errors import Forbidden, FormExpired, Unauthorized
from appliance.store.database import now_iso

ROLES = ("anonymous", "student", "teacher", "admin")
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def requires(*roles: str):
    """Declare which roles may call a view. ``anonymous`` means anyone, signed in or not."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r}")

    def wrap(view):
        view.required_roles = frozenset(roles)
        return view

    return wrap


def current_user():
    """The signed-in user row (dict) or None; cached on ``g`` for the request."""
    if "user" in g:
        return g.user
    g.user = None
    g.auth = None
    auth = request.headers.get("Authorization", "")
    services = current_app.extensions["ce"]
    if auth.startswith("Bearer "):
        g.user = _user_for_token(services, auth[7:].strip())
        g.auth = "token" if g.user else None
        if g.user is None:
            raise Unauthorized("That API token is not valid.")
        return g.user
    uid = session.get("uid")
    if uid is not None:
        with services.db.read() as conn:
            row = conn.execute("SELECT * FROM users WHERE id = ? AND disabled = 0", (uid,)).fetchone()
        if row is not None and session.get("gen") == _session_generation(row):
            g.user = dict(row)
            g.auth = "session"
        else:
            if row is None:  # switched off while signed in: the page says so, not "please sign in"
                with services.db.read() as conn:
                    g.switched_off = conn.execute("SELECT 1 FROM users WHERE id = ? AND disabled = 1",
                                                  (uid,)).fetchone() is not None
            session.clear()
    return g.user


def _session_generation(row) -> str:
    # Changing a password or PIN changes this value and so signs out every other session of the user.
    secret = (row["password_hash"] or "") + (row["pin_hash"] or "")
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def sign_in(user_row) -> None:
    session.clear()
    session["uid"] = user_row["id"]
    session["gen"] = _session_generation(user_row)
    session["csrf"] = secrets.token_urlsafe(24)
    session.permanent = True


def keep_own_session(user_row) -> None:
    """After a user changed their own password: this session stays signed in (the others do not)."""
    if session.get("uid") == user_row["id"]:
        session["gen"] = _session_generation(user_row)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _user_for_token(services, token: str):
    if not token:
        return None
    token_hash = hash_token(token)
    with services.db.read() as conn:
        row = conn.execute(
            "SELECT u.*, t.last_used_at AS token_last_used FROM api_tokens t JOIN users u ON u.id = t.user_id"
            " WHERE t.token_hash = ? AND u.disabled = 0", (token_hash,),
        ).fetchone()
    if row is None:
        return None
    user = dict(row)
    last = user.pop("token_last_used")
    now = now_iso()
    if last is None or last[:13] != now[:13]:
        # The users page says when a token was last used; an hour is precise enough, and spares the
        # writer a write per API request.
        services.db.write(lambda c: c.execute("UPDATE api_tokens SET last_used_at = ? WHERE token_hash = ?",
                                              (now, token_hash)))
    return user


def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def enforce_roles():
    """before_request hook: role check, then CSRF check for cookie-authenticated writes."""
    if request.endpoint is None:
        return None  # 404 / 405 are rendered by the error handlers
    if request.endpoint == "static":
        return None
    view = current_app.view_functions.get(request.endpoint)
    roles = getattr(view, "required_roles", None)
    if roles is None:
        raise Forbidden("This page has no access rule, so it is closed.")
    user = current_user()
    if "anonymous" not in roles:
        if user is None and g.get("switched_off"):
            raise Unauthorized(_("This account was switched off. Please ask your administrator."))
        if user is None:
            # A teacher's or an admin's page sends them to the staff sign-in, and back here after it.
            staff_only = "student" not in roles
            back = request.full_path.rstrip("?") if request.method == "GET" else ""
            signin = url_for("auth.staff", next=back or None) if staff_only else url_for("auth.signin")
            raise Unauthorized("Please sign in first.", detail={"signin": signin})
        if user["role"] not in roles:
            raise Forbidden("Your account cannot open this page.")
    if request.method in UNSAFE_METHODS and g.get("auth") != "token" and not getattr(view, "csrf_exempt", False):
        sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
        expected = session.get("csrf", "")
        if not expected or not hmac.compare_digest(sent, expected):
            raise FormExpired(_("This form has expired: the page was open a long time, or you signed out and in"
                                " again meanwhile. Go back to the form, reload it and send it again."))
    return None


def csrf_exempt(view):
    """For machine endpoints that take no cookie (the inference API); they must not read the session."""
    view.csrf_exempt = True
    return view


def undeclared_endpoints(app) -> list[str]:
    return sorted(
        ep for ep, view in app.view_functions.items()
        if ep != "static" and getattr(view, "required_roles", None) is None
    )

