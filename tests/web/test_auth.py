"""Sign-in: the one-time setup page, staff passwords, student PINs, throttling, sessions."""
from __future__ import annotations

import threading

from lms_fixtures import csrf_of, make_class, page_csrf, sign_in_staff, sign_in_student, staff_password_hash

from appliance.people import accounts, classes
from appliance.people.throttle import SHARED_FACTOR, LoginThrottle


def _setup(client, username="root", password="s3cret-pass", password2=None):
    token = page_csrf(client, "/setup")
    return client.post("/setup", data={"csrf_token": token, "username": username, "display_name": "Root",
                                       "password": password, "password2": password2 or password})


def test_first_start_redirects_to_setup_and_setup_works_once(app, services):
    c = app.test_client()
    assert c.get("/").location.endswith("/setup")
    resp = _setup(c)
    assert resp.status_code == 302 and resp.location.endswith("/admin/")
    assert c.get("/admin/").status_code == 200  # signed in as the new admin
    with services.db.read() as conn:
        row = conn.execute("SELECT role, password_hash, last_signin_at FROM users WHERE username = 'root'").fetchone()
    assert row["role"] == "admin" and row["password_hash"].startswith("$argon2id$")
    assert row["last_signin_at"]  # signed in by setting up: the users page must not say "never"
    # Once an admin exists, the page is gone for everybody: it sends them to the staff sign-in.
    other = app.test_client()
    gone = other.get("/setup")
    assert gone.status_code == 302 and gone.location.endswith("/signin/staff")
    assert "This box is already set up. Please sign in." in other.get(gone.location).get_data(as_text=True)
    token = page_csrf(other, "/signin/staff")
    again = other.post("/setup", data={"csrf_token": token, "username": "mallory", "display_name": "M",
                                       "password": "s3cret-pass", "password2": "s3cret-pass"})
    assert again.status_code == 302 and again.location.endswith("/signin/staff")
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0] == 1
    assert other.get("/").location.endswith("/signin")


def test_setup_refuses_mismatched_or_short_passwords(app, services):
    c = app.test_client()
    assert _setup(c, password="s3cret-pass", password2="different1").status_code == 400
    assert _setup(c, password="short").status_code == 400
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] == 0


def test_two_simultaneous_setups_make_one_admin(app, services):
    clients = [app.test_client() for _ in range(4)]
    tokens = [page_csrf(c, "/setup") for c in clients]
    codes = []

    def go(i):
        codes.append(clients[i].post("/setup", data={"csrf_token": tokens[i], "username": f"admin{i}",
                                                     "password": "s3cret-pass", "password2": "s3cret-pass"}).status_code)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM users WHERE role = 'admin'").fetchone()[0] == 1
    assert sorted(codes).count(302) == 1 and all(c in (302, 404, 409) for c in codes)


def test_staff_sign_in_and_wrong_password(app, teacher):
    c = app.test_client()
    bad = sign_in_staff(c, "tom", "wrong password")
    assert bad.status_code == 401 and "not right" in bad.get_data(as_text=True)
    ok = sign_in_staff(c, "tom")
    assert ok.status_code == 302 and ok.location.endswith("/teach/")


def test_disabled_account_cannot_sign_in(app, services, teacher):
    services.db.write(lambda c: c.execute("UPDATE users SET disabled = 1 WHERE id = ?", (teacher["id"],)))
    resp = sign_in_staff(app.test_client(), "tom")
    # The right password of a switched-off account says so (and is no failed try); a wrong one does not.
    assert resp.status_code == 403 and "This account is switched off" in resp.get_data(as_text=True)
    assert sign_in_staff(app.test_client(), "tom", "wrong password").status_code == 401
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM login_failures WHERE key = 'user:tom'").fetchone()[0] == 1


def test_next_parameter_cannot_redirect_off_site(app, teacher):
    c = app.test_client()
    token = page_csrf(c, "/signin/staff")
    for evil in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        resp = c.post("/signin/staff", data={"csrf_token": token, "username": "tom", "password": "correct horse",
                                             "next": evil})
        assert resp.status_code == 302 and resp.location == "/teach/"
        token = page_csrf(c, "/signin/staff")
    resp = c.post("/signin/staff", data={"csrf_token": token, "username": "tom", "password": "correct horse",
                                         "next": "/teach/classes/1"})
    assert resp.location == "/teach/classes/1"


def _staff_try(app, username: str, password: str, address: str):
    c = app.test_client()
    token = page_csrf(c, "/signin/staff")
    return c.post("/signin/staff", data={"csrf_token": token, "username": username, "password": password},
                  environ_base={"REMOTE_ADDR": address})


def test_wrong_passwords_from_one_device_pause_that_device_only(app, services, teacher):
    # Five wrong passwords from a student's laptop locked the teacher (or the admin) out everywhere.
    limit = services.cfg.web.login_max_failures
    for _ in range(limit):
        assert _staff_try(app, "tom", "nope-nope", "10.0.0.7").status_code == 401
    paused = _staff_try(app, "tom", "correct horse", "10.0.0.7")
    assert paused.status_code == 429 and int(paused.headers["Retry-After"]) > 240
    assert "Please wait 5 minute(s)" in paused.get_data(as_text=True)
    assert _staff_try(app, "tom", "correct horse", "10.0.0.8").status_code == 302  # the teacher's own computer
    # ...which gives the guessing device no new tries.
    assert _staff_try(app, "tom", "nope-nope", "10.0.0.7").status_code == 429


def test_throttle_per_account_blocks_even_the_right_password(app, services, teacher):
    # Spread over devices, a guesser still meets the account's limit (four devices' worth).
    limit = services.cfg.web.login_max_failures * SHARED_FACTOR
    for i in range(limit):
        assert _staff_try(app, "tom", "nope-nope", f"10.0.0.{i + 1}").status_code == 401
    resp = _staff_try(app, "tom", "correct horse", "10.0.0.99")
    assert resp.status_code == 429 and "wait" in resp.get_data(as_text=True)
    # An administrator's new password lifts the pause at once.
    services.db.write(lambda c: accounts.set_password(c, teacher["id"], staff_password_hash()))
    assert _staff_try(app, "tom", "correct horse", "10.0.0.99").status_code == 302


def test_throttle_per_address_covers_many_accounts(app, services):
    limit = services.cfg.web.login_max_failures * SHARED_FACTOR
    for i in range(limit):
        assert _staff_try(app, f"guess{i}", "x" * 9, "10.9.9.9").status_code == 401
    assert _staff_try(app, "another", "x" * 9, "10.9.9.9").status_code == 429
    # A different device is not affected.
    assert _staff_try(app, "another", "x" * 9, "10.9.9.10").status_code == 401


def test_users_unlock_lifts_a_pause_from_the_box(app, services, teacher, capsys):
    from appliance.cli.main import main as cli

    for i in range(services.cfg.web.login_max_failures * SHARED_FACTOR):
        _staff_try(app, "tom", "nope-nope", f"10.0.1.{i + 1}")
    assert _staff_try(app, "tom", "correct horse", "10.0.2.1").status_code == 429
    data_dir = str(services.data_dir)
    assert cli(["users", "unlock", "tom", "--data-dir", data_dir]) == 0
    assert "'tom' can sign in again (20 recent failed sign-in(s) forgotten)" in capsys.readouterr().out
    assert _staff_try(app, "tom", "correct horse", "10.0.2.1").status_code == 302
    assert cli(["users", "unlock", "nobody", "--data-dir", data_dir]) != 0  # a typo is named
    assert cli(["users", "unlock", "--address", "10.0.1.1", "--data-dir", data_dir]) == 0
    assert "address 10.0.1.1 can sign in again" in capsys.readouterr().out


def test_throttle_window_expires(services):
    t = LoginThrottle(services.db, max_failures=2, window_s=60)
    for _ in range(2):
        t.failed("kid", "1.2.3.4", now=1000.0)
    try:
        t.check("kid", None, now=1030.0)
        raise AssertionError("should be throttled")
    except Exception as exc:  # noqa: BLE001
        assert exc.status == 429 and exc.detail["retry_after_s"] == 30
    t.check("kid", None, now=1061.0)  # both failures left the window
    with services.db.read() as conn:
        before = conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0]
    t.failed("other", None, now=5000.0)  # recording prunes rows older than the window
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM login_failures").fetchone()[0] == 1 < before


def test_student_signs_in_with_class_name_and_pin(app, klass):
    c = app.test_client()
    page = c.get("/signin").get_data(as_text=True)
    assert "Class 4B" in page
    names = c.get(f"/signin/class/{klass['id']}").get_data(as_text=True)
    assert "Ana" in names and "Ben" in names and "av-" in names  # names with pictures
    ana = klass["students"]["Ana"]
    pin_page = c.get(f"/signin/class/{klass['id']}/student/{ana['id']}").get_data(as_text=True)
    assert 'inputmode="numeric"' in pin_page and "keypad" in pin_page
    wrong = "0000" if ana["pin"] != "0000" else "1111"
    assert sign_in_student(c, klass["id"], ana["id"], wrong).status_code == 401
    resp = sign_in_student(c, klass["id"], ana["id"], ana["pin"])
    assert resp.status_code == 302 and resp.location.endswith("/learn")
    assert c.get("/learn").status_code == 200


def test_student_pin_throttled_after_max_failures(app, services, klass):
    ana, ben = klass["students"]["Ana"], klass["students"]["Ben"]
    wrong = "0000" if ana["pin"] != "0000" else "1111"
    c = app.test_client()
    for _ in range(services.cfg.web.login_max_failures):
        assert sign_in_student(c, klass["id"], ana["id"], wrong).status_code == 401
    paused = sign_in_student(c, klass["id"], ana["id"], ana["pin"])
    assert paused.status_code == 429 and "ask your teacher for a new PIN" in paused.get_data(as_text=True)
    # The classroom's shared computer still signs in the next child.
    assert sign_in_student(app.test_client(), klass["id"], ben["id"], ben["pin"]).status_code == 302
    # The teacher's new PIN works at once.
    pin = classes.reset_pin(services.db, klass["id"], ana["id"])
    assert sign_in_student(app.test_client(), klass["id"], ana["id"], pin).status_code == 302


def test_class_without_pin_signs_in_with_one_tap(app, services, teacher):
    class_id, students = make_class(services.db, teacher["id"], ["Cleo"], uses_pin=False, name="Little ones")
    assert students["Cleo"]["pin"] is None
    c = app.test_client()
    page = c.get(f"/signin/class/{class_id}/student/{students['Cleo']['id']}").get_data(as_text=True)
    assert "that's me" in page.replace("&#39;", "'")
    assert sign_in_student(c, class_id, students["Cleo"]["id"], None).status_code == 302


def test_student_cannot_sign_in_through_another_class(app, services, teacher, klass):
    other_id, _ = make_class(services.db, teacher["id"], ["Zed"], name="Other")
    ana = klass["students"]["Ana"]
    c = app.test_client()
    assert c.get(f"/signin/class/{other_id}/student/{ana['id']}").status_code == 404


def test_pin_reset_signs_out_the_old_session(app, services, klass, student_client):
    assert student_client.get("/learn").status_code == 200
    classes.reset_pin(services.db, klass["id"], klass["students"]["Ana"]["id"])
    assert student_client.get("/learn").status_code == 401


def test_sign_out_requires_csrf_and_clears_session(app, student_client):
    assert student_client.post("/signout").status_code == 403
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))
    assert student_client.post("/signout", data={"csrf_token": token}).status_code == 302
    assert student_client.get("/learn").status_code == 401


def test_session_cookie_flags(app, teacher):
    c = app.test_client()
    resp = sign_in_staff(c, "tom")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_pages_carry_a_strict_content_security_policy(app):
    resp = app.test_client().get("/signin")
    csp = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "<script>" not in resp.get_data(as_text=True)  # no inline script, so the policy holds


def test_error_pages_say_what_to_do_next(app, teacher):
    c = app.test_client()
    # A teacher's page signed out: the staff sign-in, and back to the page after it.
    page = c.get("/teach/classes/1?tab=x")
    assert page.status_code == 401 and 'href="/signin/staff?next=/teach/classes/1?tab%3Dx"' in page.get_data(as_text=True)
    assert sign_in_staff(c, "tom").status_code == 302
    # A student's page sends to the class picker.
    assert 'href="/signin"' in app.test_client().get("/learn").get_data(as_text=True)
    # An expired form says so, with the way back to it (it was titled "This page is not for your account").
    expired = c.post("/teach/classes", data={"csrf_token": "old", "name": "x"},
                     headers={"Referer": "http://localhost/teach/"})
    body = expired.get_data(as_text=True)
    assert expired.status_code == 403 and "<h1>This form has expired</h1>" in body and 'href="/teach/"' in body
    assert c.post("/teach/classes", data={"csrf_token": "old"}).get_json() is None  # a page, not JSON
    # Werkzeug's English developer text is replaced, in the page's language.
    missing = c.get("/no/such/page").get_data(as_text=True)
    assert "There is nothing at this address" in missing and "requested URL was not found" not in missing
    assert "This address cannot be opened like that" in c.get("/signout").get_data(as_text=True)
