"""Teacher pages: classes, rosters (add, CSV, PIN reset, remove), assignments and the reports."""
from __future__ import annotations

import re
import uuid

from lms_fixtures import (
    RIGHT,
    classmates,
    csrf_of,
    make_class,
    make_staff,
    sign_in_staff,
    sign_in_student,
)

from appliance.people.passwords import verify_pin


def _token(client, path="/teach/"):
    return csrf_of(client.get(path).get_data(as_text=True))


def test_teacher_creates_a_class_and_adds_a_student_with_a_pin(app, services, teacher_client):
    resp = teacher_client.post("/teach/classes", data={"csrf_token": _token(teacher_client), "name": "Class 5A",
                                                       "uses_pin": "on", "language": "es"})
    assert resp.status_code == 302
    class_id = int(resp.location.rsplit("/", 1)[1])
    page = teacher_client.post(f"/teach/classes/{class_id}/students",
                               data={"csrf_token": _token(teacher_client), "name": "  Maya   Lopez "})
    html = page.get_data(as_text=True)
    pin = re.search(r'data-testid="pin">(\d{4})<', html).group(1)
    assert "Maya Lopez" in html
    with services.db.read() as conn:
        row = conn.execute("SELECT u.* FROM users u JOIN class_members m ON m.student_id = u.id WHERE m.class_id = ?",
                           (class_id,)).fetchone()
        cls = conn.execute("SELECT * FROM classes WHERE id = ?", (class_id,)).fetchone()
    assert cls["language"] == "es" and cls["uses_pin"] == 1
    assert verify_pin(row["pin_hash"], pin) and pin not in row["pin_hash"]
    assert sign_in_student(app.test_client(), class_id, row["id"], pin).status_code == 302


def test_csv_import_adds_everyone_with_distinct_pictures(services, teacher, klass, teacher_client):
    csv = "First name;Last name\nLi;Wei\nSam;Okafor\n\nJo;Smith\n"
    page = teacher_client.post(f"/teach/classes/{klass['id']}/import", data={
        "csrf_token": _token(teacher_client), "names": csv}).get_data(as_text=True)
    assert "3 students added" in page and len(re.findall(r'data-testid="pin"', page)) == 3
    with services.db.read() as conn:
        rows = conn.execute("SELECT u.display_name, u.avatar FROM users u JOIN class_members m ON m.student_id = u.id"
                            " WHERE m.class_id = ?", (klass["id"],)).fetchall()
    assert {r[0] for r in rows} == {"Ana", "Ben", "Li Wei", "Sam Okafor", "Jo Smith"}
    assert len({r[1] for r in rows}) == 5


def test_csv_import_file_upload_adds_the_new_names_and_says_which_were_there(services, klass, teacher_client):
    """The class list uploaded again with a new pupil on it: the new one is added, Ana is not added a
    second time, and the page says so (the whole list used to be refused, on an error page)."""
    import io

    data = {"csrf_token": _token(teacher_client), "file": (io.BytesIO(b"name\nAna\nZoe\n<b>Ben</b>\n"), "class.csv")}
    resp = teacher_client.post(f"/teach/classes/{klass['id']}/import", data=data, content_type="multipart/form-data")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "2 students added" in page and len(re.findall(r'data-testid="pin"', page)) == 2
    assert "Already in the class, so not added again: Ana" in page
    with services.db.read() as conn:
        names = [r[0] for r in conn.execute("SELECT u.display_name FROM users u JOIN class_members m"
                                            " ON m.student_id = u.id WHERE m.class_id = ?", (klass["id"],))]
    assert sorted(names) == ["<b>Ben</b>", "Ana", "Ben", "Zoe"]
    again = teacher_client.post(f"/teach/classes/{klass['id']}/import", data={
        "csrf_token": _token(teacher_client), "names": "Ana\nZoe\n"})
    assert again.status_code == 400 and "Everyone on the list is already in this class" in again.get_data(as_text=True)
    one = teacher_client.post(f"/teach/classes/{klass['id']}/import", data={
        "csrf_token": _token(teacher_client), "names": "Ana\nMia\n"}).get_data(as_text=True)
    assert "1 student added" in one and "1 students" not in one
    # One name typed into "Add a student" that the class has is still refused: there is nothing else to add.
    single = teacher_client.post(f"/teach/classes/{klass['id']}/students", data={
        "csrf_token": _token(teacher_client), "name": "Ana"})
    assert single.status_code == 400 and "already has a student called: Ana" in single.get_data(as_text=True)


def test_a_pasted_list_with_one_name_too_long_says_which_and_adds_nobody(services, klass, teacher_client):
    long_name = "Maximiliana " * 8
    resp = teacher_client.post(f"/teach/classes/{klass['id']}/import", data={
        "csrf_token": _token(teacher_client), "names": f"Lia\n{long_name}\nOmar\n"})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 400 and "at most 60 characters" in text
    assert "Nobody was added; fix “Maximiliana Maximiliana Maximi…” and try again." in text
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM users WHERE display_name IN ('Lia', 'Omar')").fetchone()[0] == 0


def test_reset_pin_shows_a_new_pin_once(app, services, klass, teacher_client, monkeypatch):
    ana = klass["students"]["Ana"]
    html = teacher_client.post(f"/teach/classes/{klass['id']}/students/{ana['id']}/pin",
                               data={"csrf_token": _token(teacher_client)}).get_data(as_text=True)
    new_pin = re.search(r'data-testid="pin">(\d{4})<', html).group(1)
    c = app.test_client()
    if new_pin != ana["pin"]:
        assert sign_in_student(c, klass["id"], ana["id"], ana["pin"]).status_code == 401
    assert sign_in_student(c, klass["id"], ana["id"], new_pin).status_code == 302
    assert new_pin not in teacher_client.get(f"/teach/classes/{klass['id']}").get_data(as_text=True)
    # The card says where to open the box: the address the teacher's page came from (not the box itself).
    assert "Open http://" not in html  # the test client's "localhost"
    from appliance.web.teacher.roster import _address_for_students
    for base, shown in (("http://room12.local:8080", "http://room12.local:8080"), ("http://10.0.0.5", "http://10.0.0.5"),
                        ("http://127.0.0.1:8080", ""), ("http://[::1]:8080", "")):
        with app.test_request_context("/", base_url=base):
            assert _address_for_students() == shown, base
    monkeypatch.setattr("appliance.web.teacher.roster._address_for_students", lambda: "http://room12.local:8080")
    cards = teacher_client.post(f"/teach/classes/{klass['id']}/students/{ana['id']}/pin",
                                data={"csrf_token": _token(teacher_client)}).get_data(as_text=True)
    assert "Open http://room12.local:8080" in cards


def test_remove_student_keeps_history(services, course, klass, teacher_client, student_client):
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))
    student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
        "attempt_uid": str(uuid.uuid4()), "course_id": course, "exercise_id": "e1", "answer": RIGHT["e1"]})
    ana = klass["students"]["Ana"]
    resp = teacher_client.post(f"/teach/classes/{klass['id']}/students/{ana['id']}/remove",
                               data={"csrf_token": _token(teacher_client)})
    assert resp.status_code == 302
    page = teacher_client.get(f"/teach/classes/{klass['id']}").get_data(as_text=True)
    roster, departed = page.split("Taken out of this class")
    assert "Ana" not in roster and "Ben" in roster
    assert "Ana" in departed and f"/students/{ana['id']}/back" in departed  # she can be put back
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM attempts").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE type = 'enrolment'").fetchone()[0] == 3


def test_assign_lessons(services, course, klass, teacher_client):
    resp = teacher_client.post(f"/teach/classes/{klass['id']}/assign", data={
        "csrf_token": _token(teacher_client), "course_id": course, "lesson": ["what-is-a-fraction"]})
    assert resp.status_code == 302
    page = teacher_client.get(f"/teach/classes/{klass['id']}").get_data(as_text=True)
    assert re.search(r'value="what-is-a-fraction" checked', page)
    assert not re.search(r'value="equal-fractions" checked', page)
    bad = teacher_client.post(f"/teach/classes/{klass['id']}/assign", data={
        "csrf_token": _token(teacher_client), "course_id": course, "lesson": ["nope"]})
    assert bad.status_code == 400


def test_progress_grid_hardest_and_history(app, services, course, klass, teacher_client, student_client, monkeypatch):
    # The six right answers in a row below stand for practice on different days, not one answer sent
    # six times (which would count once: tests/web/test_attempts.py).
    monkeypatch.setattr("appliance.learning.progress.REPEAT_WINDOW_S", -1)
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))

    def answer(ex, ans):
        student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
            "attempt_uid": str(uuid.uuid4()), "course_id": course, "exercise_id": ex, "answer": ans})

    for _ in range(6):
        answer("e1", RIGHT["e1"])       # parts: mastered after six right answers
    answer("e5", {"choice": 2})         # equivalent: one wrong answer -> needs help
    grid = teacher_client.get(f"/teach/classes/{klass['id']}/progress").get_data(as_text=True)
    assert 'data-skill="parts" data-level="mastered"' in grid and "87%" in grid  # (6 + 1) / (6 + 2), rounded down
    assert 'data-skill="equivalent" data-level="help"' in grid
    assert 'data-skill="add" data-level="none"' in grid
    assert "Mastered" in grid and "Needs help" in grid and "Not started" in grid  # words, not only colour
    # Each estimate sits beside the student's own answers on the skill (it leans on their other answers too).
    assert '<small class="counts">6 right, 0 wrong</small>' in grid and '<small class="counts">0 right, 1 wrong</small>' in grid
    # Lessons done out of the course's lessons: one question right six times finishes no lesson.
    assert grid.count('<td class="nowrap">0 of 2</td>') == 2
    hardest = teacher_client.get(f"/teach/classes/{klass['id']}/hardest").get_data(as_text=True)
    assert hardest.index("Which fraction equals 2/4?") < hardest.index("Which fraction is one half?")
    assert "0%" in hardest and "100%" in hardest
    ana = klass["students"]["Ana"]
    history = teacher_client.get(f"/teach/classes/{klass['id']}/students/{ana['id']}").get_data(as_text=True)
    assert history.count("Which fraction is one half?") == 6 and "2/2" in history  # the chosen option's text
    api = teacher_client.get(f"/api/v1/classes/{klass['id']}/progress?course={course}").get_json()
    by_name = {s["display_name"]: s for s in api["students"]}
    assert by_name["Ana"]["skills"]["parts"]["level"] == "mastered"
    assert by_name["Ben"]["skills"]["parts"]["level"] == "none"


def test_teachers_cannot_see_each_others_classes(app, services, klass):
    make_staff(services.db, "teacher", "tina")
    c = app.test_client()
    sign_in_staff(c, "tina")
    assert c.get(f"/teach/classes/{klass['id']}").status_code == 404
    assert c.get(f"/teach/classes/{klass['id']}/progress").status_code == 404
    ana = klass["students"]["Ana"]
    assert c.get(f"/teach/classes/{klass['id']}/students/{ana['id']}").status_code == 404
    token = _token(c)
    assert c.post(f"/teach/classes/{klass['id']}/students", data={"csrf_token": token, "name": "X"}).status_code == 404
    assert c.get("/api/v1/classes").get_json() == []


def test_admin_sees_every_class(admin_client, klass):
    assert "Class 4B" in admin_client.get("/teach/").get_data(as_text=True)
    assert admin_client.get(f"/teach/classes/{klass['id']}").status_code == 200


def test_an_admin_sets_up_a_class_for_a_teacher_and_hands_it_over(app, services, admin, teacher, klass,
                                                                    admin_client, teacher_client):
    # An admin's class was the admin's: the teacher it was made for never saw it.
    home = admin_client.get("/teach/").get_data(as_text=True)
    assert 'name="teacher_id"' in home and f'<option value="{teacher["id"]}" >Tom (tom)</option>' in home
    made = admin_client.post("/teach/classes", data={"csrf_token": _token(admin_client), "name": "5B",
                                                     "teacher_id": str(teacher["id"]), "uses_pin": "on"})
    assert made.status_code == 302
    assert "5B" in teacher_client.get("/teach/").get_data(as_text=True)
    # Handed to another teacher from the class's settings.
    tina = make_staff(services.db, "teacher", "tina")
    settings = admin_client.post(f"/teach/classes/{klass['id']}/settings", data={
        "csrf_token": _token(admin_client), "name": "Class 4B", "uses_pin": "on", "teacher_id": str(tina["id"])})
    assert settings.status_code == 302
    assert teacher_client.get(f"/teach/classes/{klass['id']}").status_code == 404
    tina_client = app.test_client()
    sign_in_staff(tina_client, "tina")
    assert tina_client.get(f"/teach/classes/{klass['id']}").status_code == 200
    # A teacher's form cannot hand a class on (the field is an admin's): the class stays Tina's.
    assert 'name="teacher_id"' not in tina_client.get(f"/teach/classes/{klass['id']}").get_data(as_text=True)
    tina_client.post(f"/teach/classes/{klass['id']}/settings", data={
        "csrf_token": _token(tina_client), "name": "Class 4B", "uses_pin": "on", "teacher_id": str(teacher["id"])})
    assert tina_client.get(f"/teach/classes/{klass['id']}").status_code == 200


def test_saving_the_class_of_a_switched_off_teacher_keeps_it_theirs(app, services, admin, teacher, klass, admin_client):
    # The list left switched-off teachers out: the page chose the first teacher, and saving the class's
    # language handed it to someone else.
    make_staff(services.db, "teacher", "ann")
    services.db.write(lambda c: c.execute("UPDATE users SET disabled = 1 WHERE id = ?", (teacher["id"],)))
    page = admin_client.get(f"/teach/classes/{klass['id']}").get_data(as_text=True)
    assert f'<option value="{teacher["id"]}" selected>Tom (tom) – switched off</option>' in page
    admin_client.post(f"/teach/classes/{klass['id']}/settings", data={
        "csrf_token": _token(admin_client), "name": "Class 4B", "uses_pin": "on", "language": "es",
        "teacher_id": str(teacher["id"])})
    with services.db.read() as conn:
        assert tuple(conn.execute("SELECT teacher_id, language FROM classes WHERE id = ?", (klass["id"],)).fetchone()) == (teacher["id"], "es")


def test_names_are_listed_in_alphabetical_order_with_their_accents(app, services, teacher, teacher_client):
    class_id, _ = make_class(services.db, teacher["id"], ["Zoe", "Íñigo", "ana", "Óscar", "Ben"], name="Orden")
    page = app.test_client().get(f"/signin/class/{class_id}").get_data(as_text=True)
    picker = [n for n in ("ana", "Ben", "Íñigo", "Óscar", "Zoe") if n in page]
    assert sorted(picker, key=page.index) == ["ana", "Ben", "Íñigo", "Óscar", "Zoe"]  # Í was after Z


def test_two_classes_cannot_share_a_name(services, klass, teacher_client):
    # Children pick their class by its name: two "Class 4B" buttons cannot be told apart.
    again = teacher_client.post("/teach/classes", data={"csrf_token": _token(teacher_client), "name": "class 4b"})
    page = again.get_data(as_text=True)
    assert again.status_code == 400 and "There is already a class called “class 4b”" in page
    assert 'value="class 4b"' in page  # the form keeps what was typed
    teacher_client.post("/teach/classes", data={"csrf_token": _token(teacher_client), "name": "Class 5A"})
    with services.db.read() as conn:
        five = conn.execute("SELECT id FROM classes WHERE name = 'Class 5A'").fetchone()[0]
    rename = teacher_client.post(f"/teach/classes/{five}/settings", data={
        "csrf_token": _token(teacher_client), "name": "Class 4B", "uses_pin": "on"})
    assert rename.status_code == 302
    page = teacher_client.get(rename.location).get_data(as_text=True)
    assert "The class settings were not saved. There is already a class called" in page
    assert teacher_client.post(f"/teach/classes/{five}/settings", data={  # its own name again is fine
        "csrf_token": _token(teacher_client), "name": "Class 5A", "uses_pin": "on"}).status_code == 302
    # Accented capitals are the same name too (SQLite's lower() folds only ASCII).
    teacher_client.post("/teach/classes", data={"csrf_token": _token(teacher_client), "name": "Ñandúes"})
    again = teacher_client.post("/teach/classes", data={"csrf_token": _token(teacher_client), "name": "ÑANDÚES"})
    assert again.status_code == 400


def test_class_language_applies_to_its_students(app, services, teacher):
    class_id, students = make_class(services.db, teacher["id"], ["Lucia"], name="Clase 3", language="es")
    c = app.test_client()
    names = c.get(f"/signin/class/{class_id}").get_data(as_text=True)
    assert 'lang="es"' in names
    sign_in_student(c, class_id, students["Lucia"]["id"], students["Lucia"]["pin"])
    assert '<html lang="es"' in c.get("/learn").get_data(as_text=True)


def _free_text_answer(services, student_id: int, course: str, graded_by: str, confidence: float) -> int:
    def write(conn):
        return conn.execute(
            "INSERT INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score, confidence,"
            " graded_by, created_at) VALUES (?, ?, ?, 'e6', '{\"text\": \"half\"}', 0, 0, ?, ?, '2026-01-01T00:00:00Z')",
            (str(uuid.uuid4()), student_id, course, confidence, graded_by)).lastrowid
    return services.db.write(write)


def test_home_and_class_page_count_the_written_answers_to_check(app, services, course, klass, teacher, teacher_client):
    from appliance.web.learning_views import _review_rows

    below = services.cfg.learning.review_below_confidence
    ana, ben = klass["students"]["Ana"]["id"], klass["students"]["Ben"]["id"]
    cleo, dan = classmates(services.db, klass["id"], "Cleo", "Dan")
    _free_text_answer(services, ana, course, "pending", 0.0)               # waits for the teacher
    _free_text_answer(services, ben, course, "model", below / 2)          # the model was unsure
    _free_text_answer(services, cleo, course, "model", min(1.0, below + 0.3))  # sure: not to check
    _free_text_answer(services, dan, course, "teacher", 0.0)              # already graded by a teacher
    other_id, other = make_class(services.db, teacher["id"], ["Cleo"], name="Class 5C")
    _free_text_answer(services, other["Cleo"]["id"], course, "pending", 0.0)
    with services.db.read() as conn:                                       # the review page's own rule
        assert _review_rows(conn, klass["id"], False, below, 0, None)[1] == 2
        assert _review_rows(conn, other_id, False, below, 0, None)[1] == 1
    home = teacher_client.get("/teach/").get_data(as_text=True)
    assert re.search(rf'href="/teach/classes/{klass["id"]}/grades" aria-label="2 written answers to check: \u2068[^"]+\u2069">'
                     '2 written answers to check<', home)
    assert re.search(rf'href="/teach/classes/{other_id}/grades" aria-label="1 written answer to check: \u2068Class 5C\u2069">'
                     '1 written answer to check<', home)
    # The class grid says it in each cell of the question's skills (e6: equivalent and add), next to
    # right and wrong counts that already hold the model's unsure grade.
    grid = teacher_client.get(f"/teach/classes/{klass['id']}/progress?course={course}").get_data(as_text=True)
    assert grid.count(f'<a href="/teach/classes/{klass["id"]}/grades">1 to check</a>') == 4
    page = teacher_client.get(f"/teach/classes/{klass['id']}").get_data(as_text=True)
    assert re.search(r'Free-text answers\s*<span class="badge warn to-check">2 to check</span>', page)
    _free_text_answer(services, classmates(services.db, klass["id"], "Eva")[0], course, "model", 1.0)  # sure: adds nothing
    services.db.write(lambda c: c.execute("UPDATE attempts SET graded_by = 'teacher' WHERE graded_by = 'pending'"))
    home = teacher_client.get("/teach/").get_data(as_text=True)
    assert "1 written answer to check" in home and "to-check" in home
    page = teacher_client.get(f"/teach/classes/{other_id}").get_data(as_text=True)
    assert "to-check" not in page                                         # nothing waits: no badge


def test_an_answer_the_student_gave_again_no_longer_waits_for_the_teacher(app, services, course, klass, teacher_client):
    """A student who answered a written question again while the first answer waited: the student's pages
    go by the latest answer, so the teacher's list, counts and grid do too (the list had every copy, and
    the grid counted answers where the student's page counts questions)."""
    below = services.cfg.learning.review_below_confidence
    ana, ben = klass["students"]["Ana"], klass["students"]["Ben"]
    first = _free_text_answer(services, ana["id"], course, "pending", 0.0)
    latest = _free_text_answer(services, ana["id"], course, "model", below / 2)   # unsure: still waits
    ben_first = _free_text_answer(services, ben["id"], course, "pending", 0.0)
    _free_text_answer(services, ben["id"], course, "model", 1.0)                 # Ben's is graded now
    # An unsure model grade stays to check when replaced: its grade counts for the learner model.
    (cleo,) = classmates(services.db, klass["id"], "Cleo")
    cleo_unsure = _free_text_answer(services, cleo, course, "model", below / 2)
    _free_text_answer(services, cleo, course, "model", 1.0)
    url = f"/teach/classes/{klass['id']}/grades"
    listed_html = teacher_client.get(url).get_data(as_text=True)
    assert sorted(int(x) for x in re.findall(r'<tr id="attempt-(\d+)"', listed_html)) == [latest, cleo_unsure]
    row = listed_html[listed_html.index(f'id="attempt-{cleo_unsure}"'):]
    assert "Answered again since" in row[:row.index("</tr>")]
    assert "2 written answers to check" in teacher_client.get("/teach/").get_data(as_text=True)
    grid = teacher_client.get(f"/teach/classes/{klass['id']}/progress?course={course}").get_data(as_text=True)
    assert grid.count(f'<a href="{url}">1 to check</a>') == 4 and "2 to check" not in grid  # Ana's, Cleo's skills
    # The teacher's page of the student says the same of the replaced answer.
    history = teacher_client.get(f"/teach/classes/{klass['id']}/students/{ana['id']}").get_data(as_text=True)
    assert history.count("To review") == 0 and history.count("No grade") == 1, history
    student = app.test_client()
    sign_in_student(student, klass["id"], ana["id"], ana["pin"])
    assert "1 waiting for your teacher" in student.get("/me/progress").get_data(as_text=True)
    # Every answer is still under "show all", the replaced ones said to be replaced, and can be graded.
    everything = teacher_client.get(url + "?show=all").get_data(as_text=True)
    assert all(f'id="attempt-{i}"' in everything for i in (first, latest, ben_first, cleo_unsure))
    assert everything.count("Answered again since") == 3
    row = everything[everything.index(f'id="attempt-{first}"'):]
    assert "No grade" in row[:row.index("</tr>")] and "Waiting for you" not in row[:row.index("</tr>")]
    r = teacher_client.post(f"{url}/{first}", data={"csrf_token": csrf_of(everything), "verdict": "correct",
                                                    "show": "all"})
    assert r.status_code == 302
    with services.db.read() as conn:
        assert conn.execute("SELECT graded_by FROM attempts WHERE id = ?", (first,)).fetchone()[0] == "teacher"


def test_grid_legend_says_where_each_level_starts(services, course, klass, teacher_client):
    from appliance.web.teacher.reports import HELP_BELOW

    grid = teacher_client.get(f"/teach/classes/{klass['id']}/progress").get_data(as_text=True)
    low, high = round(HELP_BELOW * 100), round(services.cfg.learning.mastery_threshold * 100)
    legend = re.search(r'<ul class="legend".*?</ul>', grid, re.DOTALL).group(0)
    for text in ("Not started<span class=\"range\">: no answers yet", f"Needs help<span class=\"range\">: under {low}%, or the last 3 answers on the skill wrong",
                 f"Learning<span class=\"range\">: {low}% or more, not mastered yet",
                 f"Mastered<span class=\"range\">: {high}% and above, after 3 answers or more"):
        assert text in legend


def test_a_cell_is_mastered_only_after_enough_answers():
    from appliance.learning.plan import CoursePlan, Exercise, Skill
    from appliance.web.teacher.reports import level_of

    plan = CoursePlan("c", "C", "en", ("v",), {"s": Skill("s", "S", ())}, [],
                      {f"e{i}": Exercise(f"e{i}", "l", i, "numeric", "?", ("s",)) for i in range(5)},
                      skill_exercises={"s": [f"e{i}" for i in range(5)]})

    def cell(p, answers, wrong_run=False):
        return level_of(p, answers, plan.mastered("s", p, answers, 0.85, 3), wrong_run)

    assert cell(0.95, 1) == "learning"   # the model is sure after one answer: not yet
    assert cell(0.95, 3) == "mastered" and cell(0.84, 9) == "learning"
    assert cell(0.30, 5) == "help" and cell(None, 0) == "none" and cell(0.95, 9, wrong_run=True) == "help"


def test_typed_names_are_isolated_from_the_text_around_them(app, services, course, klass, teacher_client):
    name = "Zoë \u202eRTL"   # a right-to-left override inside a name must not turn the page around it
    class_id = klass["id"]
    services.db.write(lambda c: c.execute("UPDATE users SET display_name = ? WHERE id = ?",
                                          (name, klass["students"]["Ana"]["id"])))
    for path in (f"/teach/classes/{class_id}", f"/teach/classes/{class_id}/progress",
                 f"/teach/classes/{class_id}/students/{klass['students']['Ana']['id']}"):
        html = teacher_client.get(path).get_data(as_text=True)
        assert f"<bdi>{name}</bdi>" in html, path
        # Where no tag can go (the page title, the "Take ... out?" question): the isolate marks FSI, PDI.
        rest = html.replace(f"<bdi>{name}</bdi>", "").replace(f"\u2068{name}\u2069", "")
        # A text field holding the name (to correct it) sets its own direction from its text.
        rest = rest.replace(f'dir="auto" value="{name}"', "")
        assert name not in rest, path
    names = app.test_client().get(f"/signin/class/{class_id}").get_data(as_text=True)
    assert f'<span class="avatar-name"><bdi>{name}</bdi></span>' in names


def test_a_class_without_answers_opens_on_a_course_in_its_language(app, services, course, teacher, teacher_client,
                                                                   student_client, klass):
    """Before any answer the grid shows the course in the class's language, else the page's; after, the
    course the class works in, whatever its language."""
    from lms_fixtures import seed_course

    seed_course(services.db, "aaa-es", "Aaa fracciones")  # first by title, so order alone would pick it
    services.db.write(lambda c: c.execute("UPDATE courses SET language = 'es-MX' WHERE id = 'aaa-es'"))

    def shown(class_id: int) -> str:
        html = teacher_client.get(f"/teach/classes/{class_id}/progress").get_data(as_text=True)
        return re.search(r"<h2>([^<]+)</h2>", html).group(1)

    spanish, _ = make_class(services.db, teacher["id"], ["Luz"], name="4º B", language="es")
    english, _ = make_class(services.db, teacher["id"], ["Lee"], name="4B", language="en")
    unset, _ = make_class(services.db, teacher["id"], ["Kim"], name="4C")
    assert shown(spanish) == "Aaa fracciones"
    assert shown(english) == shown(unset) == "Fractions (mini)"  # the teacher's page is in English
    api = {cid: teacher_client.get(f"/api/v1/classes/{cid}/progress").get_json()["course_id"] for cid in (spanish, english)}
    assert api == {spanish: "aaa-es", english: "fractions-mini"}  # the JSON grid picks as the page does
    teacher_client.post("/language", data={"csrf_token": _token(teacher_client), "lang": "es"})
    assert shown(unset) == "Aaa fracciones" and shown(english) == "Fractions (mini)"
    # klass (no language) now answers in the Spanish course: that is the one its teacher comes for.
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))
    r = student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
        "attempt_uid": str(uuid.uuid4()), "course_id": "aaa-es", "exercise_id": "e1", "answer": RIGHT["e1"]})
    assert r.status_code == 201, r.get_data(as_text=True)
    teacher_client.post("/language", data={"csrf_token": _token(teacher_client), "lang": "en"})
    assert shown(klass["id"]) == "Aaa fracciones" and shown(unset) == "Fractions (mini)"


def test_the_page_of_a_student_marks_mastered_only_with_enough_answers(services, course, klass, teacher_client):
    """Both skills at 95%: "parts" (four questions, 1 answer so far) is not mastered yet; "equivalent"
    (two questions, both answered) is: a skill needs 3 answers, or one per question when it has fewer."""
    ana = klass["students"]["Ana"]["id"]

    def write(conn):
        for skill, ok in (("parts", 1), ("equivalent", 2)):
            conn.execute("INSERT INTO mastery (student_id, course_id, skill_id, successes, failures, p_mastery,"
                         " last_practice) VALUES (?, ?, ?, ?, 0, 0.95, '2026-01-01T00:00:00.000Z')", (ana, course, skill, ok))
    services.db.write(write)
    html = teacher_client.get(f"/teach/classes/{klass['id']}/students/{ana}").get_data(as_text=True)
    rows = dict(re.findall(r'<tr><th scope="row">([^<]+?) <span.*?</th>\s*<td>(.*?)</td>', html, re.DOTALL))
    assert "Mastered" in rows["Equivalent fractions"] and "Mastered" not in rows["Parts of a whole"], rows


def test_three_wrong_answers_in_a_row_flag_needs_help_whatever_the_estimate(services, course, klass, teacher_client,
                                                                           student_client, monkeypatch):
    """Three right then three wrong on "parts": the estimate is 50% ("Learning" by the number), but the
    teacher should look: the cell says "Needs help". A wrong answer to a question of a skill that builds
    on "parts" would not count for "parts"; one right answer ends the run."""
    monkeypatch.setattr("appliance.learning.progress.REPEAT_WINDOW_S", -1)  # the same answer again counts
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))

    def answer(ex, ans):
        r = student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
            "attempt_uid": str(uuid.uuid4()), "course_id": course, "exercise_id": ex, "answer": ans})
        assert r.status_code == 201, r.get_data(as_text=True)

    def parts_cell() -> tuple[str, str]:
        html = teacher_client.get(f"/teach/classes/{klass['id']}/progress").get_data(as_text=True)
        m = re.search(r'data-skill="parts" data-level="(\w+)">\s*<span>(\d+%)</span>', html)
        return m.group(1), m.group(2)

    for _ in range(3):
        answer("e1", RIGHT["e1"])
    for _ in range(2):
        answer("e1", {"choice": 0})
    assert parts_cell() == ("learning", "57%")     # (3 + 1) / (5 + 2): two wrong are no run yet
    answer("e1", {"choice": 0})
    assert parts_cell() == ("help", "50%")
    answer("e1", RIGHT["e1"])
    assert parts_cell()[0] == "learning"


def test_wrong_runs_count_only_a_skills_own_questions():
    from appliance.learning.plan import CoursePlan, Exercise, Lesson, Skill
    from appliance.web.teacher.reports import wrong_runs

    skills = {"of": Skill("of", "Fraction of a number", ()), "word": Skill("word", "Word problems", ("of",))}
    exercises = {"of-1": Exercise("of-1", "l", 0, "numeric", "?", ("of",)),
                 "w-1": Exercise("w-1", "l", 1, "numeric", "?", ("word", "of"))}
    plan = CoursePlan("c", "C", "en", ("s", "t"), skills, [Lesson("l", "L", 0, ("of", "word"))], exercises)
    assert plan.tests_skill("w-1", "word") and not plan.tests_skill("w-1", "of") and plan.tests_skill("of-1", "of")

    class Rows:  # the one query wrong_runs makes: (student, exercise, correct), latest first
        def __init__(self, rows):
            self.rows = [dict(student_id=1, exercise_id=e, correct=c) for e, c in rows]

        def execute(self, sql, params):
            assert params[1] == "c"
            return self.rows

    assert wrong_runs(Rows([("w-1", 0)] * 3), 1, plan) == {(1, "word")}
    assert wrong_runs(Rows([("of-1", 0), ("w-1", 0), ("of-1", 0), ("of-1", 0)]), 1, plan) == {(1, "of")}
    assert wrong_runs(Rows([("of-1", 0), ("of-1", 1), ("of-1", 0), ("of-1", 0)]), 1, plan) == set()


def test_a_class_list_that_is_not_one_is_refused_clearly(services, klass, teacher_client):
    import io

    url = f"/teach/classes/{klass['id']}/import"
    zipped = teacher_client.post(url, data={"csrf_token": _token(teacher_client),
                                            "file": (io.BytesIO(b"PK\x03\x04\x14\x00\x00\x00\r\nbinary"), "class.zip")},
                                 content_type="multipart/form-data")
    assert zipped.status_code == 400 and "That file is not a class list" in zipped.get_data(as_text=True)  # was a 500
    nothing = teacher_client.post(url, data={"csrf_token": _token(teacher_client), "names": "  "})
    assert nothing.status_code == 400 and "Choose a class list file or paste the names first." in nothing.get_data(as_text=True)
    excel = "Nombre;Apellidos\nLucía;Fernández\n".encode("utf-16")
    ok = teacher_client.post(url, data={"csrf_token": _token(teacher_client), "file": (io.BytesIO(excel), "lista.txt")},
                             content_type="multipart/form-data")
    assert ok.status_code == 200 and "Lucía Fernández" in ok.get_data(as_text=True)


def test_a_refused_list_comes_back_on_the_class_page_with_the_names_typed(services, klass, teacher_client):
    url = f"/teach/classes/{klass['id']}"
    pasted = "Zoe Li\nBen Li\nben li\n"
    resp = teacher_client.post(f"{url}/import", data={"csrf_token": _token(teacher_client), "names": pasted})
    page = resp.get_data(as_text=True)
    assert resp.status_code == 400 and '<div class="notice bad" role="alert" id="roster-error">These names appear twice' in page
    assert ">Zoe Li\nBen Li\nben li\n</textarea>" in page and "Add the students" in page  # the class page, not an error page
    one = teacher_client.post(f"{url}/students", data={"csrf_token": _token(teacher_client), "name": "Ana"})
    assert one.status_code == 400 and 'id="student-name" name="name" required maxlength="60" value="Ana"' in one.get_data(as_text=True)


def test_a_spreadsheet_or_archive_is_not_read_as_a_class_list(services, klass, teacher_client):
    import io

    for name in ("notazip.zip", "Lista.XLSX"):
        resp = teacher_client.post(f"/teach/classes/{klass['id']}/import", data={
            "csrf_token": _token(teacher_client), "file": (io.BytesIO(b"this is not a zip file at all"), name)},
            content_type="multipart/form-data")
        assert resp.status_code == 400 and "Save the list from your spreadsheet as CSV" in resp.get_data(as_text=True)
    with services.db.read() as conn:  # "this is not a zip file at all" became a pupil
        assert conn.execute("SELECT COUNT(*) FROM users WHERE display_name LIKE 'this is%'").fetchone()[0] == 0


def test_a_class_is_archived_at_the_end_of_the_year_and_restored(app, services, klass, teacher_client):
    ana = klass["students"]["Ana"]
    url = f"/teach/classes/{klass['id']}"
    assert 'action="/teach/classes/%d/archive"' % klass["id"] in teacher_client.get(url).get_data(as_text=True)
    done = teacher_client.post(f"{url}/archive", data={"csrf_token": _token(teacher_client)})
    assert done.status_code == 302
    home = teacher_client.get(done.location).get_data(as_text=True)
    assert "The class is archived" in home and "1 archived class" in home
    c = app.test_client()
    assert "Class 4B" not in c.get("/signin").get_data(as_text=True)  # off the sign-in page
    assert c.get(f"/signin/class/{klass['id']}").status_code == 404
    assert sign_in_student(c, klass["id"], ana["id"], ana["pin"]).status_code == 404
    assert "This class is archived" in teacher_client.get(url).get_data(as_text=True)  # its history stays
    # Next year's class may take the name; the old one then cannot come back under it.
    assert teacher_client.post("/teach/classes", data={"csrf_token": _token(teacher_client), "name": "Class 4B"}).status_code == 302
    refused = teacher_client.get(teacher_client.post(f"{url}/restore", data={"csrf_token": _token(teacher_client)}).location)
    assert "The class was not restored. There is already a class called" in refused.get_data(as_text=True)
    with services.db.read() as conn:
        new = conn.execute("SELECT id FROM classes WHERE name = 'Class 4B' AND archived_at IS NULL").fetchone()[0]
    teacher_client.post(f"/teach/classes/{new}/settings", data={"csrf_token": _token(teacher_client), "name": "Class 4B (2027)"})
    back = teacher_client.post(f"{url}/restore", data={"csrf_token": _token(teacher_client)})
    assert back.location.endswith(url)
    assert sign_in_student(app.test_client(), klass["id"], ana["id"], ana["pin"]).status_code == 302
