"""Admin pages: device status, accounts, course import with progress, backup and restore."""
from __future__ import annotations

import re
import sqlite3
import time

import pytest
from lms_fixtures import csrf_of, seed_course, sign_in_staff

from appliance.services import PartStatus


def _token(client, path="/admin/"):
    return csrf_of(client.get(path).get_data(as_text=True))


def test_status_page_shows_the_box_and_every_part(services, admin_client):
    services.report_status("sync", lambda: PartStatus("sync", "disabled", "no uplink configured"))
    services.report_status("inference", lambda: PartStatus("inference", "failed", "model file missing"))
    html = admin_client.get("/admin/").get_data(as_text=True)
    for text in ("Version", "Running for", "Free disk", "Database", "Course files", "no uplink configured",
                 "model file missing", "Switched off", "Failed"):
        assert text in html, text
    # Each figure is a term and its value, read together, not one flat run of words.
    assert '<dl class="stats">' in html and '<dt class="label">Free disk</dt><dd class="value">' in html
    info = admin_client.get("/api/v1/status").get_json()
    assert info["database_bytes"] > 0 and info["disk"]["free_bytes"] > 0
    assert {p["name"]: p["state"] for p in info["parts"]} == {"sync": "disabled", "inference": "failed"}


def test_admin_creates_and_disables_a_teacher(app, services, admin_client):
    resp = admin_client.post("/admin/users", data={"csrf_token": _token(admin_client), "role": "teacher",
                                                   "username": "Maria.G", "display_name": "María", "password": "pizza pizza 9"})
    assert resp.status_code == 302
    c = app.test_client()
    assert sign_in_staff(c, "maria.g", "pizza pizza 9").status_code == 302
    with services.db.read() as conn:
        uid = conn.execute("SELECT id FROM users WHERE username = 'maria.g'").fetchone()[0]
    admin_client.post(f"/admin/users/{uid}/disabled", data={"csrf_token": _token(admin_client), "disabled": "1"})
    ended = c.get("/teach/")  # the live session ends with the account, and the page says why
    assert ended.status_code == 401 and "This account was switched off. Please ask your administrator." in ended.get_data(as_text=True)
    assert c.get("/teach/").status_code == 401 and "Please sign in first" in c.get("/teach/").get_data(as_text=True)
    assert sign_in_staff(app.test_client(), "maria.g", "pizza pizza 9").status_code == 403  # "This account is switched off"


def test_duplicate_username_and_weak_password_are_refused(admin_client, teacher):
    dup = admin_client.post("/admin/users", data={"csrf_token": _token(admin_client), "role": "teacher",
                                                  "username": "tom", "password": "long password"})
    assert dup.status_code == 409 and "already taken" in dup.get_data(as_text=True)
    assert 'name="username" required autocapitalize="none" autocomplete="off" value="tom"' in dup.get_data(as_text=True)
    weak = admin_client.post("/admin/users", data={"csrf_token": _token(admin_client), "role": "teacher",
                                                   "username": "newbie", "password": "short"})
    assert weak.status_code == 400 and "at least 8" in weak.get_data(as_text=True)


def test_the_users_page_says_when_each_account_last_signed_in(app, services, admin_client, teacher):
    page = admin_client.get("/admin/users").get_data(as_text=True)
    tom_row = re.search(r'<th scope="row"><bdi>tom</bdi></th>.*?</tr>', page, re.DOTALL).group(0)
    assert '<td data-label="Last signed in">never</td>' in tom_row
    assert 'data-confirm="Switch off tom? They are signed out at once' in tom_row  # Disable asks first
    sign_in_staff(app.test_client(), "tom")
    tom_row = re.search(r'<th scope="row"><bdi>tom</bdi></th>.*?</tr>',
                        admin_client.get("/admin/users").get_data(as_text=True), re.DOTALL).group(0)
    assert re.search(r'<time datetime="20\d\d-[^"]+">20\d\d-\d\d-\d\d</time>', tom_row)


def test_last_admin_cannot_be_disabled(services, admin, admin_client):
    resp = admin_client.post(f"/admin/users/{admin['id']}/disabled", data={"csrf_token": _token(admin_client), "disabled": "1"})
    assert resp.status_code == 400
    with services.db.read() as conn:
        assert conn.execute("SELECT disabled FROM users WHERE id = ?", (admin["id"],)).fetchone()[0] == 0


def test_password_change_signs_out_other_sessions(app, teacher, admin_client):
    teacher_session = app.test_client()
    sign_in_staff(teacher_session, "tom")
    resp = admin_client.post(f"/admin/users/{teacher['id']}/password",
                             data={"csrf_token": _token(admin_client), "password": "brand new secret"})
    assert resp.status_code == 302
    assert teacher_session.get("/teach/").status_code == 401
    assert sign_in_staff(app.test_client(), "tom", "brand new secret").status_code == 302


def test_an_admin_who_changes_their_own_password_stays_signed_in(app, services, admin_client):
    # It landed on a bare "Please sign in first" page and the message was lost.
    with services.db.read() as conn:
        me = conn.execute("SELECT id, username FROM users WHERE role = 'admin'").fetchone()
    elsewhere = app.test_client()
    assert sign_in_staff(elsewhere, me["username"]).status_code == 302
    resp = admin_client.post(f"/admin/users/{me['id']}/password",
                             data={"csrf_token": _token(admin_client), "password": "my new long secret"})
    assert resp.status_code == 302
    page = admin_client.get(resp.location)
    assert page.status_code == 200 and "Your password was changed. Your other sessions are signed out." in page.get_data(as_text=True)
    assert elsewhere.get("/admin/").status_code == 401
    assert sign_in_staff(app.test_client(), me["username"], "my new long secret").status_code == 302


def test_backup_download_and_restore_round_trip(app, services, tmp_path, course, klass, admin_client):
    resp = admin_client.post("/admin/backup/download", data={"csrf_token": _token(admin_client, "/admin/backup")})
    assert resp.status_code == 200 and "attachment" in resp.headers["Content-Disposition"]
    backup = tmp_path / "copy.db"
    backup.write_bytes(resp.get_data())
    resp.close()
    assert not list((services.data_dir / "backups").glob("*.db"))  # nothing left on the box
    conn = sqlite3.connect(backup)
    assert conn.execute("SELECT COUNT(*) FROM users WHERE role = 'student'").fetchone()[0] == 2
    conn.close()
    # Change something, then restore: the change is undone.
    services.db.write(lambda c: c.execute("DELETE FROM class_members"))
    with open(backup, "rb") as f:
        resp = admin_client.post("/admin/backup/restore", data={"csrf_token": _token(admin_client, "/admin/backup"),
                                                                "backup": (f, "copy.db")}, content_type="multipart/form-data")
    assert resp.status_code == 302
    with services.db.read() as c:
        assert c.execute("SELECT COUNT(*) FROM class_members").fetchone()[0] == 2




def test_restore_refuses_garbage(services, admin_client, klass):
    import io

    resp = admin_client.post("/admin/backup/restore", data={
        "csrf_token": _token(admin_client, "/admin/backup"), "backup": (io.BytesIO(b"garbage" * 1000), "x.db")},
        content_type="multipart/form-data")
    assert resp.status_code == 400 and "not a database backup" in resp.get_data(as_text=True)
    with services.db.read() as c:
        assert c.execute("SELECT COUNT(*) FROM class_members").fetchone()[0] == 2
    # A file of another kind comes back on the backup page with the reason, not on an error page.
    wrong = admin_client.post("/admin/backup/restore", data={
        "csrf_token": _token(admin_client, "/admin/backup"), "backup": (io.BytesIO(b"PK\x03\x04"), "course.zip")},
        content_type="multipart/form-data")
    page = wrong.get_data(as_text=True)
    assert wrong.status_code == 400 and ".db" in page and 'name="backup"' in page


@pytest.fixture
def content_attached(services):
    from appliance.content import attach

    attach(services)
    return services


def _wait_job(client, job_id, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/v1/imports/{job_id}").get_json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError("import did not finish")


def test_course_import_through_the_api_with_progress(tmp_path, content_attached, admin_client):
    from appliance.content import demo

    bundle = demo.write(tmp_path / "demo.zip", "en")
    token = _token(admin_client, "/admin/content")
    with open(bundle, "rb") as f:
        resp = admin_client.post("/api/v1/imports", headers={"X-CSRF-Token": token},
                                 data={"bundle": (f, "demo.zip")}, content_type="multipart/form-data")
    assert resp.status_code == 202
    job = _wait_job(admin_client, resp.get_json()["id"])
    assert job["state"] == "done" and job["percent"] == 100.0 and job["result"]["lessons"] >= 6
    page = admin_client.get("/admin/content").get_data(as_text=True)
    assert job["result"]["title"] in page and "(installed)" in page
    assert not list((content_attached.data_dir / "uploads").glob("*"))  # the upload was removed
    # The same bundle again changes nothing, and the page says so (not "Installed").
    with open(bundle, "rb") as f:
        again = admin_client.post("/api/v1/imports", headers={"X-CSRF-Token": token},
                                  data={"bundle": (f, "demo.zip")}, content_type="multipart/form-data")
    assert _wait_job(admin_client, again.get_json()["id"])["result"]["status"] == "unchanged"
    page = admin_client.get("/admin/content").get_data(as_text=True)
    assert "(already installed, nothing changed)" in page
    assert 'data-msg-done-unchanged="Already installed, nothing changed: {title} (version {version})."' in page


def test_bad_bundle_is_refused_with_a_clear_message(content_attached, admin_client):
    import io

    token = _token(admin_client, "/admin/content")
    resp = admin_client.post("/api/v1/imports", headers={"X-CSRF-Token": token},
                             data={"bundle": (io.BytesIO(b"PK\x03\x04 not really a zip"), "bad.zip")},
                             content_type="multipart/form-data")
    job = _wait_job(admin_client, resp.get_json()["id"])
    # Named as the admin chose it, not by the random name the upload was stored under.
    assert job["state"] == "failed" and job["error"].startswith("bad.zip is not a readable zip file"), job["error"]
    wrong_type = admin_client.post("/api/v1/imports", headers={"X-CSRF-Token": token},
                                   data={"bundle": (io.BytesIO(b"x"), "notes.txt")}, content_type="multipart/form-data")
    assert wrong_type.status_code == 400 and ".zip" in wrong_type.get_json()["error"]


def test_import_unavailable_without_content_engine(admin_client):
    html = admin_client.get("/admin/content").get_data(as_text=True)
    assert "Course import is not available" in html
    resp = admin_client.get("/api/v1/imports/abc")
    assert resp.status_code == 503 and resp.is_json


def test_a_course_is_downloaded_removed_and_brought_back_with_its_progress(tmp_path, content_attached, admin_client,
                                                                           klass, capsys):
    import io
    import zipfile

    from appliance.content import demo

    services = content_attached
    token = _token(admin_client, "/admin/content")
    with open(demo.write(tmp_path / "demo.zip", "en"), "rb") as f:
        job = admin_client.post("/api/v1/imports", headers={"X-CSRF-Token": token}, data={"bundle": (f, "demo.zip")},
                                content_type="multipart/form-data").get_json()
    assert _wait_job(admin_client, job["id"])["state"] == "done"
    ana = klass["students"]["Ana"]["id"]
    services.db.write(lambda c: c.execute(
        "INSERT INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score, graded_by,"
        " created_at) VALUES ('u1', ?, 'fractions', 'basics-01', '{}', 1, 1, 'rule', '2026-11-22T10:00:00Z')", (ana,)))
    page = admin_client.get("/admin/content").get_data(as_text=True)
    assert 'action="/admin/content/fractions/remove"' in page and 'data-confirm="Remove “Fractions' in page
    # Download: the bundle as the CLI's export writes it.
    got = admin_client.post("/admin/content/fractions/export", data={"csrf_token": token})
    assert got.status_code == 200 and got.mimetype == "application/zip"
    assert "fractions-" in got.headers["Content-Disposition"]
    bundle = got.get_data()
    got.close()
    assert "course.json" in zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    assert not [p for p in services.data_dir.iterdir() if p.name.startswith("export-")]  # nothing left behind
    # Remove: gone from the box, the answers kept.
    done = admin_client.post("/admin/content/fractions/remove", data={"csrf_token": token})
    assert done.status_code == 302
    page = admin_client.get(done.location).get_data(as_text=True).replace("&#39;", "'")
    assert "was removed. Your students' answers to it are kept" in page
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM courses WHERE id = 'fractions'").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM exercises WHERE course_id = 'fractions'").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM blobs WHERE pinned = 1").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM attempts WHERE course_id = 'fractions'").fetchone()[0] == 1
    assert admin_client.post("/admin/content/fractions/remove", data={"csrf_token": token}).status_code == 404
    # The downloaded bundle brings it back.
    again = admin_client.post("/api/v1/imports", headers={"X-CSRF-Token": token},
                              data={"bundle": (io.BytesIO(bundle), "fractions.zip")}, content_type="multipart/form-data")
    assert _wait_job(admin_client, again.get_json()["id"])["state"] == "done"
    # And the command line removes it too.
    from appliance.cli.main import main as cli
    assert cli(["content", "remove", "fractions", "--data-dir", str(services.data_dir)]) == 0
    assert "removed fractions (Fractions" in capsys.readouterr().out
    assert cli(["content", "remove", "fractions", "--data-dir", str(services.data_dir)]) != 0


def test_every_page_works_after_a_course_with_progress_is_removed(services, course, klass, student_client,
                                                                   teacher_client, admin_client):
    import uuid

    from appliance.content.remover import remove_course

    token = _token(student_client, "/learn")
    for ex, answer in (("e1", {"choice": 1}), ("e1", {"choice": 0})):
        assert student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
            "attempt_uid": str(uuid.uuid4()), "course_id": course, "exercise_id": ex, "answer": answer}).status_code == 201
    remove_course(services.db, course)
    ana = klass["students"]["Ana"]["id"]
    for client, path in ((student_client, "/learn"), (student_client, "/me/progress"), (student_client, "/api/v1/me/progress"),
                         (teacher_client, "/teach/"), (teacher_client, f"/teach/classes/{klass['id']}"),
                         (teacher_client, f"/teach/classes/{klass['id']}/progress"),
                         (teacher_client, f"/teach/classes/{klass['id']}/students/{ana}"),
                         (teacher_client, f"/teach/classes/{klass['id']}/grades"), (admin_client, "/admin/"),
                         (admin_client, "/admin/content")):
        assert client.get(path).status_code == 200, path
    # The hardest questions speak of the course they show (after a removal, answers to another one are
    # no "nobody has answered yet"); with no course left, of none.
    assert "Nobody in this class has answered a question yet." in teacher_client.get(
        f"/teach/classes/{klass['id']}/hardest").get_data(as_text=True)
    seed_course(services.db, "fractions-two", "Fractions two")
    assert "Nobody in this class has answered a question of Fractions two yet." in teacher_client.get(
        f"/teach/classes/{klass['id']}/hardest").get_data(as_text=True)


def test_admin_corrects_a_name_and_changes_a_role(services, admin, admin_client, teacher, teacher_client):
    page = admin_client.get("/admin/users").get_data(as_text=True)
    assert f'action="/admin/users/{teacher["id"]}"' in page
    r = admin_client.post(f"/admin/users/{teacher['id']}", data={
        "csrf_token": csrf_of(page), "display_name": "  Tomás   Ruiz ", "role": "admin"})
    assert r.status_code == 302
    with services.db.read() as conn:
        row = conn.execute("SELECT display_name, role, username FROM users WHERE id = ?", (teacher["id"],)).fetchone()
        event = conn.execute("SELECT payload FROM outbox WHERE type = 'account' ORDER BY seq DESC LIMIT 1").fetchone()
    assert tuple(row) == ("Tomás Ruiz", "admin", "tom")  # the username stays: it is what they sign in with
    assert '"role_changed"' in event[0] and "Tomás" not in event[0]  # names never leave the box
    # The new role applies at the teacher's next request, without signing in again.
    assert teacher_client.get("/admin/users").status_code == 200
    # Back to teacher: now there are two admins, so it is allowed; and nothing to change says so.
    page = admin_client.get("/admin/users").get_data(as_text=True)
    admin_client.post(f"/admin/users/{teacher['id']}", data={"csrf_token": csrf_of(page), "display_name": "Tomás Ruiz",
                                                             "role": "teacher"})
    assert teacher_client.get("/admin/users").status_code == 403
    same = admin_client.post(f"/admin/users/{teacher['id']}", data={
        "csrf_token": csrf_of(page), "display_name": "Tomás Ruiz", "role": "teacher"}, follow_redirects=True)
    assert "Nothing was changed." in same.get_data(as_text=True)


def test_an_admin_cannot_demote_themselves_or_the_last_admin(services, admin, admin_client, teacher):
    page = admin_client.get("/admin/users").get_data(as_text=True)
    own = admin_client.post(f"/admin/users/{admin['id']}", data={
        "csrf_token": csrf_of(page), "display_name": "Alice", "role": "teacher"})
    assert own.status_code == 400 and "your own administrator role" in own.get_data(as_text=True)
    with services.db.read() as conn:
        assert conn.execute("SELECT role FROM users WHERE id = ?", (admin["id"],)).fetchone()[0] == "admin"
    # Her own name she may correct (the role select is off for her own row, so no role is sent).
    ok = admin_client.post(f"/admin/users/{admin['id']}", data={"csrf_token": csrf_of(page), "display_name": "Alice B."})
    assert ok.status_code == 302
    from appliance.errors import BadRequest
    from appliance.people.accounts import update_staff
    with pytest.raises(BadRequest, match="last active admin"):
        services.db.write(lambda c: update_staff(c, admin["id"], role="teacher"))
    bad = admin_client.post(f"/admin/users/{teacher['id']}", data={
        "csrf_token": csrf_of(page), "display_name": "", "role": "teacher"})
    assert bad.status_code == 400 and "Please type a name." in bad.get_data(as_text=True)
    wrong = admin_client.post(f"/admin/users/{teacher['id']}", data={
        "csrf_token": csrf_of(page), "display_name": "Tom", "role": "owner"})
    assert wrong.status_code == 400


def test_the_settings_page_shows_what_the_box_runs_with_and_never_a_secret(tmp_path, teacher_client):
    """Read-only: every key of every section with its value, where it was set (a default, the file, the
    environment) and its meaning; secrets show as ********."""
    from html import unescape

    from lms_fixtures import lms_config, make_staff

    from appliance.services import Services
    from appliance.web.app import create_app

    services = Services.open(lms_config(tmp_path / "data", web__secret_key="do-not-show-me",
                                        learning__target_success="0.7"))
    try:
        make_staff(services.db, "admin", "ada")
        client = create_app(services).test_client()
        sign_in_staff(client, "ada")
        html = unescape(client.get("/admin/settings").get_data(as_text=True))
        assert "do-not-show-me" not in html and "********" in html
        row = html[html.index("<code>target_success</code>"):]
        row = row[:row.index("</tr>")]
        assert '<code class="value">0.7</code>' in row and "CLASSROOM_EDGE_LEARNING__TARGET_SUCCESS" in row
        assert '<tr class="set">' in html[:html.index("<code>target_success</code>")][-200:]
        default_row = html[html.index("<code>mastery_min_answers</code>"):]
        assert "default" in default_row[:default_row.index("</tr>")]
        from appliance.config import sections

        for name, cls in sections().items():  # every section and key is on the page
            assert f'id="sec-{name}"' in html
            for f in __import__("dataclasses").fields(cls):
                assert f"<code>{f.name}</code>" in html
        assert 'href="/admin/settings"' in html  # in the admin's navigation
    finally:
        services.close()
    assert teacher_client.get("/admin/settings").status_code in (302, 403)
