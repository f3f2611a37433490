"""Walk the WHOLE route table as anonymous, student, teacher and admin.

For every rule and method: a role the view does not declare is refused (401 when signed out, 403 when
signed in with the wrong role), a declared role is let through (any answer but 401/403), and a
cookie-authenticated write without the CSRF token is refused. New routes are covered automatically.
"""
from __future__ import annotations

import pytest
from lms_fixtures import csrf_of, sign_in_staff, sign_in_student
from werkzeug.routing import IntegerConverter

from appliance.web.security import undeclared_endpoints

ROLES = ("anonymous", "student", "teacher", "admin")
SAMPLE = {"int": "999999", "default": "nope", "path": "nope/x", "float": "1.5", "uuid": "00000000-0000-0000-0000-000000000000"}


def _url(rule) -> str:
    url = rule.rule
    for arg in rule.arguments:
        converter = rule._converters[arg]
        conv = type(converter).__name__.lower().replace("converter", "")
        value = SAMPLE["int"] if isinstance(converter, IntegerConverter) else SAMPLE.get(conv, SAMPLE["default"])
        url = url.replace(f"<{arg}>", value)
        for prefix in ("int", "path", "float", "uuid", "string"):
            url = url.replace(f"<{prefix}:{arg}>", value)
    assert "<" not in url, url
    return url


@pytest.fixture
def sessions(app, admin, teacher, klass):
    """One signed-in cookie (and its CSRF token) per role; each request gets a fresh client with it."""
    out = {}
    for role in ROLES:
        c = app.test_client()
        if role == "student":
            ana = klass["students"]["Ana"]
            assert sign_in_student(c, klass["id"], ana["id"], ana["pin"]).status_code == 302
        elif role in ("teacher", "admin"):
            assert sign_in_staff(c, "tom" if role == "teacher" else "alice").status_code == 302
        token = csrf_of(c.get("/signin").get_data(as_text=True))
        cookie = c.get_cookie("ce_session")
        out[role] = (cookie.value if cookie else None, token)
    return out


GUARD_MESSAGES = {
    "Please sign in first.", "Your account cannot open this page.", "This page has no access rule, so it is closed.",
    "This form has expired: the page was open a long time, or you signed out and in again meanwhile. Go back to the"
    " form, reload it and send it again.",
}


def refused_by_guard(resp, status=(401, 403)) -> bool:
    """Refused by the access check itself (not e.g. a wrong password on the sign-in form, also a 401)."""
    return resp.status_code in status and resp.is_json and resp.get_json().get("error") in GUARD_MESSAGES


def _client(app, sessions, role):
    c = app.test_client()
    value, token = sessions[role]
    if value:
        c.set_cookie("ce_session", value)
    return c, token


def test_every_endpoint_declares_its_roles(app):
    assert undeclared_endpoints(app) == []


def test_route_table_refuses_wrong_roles(app, sessions):
    checked = 0
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        allowed = view.required_roles
        url = _url(rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for role in ROLES:
                c, token = _client(app, sessions, role)
                resp = c.open(url, method=method, headers={"X-CSRF-Token": token, "Accept": "application/json"})
                resp.close()  # streamed bodies (the backup download) hold a file until closed
                where = f"{method} {url} as {role} (allowed: {sorted(allowed)})"
                if "anonymous" in allowed or role in allowed:
                    assert not refused_by_guard(resp), f"{where} was refused: {resp.get_data(as_text=True)[:200]}"
                    assert resp.status_code != 500, f"{where} crashed: {resp.get_data(as_text=True)[:300]}"
                elif role == "anonymous":
                    assert refused_by_guard(resp, (401,)), where
                else:
                    assert refused_by_guard(resp, (403,)), where
                checked += 1
    assert checked > 100  # the walk really covered the table


def test_cookie_writes_without_csrf_token_are_refused(app, sessions):
    writes = 0
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        if rule.endpoint == "static" or getattr(view, "csrf_exempt", False):
            continue
        for method in rule.methods & {"POST", "PUT", "PATCH", "DELETE"}:
            roles = [r for r in ROLES if "anonymous" in view.required_roles or r in view.required_roles]
            c, _ = _client(app, sessions, roles[-1])
            resp = c.open(_url(rule), method=method, headers={"Accept": "application/json"})
            assert refused_by_guard(resp, (403,)), f"{method} {rule.rule} accepted a write without a CSRF token"
            writes += 1
    assert writes >= 20
