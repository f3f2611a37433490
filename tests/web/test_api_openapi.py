"""The JSON API: OpenAPI 3.1 document generated from the route table, JSON errors, bearer tokens."""
from __future__ import annotations

import re

from lms_fixtures import csrf_of
from openapi_spec_validator import validate


def test_openapi_document_is_valid_and_covers_every_api_route(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    validate(doc)  # raises on any violation of the OpenAPI 3.1 schema
    assert doc["openapi"] == "3.1.0"
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1"):
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method.lower()) in documented, f"{method} {rule.rule} is not in openapi.json"
    attempts = doc["paths"]["/api/v1/attempts"]["post"]
    assert attempts["x-roles"] == ["student"]
    assert "attempt_uid" in attempts["requestBody"]["content"]["application/json"]["schema"]["required"]
    assert doc["paths"]["/api/v1/classes/{class_id}/progress"]["get"]["parameters"][0]["schema"] == {"type": "integer"}
    # Routes declared elsewhere (health) are documented from their own declaration.
    assert doc["paths"]["/api/v1/health"]["get"]["x-roles"] == ["anonymous"]
    # Every operation says what it does (some said "health.health", "inference.rollback").
    bare = [(p, m, op["summary"]) for p, ops in doc["paths"].items() for m, op in ops.items()
            if " " not in op["summary"]]
    assert not bare, bare


def test_api_errors_are_json_and_pages_are_html(app, student_client):
    api = app.test_client().get("/api/v1/me")
    assert api.status_code == 401 and api.is_json and api.get_json()["code"] == "unauthorized"
    missing = app.test_client().get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.is_json
    page = app.test_client().get("/teach/")
    assert page.status_code == 401 and page.mimetype == "text/html" and "Please sign in" in page.get_data(as_text=True)
    wrong = student_client.get("/admin/")
    assert wrong.status_code == 403 and "This page is not for your account" in wrong.get_data(as_text=True)


def test_me_endpoint(student_client):
    me = student_client.get("/api/v1/me").get_json()
    assert me["role"] == "student" and me["display_name"] == "Ana" and "id" not in me


def test_bearer_token_for_automation(app, services, admin_client):
    page = admin_client.get("/admin/users").get_data(as_text=True)
    html = admin_client.post("/admin/tokens", data={"csrf_token": csrf_of(page), "name": "ansible"}).get_data(as_text=True)
    token = re.search(r'data-testid="token">([^<]+)<', html).group(1)
    with services.db.read() as conn:
        stored = conn.execute("SELECT token_hash FROM api_tokens").fetchone()[0]
    assert token not in stored  # only the hash is kept
    c = app.test_client()
    status = c.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert status.status_code == 200 and status.get_json()["version"]
    # A bearer request carries no cookie, so it needs no CSRF token for writes.
    created = c.post("/admin/users", headers={"Authorization": f"Bearer {token}"},
                     data={"role": "teacher", "username": "bot-made", "password": "long enough pw"})
    assert created.status_code == 302
    bad = c.get("/api/v1/status", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.is_json
    # The users page says when a token was last used (so a dead one can be revoked).
    assert "last used 20" in admin_client.get("/admin/users").get_data(as_text=True)


def test_reloading_the_new_token_page_makes_no_second_token(services, admin_client):
    page = admin_client.get("/admin/users").get_data(as_text=True)
    form = {"csrf_token": csrf_of(page), "name": "ansible",
            "request_id": re.search(r'name="request_id" value="([^"]+)"', page).group(1)}
    assert 'data-testid="token"' in admin_client.post("/admin/tokens", data=form).get_data(as_text=True)
    again = admin_client.post("/admin/tokens", data=form)  # F5 on the answer sends the same form
    assert again.status_code == 409 and "That token was already made" in again.get_data(as_text=True)
    assert 'data-testid="token"' not in again.get_data(as_text=True)
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM api_tokens").fetchone()[0] == 1
    # The page's address opened again is the users page, not a 405.
    assert admin_client.get("/admin/tokens").location.endswith("/admin/users#tokens-h")
    assert "never used" in admin_client.get("/admin/users").get_data(as_text=True)


def test_course_list_api(course, student_client):
    courses = student_client.get("/api/v1/courses").get_json()
    assert courses[0]["id"] == "fractions-mini" and [lesson["id"] for lesson in courses[0]["lessons"]] == [
        "what-is-a-fraction", "equal-fractions"]
