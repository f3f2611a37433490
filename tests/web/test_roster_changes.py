"""A student's name corrected, a student moved to another class, taken out and put back: the same
account every time, so the PIN and everything the child did stay with them."""
from __future__ import annotations

import uuid

from lms_fixtures import csrf_of, make_class, sign_in_student


def _post(client, path, data, page="/teach/"):
    return client.post(path, data={"csrf_token": csrf_of(client.get(page).get_data(as_text=True)), **data})


def _answer_count(services, student_id):
    with services.db.read() as conn:
        return conn.execute("SELECT COUNT(*) FROM attempts WHERE student_id = ?", (student_id,)).fetchone()[0]


def _members(services, class_id):
    with services.db.read() as conn:
        return {r[0] for r in conn.execute("SELECT u.display_name FROM users u JOIN class_members m"
                                           " ON m.student_id = u.id WHERE m.class_id = ?", (class_id,))}


def test_teacher_corrects_a_typo_in_a_name(app, services, klass, teacher_client):
    ana = klass["students"]["Ana"]
    base = f"/teach/classes/{klass['id']}/students/{ana['id']}"
    page = teacher_client.get(base).get_data(as_text=True)
    assert f'action="{base}/name"' in page
    r = _post(teacher_client, base + "/name", {"name": "  Ana   María "}, base)
    assert r.status_code == 302 and r.headers["Location"].endswith(base)
    assert _members(services, klass["id"]) == {"Ana María", "Ben"}
    # Same account: the old PIN still signs her in, under her new name.
    c = app.test_client()
    assert sign_in_student(c, klass["id"], ana["id"], ana["pin"]).status_code == 302
    assert "Ana María" in c.get("/learn/").get_data(as_text=True)
    # Refused: a name another child of the class has, and an empty one; nothing changes.
    services.db.write(lambda c: c.execute("UPDATE users SET display_name = 'Íñigo' WHERE id = ?",
                                          (klass["students"]["Ben"]["id"],)))
    # "ÍÑIGO" is Íñigo's name: SQLite's lower() folds only ASCII, so the two passed as different names.
    for bad, why in (("ÍÑIGO", "already has a student called ÍÑIGO"), ("   ", "Please type a name.")):
        r = _post(teacher_client, base + "/name", {"name": bad}, base)
        assert why in teacher_client.get(r.headers["Location"]).get_data(as_text=True)
    assert _members(services, klass["id"]) == {"Ana María", "Íñigo"}


def test_a_student_moves_to_another_class_and_keeps_everything(app, services, teacher, klass, teacher_client, course):
    ana = klass["students"]["Ana"]
    other, _ = make_class(services.db, teacher["id"], ["Carla"], name="Class 5A")
    c = app.test_client()
    sign_in_student(c, klass["id"], ana["id"], ana["pin"])
    token = csrf_of(c.get("/learn").get_data(as_text=True))
    assert c.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
        "attempt_uid": str(uuid.uuid4()), "course_id": course, "exercise_id": "e1", "answer": {"choice": 1},
        "duration_ms": 900}).status_code == 201
    answers = _answer_count(services, ana["id"])
    assert answers == 1
    base = f"/teach/classes/{klass['id']}/students/{ana['id']}"
    assert "Class 5A" in teacher_client.get(base).get_data(as_text=True)
    r = _post(teacher_client, base + "/move", {"to_class": str(other)}, base)
    assert r.status_code == 302
    assert _members(services, klass["id"]) == {"Ben"} and _members(services, other) == {"Ana", "Carla"}
    assert _answer_count(services, ana["id"]) == answers
    # She signs in through her new class with the same PIN; her old class lists her as moved there.
    assert sign_in_student(app.test_client(), other, ana["id"], ana["pin"]).status_code == 302
    page = teacher_client.get(f"/teach/classes/{klass['id']}").get_data(as_text=True)
    assert "Taken out of this class" in page and "now in Class 5A" in page
    # Put back into the old class (a move by mistake): she leaves the new one, a child is in one class.
    r = _post(teacher_client, f"/teach/classes/{klass['id']}/students/{ana['id']}/back", {}, base)
    assert "They are no longer in Class 5A." in teacher_client.get(r.headers["Location"]).get_data(as_text=True)
    assert _members(services, klass["id"]) == {"Ana", "Ben"} and _members(services, other) == {"Carla"}


def test_a_teacher_cannot_move_a_student_into_someone_else_s_class(services, admin, klass, teacher_client):
    theirs, _ = make_class(services.db, admin["id"], ["Zoe"], name="Admin's class")
    ana = klass["students"]["Ana"]
    base = f"/teach/classes/{klass['id']}/students/{ana['id']}"
    assert "Admin&#39;s class" not in teacher_client.get(base).get_data(as_text=True)
    r = _post(teacher_client, base + "/move", {"to_class": str(theirs)}, base)
    assert r.status_code == 404
    for odd in ("not a number", "²", str(10**20)):  # "²".isdigit() is True; 10**20 does not fit SQLite
        r = _post(teacher_client, base + "/move", {"to_class": odd}, base)
        assert r.status_code == 302, odd
        assert "Choose another class." in teacher_client.get(r.headers["Location"]).get_data(as_text=True)
    assert _members(services, klass["id"]) == {"Ana", "Ben"}


def test_a_student_taken_out_by_mistake_is_put_back_with_their_account(services, teacher, klass, teacher_client):
    ben = klass["students"]["Ben"]
    cls_page = f"/teach/classes/{klass['id']}"
    _post(teacher_client, f"{cls_page}/students/{ben['id']}/remove", {}, cls_page)
    assert _members(services, klass["id"]) == {"Ana"}
    page = teacher_client.get(cls_page).get_data(as_text=True)
    assert f'action="{cls_page}/students/{ben["id"]}/back"' in page
    # Meanwhile a new pupil called Ben joined: the old Ben cannot come back under the same name.
    make_class_member = _post(teacher_client, f"{cls_page}/students", {"name": "Ben"}, cls_page)
    assert make_class_member.status_code == 200
    r = _post(teacher_client, f"{cls_page}/students/{ben['id']}/back", {}, cls_page)
    assert "already has a student called Ben" in teacher_client.get(r.headers["Location"]).get_data(as_text=True)
    with services.db.read() as conn:
        new_ben = conn.execute("SELECT u.id FROM users u JOIN class_members m ON m.student_id = u.id"
                               " WHERE m.class_id = ? AND u.display_name = 'Ben'", (klass["id"],)).fetchone()[0]
    _post(teacher_client, f"{cls_page}/students/{new_ben}/remove", {}, cls_page)
    r = _post(teacher_client, f"{cls_page}/students/{ben['id']}/back", {}, cls_page)
    assert "Ben is back in the class" in teacher_client.get(r.headers["Location"]).get_data(as_text=True)
    with services.db.read() as conn:
        assert conn.execute("SELECT student_id FROM class_members WHERE class_id = ? AND student_id = ?",
                            (klass["id"], ben["id"])).fetchone() is not None
    # Only someone taken out of this class can be put back into it.
    r = _post(teacher_client, f"{cls_page}/students/{klass['students']['Ana']['id']}/back", {}, cls_page)
    assert "was not taken out of this class" in teacher_client.get(r.headers["Location"]).get_data(as_text=True)


def test_a_teacher_cannot_put_back_a_child_now_in_another_teacher_s_class(services, admin, klass, teacher_client,
                                                                         admin_client):
    """The admin moved Ana to another teacher's class: her old teacher sees where she is, but "Put back"
    would take her out of a class that is not theirs, so it is not offered and is refused if sent."""
    ana = klass["students"]["Ana"]
    theirs, _ = make_class(services.db, admin["id"], ["Zoe"], name="Class 6C")
    base = f"/teach/classes/{klass['id']}/students/{ana['id']}"
    assert _post(admin_client, base + "/move", {"to_class": str(theirs)}, base).status_code == 302
    cls_page = f"/teach/classes/{klass['id']}"
    page = teacher_client.get(cls_page).get_data(as_text=True)
    assert "now in Class 6C" in page and "only its teacher or an administrator can move them back" in page
    assert f'action="{base}/back"' not in page
    r = _post(teacher_client, base + "/back", {}, cls_page)
    assert "Ana is now in Class 6C, another teacher" in teacher_client.get(r.headers["Location"]).get_data(as_text=True)
    assert _members(services, klass["id"]) == {"Ben"} and _members(services, theirs) == {"Ana", "Zoe"}
    # The admin manages both classes and may put her back.
    assert f'action="{base}/back"' in admin_client.get(cls_page).get_data(as_text=True)
    _post(admin_client, base + "/back", {}, cls_page)
    assert _members(services, klass["id"]) == {"Ana", "Ben"} and _members(services, theirs) == {"Zoe"}
