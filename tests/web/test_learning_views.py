"""The learning pages through the Flask app with the real models attached: next up on the student home,
mastery in the answer's reply, search (page + API, in the class's language), the teacher's free-text
grade review with overrides, the models on the admin page, and the pages without models."""
from __future__ import annotations

import dataclasses
import json
import re
import uuid
from html import unescape

import pytest
from learning_models import built_models, learning_services
from lms_fixtures import (
    COURSE_ID,
    classmates,
    csrf_of,
    make_class,
    make_staff,
    seed_course,
    sign_in_staff,
    sign_in_student,
)

from appliance.web.app import create_app


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return built_models(tmp_path_factory)


@pytest.fixture
def services(tmp_path, models):
    """Overrides tests/conftest.py: the process is wired like a serving web worker (engine + learning)."""
    s = learning_services(tmp_path / "data", models)
    yield s
    s.close()


def _answer(client, exercise_id, answer):
    token = csrf_of(client.get("/learn").get_data(as_text=True))
    return client.post("/api/v1/attempts", headers={"X-CSRF-Token": token},
                       json={"attempt_uid": str(uuid.uuid4()), "course_id": COURSE_ID, "exercise_id": exercise_id,
                             "answer": answer})


def _next_up(html: str) -> str:
    m = re.search(r'<section class="card next-up".*?</section>', html, re.DOTALL)
    assert m, "no next-up card on the page"
    return m.group(0)


def test_student_home_shows_next_up_and_why(student_client, course):
    card = _next_up(student_client.get("/learn").get_data(as_text=True))
    assert 'data-kind="lesson"' in card and "What is a fraction?" in card
    assert "A good place to start: “What is a fraction?”" in card  # the lesson the button opens
    link = re.search(r'href="([^"]+)"', card).group(1)
    assert student_client.get(link).status_code == 200
    r = _answer(student_client, "e1", {"choice": 1})
    card = _next_up(student_client.get("/learn").get_data(as_text=True))
    assert r.get_json()["next"]["why"] in card.replace("&#34;", '"')
    assert 'data-kind="practice"' in card and "#ex-" in card


def test_the_answer_reply_carries_the_new_mastery_and_the_page_names_it(student_client, course):
    first = _answer(student_client, "e1", {"choice": 1}).get_json()
    second = _answer(student_client, "e3", {"value": "3/4"}).get_json()
    assert set(first["mastery"]) == {"parts"} and second["mastery"]["parts"] > first["mastery"]["parts"]
    assert first["mastery"]["parts"] != pytest.approx(2 / 3, abs=1e-3)  # the model's estimate, not the rule's
    page = student_client.get(f"/learn/{COURSE_ID}/what-is-a-fraction").get_data(as_text=True)
    names = json.loads(re.search(r'data-skills="([^"]*)"', page).group(1).replace("&#34;", '"'))
    assert names["parts"] == "Parts of a whole"
    assert 'data-msg-mastery="{skill}: {pct}% mastered"' in page


def test_search_page_and_api(student_client, course):
    html = student_client.get("/search?q=how+many+equal+parts+make+a+whole").get_data(as_text=True)
    results = re.search(r'<ul class="lesson-list search-results">.*?</ul>', html, re.DOTALL).group(0)
    links = re.findall(r'<li><a href="([^"]+)">', results)
    assert links and all(link.startswith(f"/learn/{COURSE_ID}/") for link in links)
    assert "Searching by words only" not in html
    # The page's title, read first by a screen reader, says what was searched and how much came back.
    title = re.search(r"<title>(.*?)</title>", html, re.DOTALL).group(1)
    assert f"Search: “\u2068how many equal parts make a whole\u2069”, {len(links)} result" in title
    typo = student_client.get("/search?q=wholle").get_data(as_text=True)  # a misspelling that found nothing
    assert "Results for “<bdi>whole</bdi>”" in typo and "You typed “<bdi>wholle</bdi>”" in typo
    assert "/learn/fractions-mini/what-is-a-fraction" in typo
    data = student_client.get("/api/v1/search?q=bottom number of a fraction").get_json()
    assert data["mode"] == "meaning" and data["hits"][0]["item_id"] == "e4"
    empty = student_client.get("/search?q=+").get_data(as_text=True)  # sent empty: told what to type
    assert "Type a word or two about what you are looking for, like “equal parts”." in empty
    assert "Type a word or two" not in student_client.get("/search").get_data(as_text=True)
    err = student_client.get("/api/v1/search?q=")
    assert err.status_code == 400 and err.get_json()["code"] == "bad_request"
    home = student_client.get("/learn").get_data(as_text=True)
    assert 'role="search"' in home and 'action="/search"' in home


def test_search_looks_in_the_courses_of_the_class_language(app, services, teacher, course):
    seed_course(services.db, "fracciones-mini", "Fracciones (mini)")
    services.db.write(lambda c: c.execute("UPDATE courses SET language = 'es' WHERE id = 'fracciones-mini'"))
    class_id, kids = make_class(services.db, teacher["id"], ["Luz"], name="4º B", language="es")
    c = app.test_client()
    assert sign_in_student(c, class_id, kids["Luz"]["id"], kids["Luz"]["pin"]).status_code == 302
    data = c.get("/api/v1/search?q=fraction").get_json()
    assert data["hits"] and {h["course_id"] for h in data["hits"]} == {"fracciones-mini"}
    home = c.get("/learn").get_data(as_text=True)
    assert "Lo siguiente" in home and "Buscar lecciones y preguntas" in home


def test_next_up_stays_in_the_class_language_after_a_try_in_another_course(app, services, teacher, course):
    """Luz works in the Spanish course, then tries one question of the English one: her home page keeps
    offering the Spanish course. A student who works in the English one (three answers) gets it."""
    seed_course(services.db, "fracciones-mini", "Fracciones (mini)")
    services.db.write(lambda c: c.execute("UPDATE courses SET language = 'es' WHERE id = 'fracciones-mini'"))
    class_id, kids = make_class(services.db, teacher["id"], ["Luz", "Max"], name="4º B", language="es")

    sent: list[str] = []

    def next_up_course(name: str, answers: list[str]) -> str:
        c = app.test_client()
        assert sign_in_student(c, class_id, kids[name]["id"], kids[name]["pin"]).status_code == 302
        token = csrf_of(c.get("/learn").get_data(as_text=True))
        for course_id in answers:
            sent.append(course_id)
            r = c.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={  # a new answer each time
                "attempt_uid": str(uuid.uuid4()), "course_id": course_id, "exercise_id": "e1",
                "answer": {"choice": len(sent) % 3}})
            assert r.status_code == 201, r.get_data(as_text=True)
        home = c.get("/learn").get_data(as_text=True)
        return re.search(r'href="/learn/([^/"]+)/', _next_up(home)).group(1)

    assert next_up_course("Luz", ["fracciones-mini", COURSE_ID]) == "fracciones-mini"
    # One try in the English course is a look around; a student who works there gets it.
    assert next_up_course("Max", [COURSE_ID]) == "fracciones-mini"
    assert next_up_course("Max", [COURSE_ID] * 2) == COURSE_ID
    # The English course removed (its answers are kept): Next up goes back to the class language's course.
    from appliance.content.remover import remove_course

    remove_course(services.db, COURSE_ID)
    assert next_up_course("Max", []) == "fracciones-mini"


def _free_text(services, student_id: int, text: str, graded_by: str, confidence: float, correct: int) -> int:
    def write(conn):
        return conn.execute(
            "INSERT INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score, confidence,"
            " graded_by, created_at) VALUES (?, ?, ?, 'e6', ?, ?, ?, ?, ?, '2026-01-01T00:00:00.000Z')",
            (str(uuid.uuid4()), student_id, COURSE_ID, json.dumps({"text": text}), correct, float(correct), confidence,
             graded_by)).lastrowid
    return services.db.write(write)


def test_teacher_sees_unsure_grades_first_and_overrides_them(services, teacher_client, student_client, klass, course):
    reply = _answer(student_client, "e6", {"text": "Both are one half of the whole."}).get_json()
    assert reply["graded_by"] == "model"
    ana = klass["students"]["Ana"]["id"]
    cleo, dan, eva = classmates(services.db, klass["id"], "Cleo", "Dan", "Eva")
    unsure = _free_text(services, ana, "They are kind of the same maybe", "model", 0.3, 1)
    toss = _free_text(services, cleo, "half-ish, both", "model", 0.05, 0)
    waiting = _free_text(services, dan, "two quarters make a half", "pending", 0.0, 0)
    sure = _free_text(services, eva, "cats", "model", 0.99, 0)
    url = f"/teach/classes/{klass['id']}/grades"
    html = teacher_client.get(url).get_data(as_text=True)
    order = [int(x) for x in re.findall(r'<tr id="attempt-(\d+)"', html)]
    assert order[:3] == [waiting, toss, unsure] and sure not in order          # only what needs checking
    # The confidence in words, not as a percentage that reads like a probability; a coin toss said apart.
    assert "Waiting for you" in html and "The model is unsure" in html and "% sure" not in html
    assert f'data-attempt="{toss}" data-graded-by="model" data-sure="toss"' in html and "The model cannot tell" in html
    assert f'id="attempt-{unsure}" tabindex="-1" data-attempt="{unsure}" data-graded-by="model" data-sure="unsure"' in html
    # Each button's accessible name names the student, the question and the answer, as one bidi isolate.
    assert ('aria-label="Right: \u2068Ana, question: Explain why 1/2 and 2/4 are the same amount., answer: They are kind '
            'of the same maybe\u2069"') in html
    assert "“<bdi lang=\"en\">They are kind of the same maybe</bdi>”" in html
    html_all = teacher_client.get(url + "?show=all").get_data(as_text=True)
    order_all = [int(x) for x in re.findall(r'<tr id="attempt-(\d+)"', html_all)]
    assert order_all.index(unsure) < order_all.index(sure)
    assert f'data-attempt="{sure}" data-graded-by="model" data-sure="sure"' in html_all and "The model is sure" in html_all
    token = csrf_of(html)
    with services.db.read() as conn:
        before = (conn.execute("SELECT successes FROM mastery WHERE student_id = ? AND skill_id = 'equivalent'",
                               (dan,)).fetchone() or [0])[0]
    # The form names the row after it: the page comes back there (#attempt-N, focused by app.js).
    assert re.search(rf'action="{url}/{waiting}".*?name="next" value="{unsure}"', html, re.DOTALL)
    r = teacher_client.post(f"{url}/{waiting}", data={"csrf_token": token, "verdict": "correct", "next": str(unsure)})
    assert r.status_code == 302 and r.location.endswith(f"{url}?graded={waiting}#attempt-{unsure}")
    after = teacher_client.get(r.location).get_data(as_text=True)
    assert "Saved: the answer is marked right." in after
    # The answer just graded stays on the page, on top, with its new grade: a mis-click can be put right.
    assert [int(x) for x in re.findall(r'<tr id="attempt-(\d+)"', after)][:3] == [waiting, toss, unsure]
    assert f'data-attempt="{waiting}" data-graded-by="teacher"' in after and "Just graded" in after
    assert waiting not in [int(x) for x in re.findall(r'<tr id="attempt-(\d+)"', teacher_client.get(url).get_data(as_text=True))]
    with services.db.read() as conn:
        row = conn.execute("SELECT correct, graded_by FROM attempts WHERE id = ?", (waiting,)).fetchone()
        m = conn.execute("SELECT successes, p_mastery FROM mastery WHERE student_id = ? AND skill_id = 'equivalent'",
                         (dan,)).fetchone()
        events = [json.loads(p[0]) for p in conn.execute("SELECT payload FROM outbox WHERE type = 'grade_override'")]
    assert tuple(row) == (1, "teacher") and m["successes"] == before + 1 and 0 < m["p_mastery"] < 1
    assert len(events) == 1 and events[0]["previous"]["graded_by"] == "pending"
    r = teacher_client.post(f"{url}/{unsure}", data={"csrf_token": token, "verdict": "incorrect", "next": "x"})
    assert r.location.endswith(f"{url}?graded={unsure}#main")                # no row named: the page's main
    assert teacher_client.post(f"{url}/{waiting}", data={"csrf_token": token, "verdict": "maybe"}).status_code == 400
    # In Spanish the answers are quoted «…», as the rest of the Spanish pages do.
    teacher_client.post("/language", data={"csrf_token": token, "lang": "es", "next": url})
    es = teacher_client.get(url + "?show=all").get_data(as_text=True)
    assert "«<bdi lang=\"en\">cats</bdi>»" in es and "“<bdi>" not in es and "El modelo está seguro" in es
    # Another teacher cannot see or change this class's grades.
    make_staff(services.db, "teacher", "olga")
    other = teacher_client.application.test_client()
    sign_in_staff(other, "olga")
    assert other.get(url).status_code == 404
    olga_token = csrf_of(other.get("/teach/").get_data(as_text=True))
    assert other.post(f"{url}/{unsure}", data={"csrf_token": olga_token, "verdict": "incorrect"}).status_code == 404


def test_admin_status_lists_each_model(admin_client, student_client, course):
    _answer(student_client, "e1", {"choice": 1})   # some learner traffic for the latency columns
    # What a gunicorn worker's engine records when it takes its share of the cores (test_engine.py).
    engine = admin_client.application.extensions["ce"].get("inference")
    backend = engine.loaded("learner").backend
    backend.request = dataclasses.replace(backend.request, intra_op_threads=1)
    html = admin_client.get("/admin/").get_data(as_text=True)
    table = re.search(r'<table class="models stack">.*?</table>', html, re.DOTALL).group(0)
    rows = {r[0]: r for r in re.findall(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', table, re.DOTALL)}
    assert {"learner", "minilm"} <= set(rows)
    learner = rows["learner"][1]
    assert '<td data-label="Version">1</td>' in learner and "onnxruntime" in learner and "CPUExecutionProvider" in learner
    assert re.search(r"\d+\.\d ms", learner)    # p50/p99
    # The learner runs on each request's thread (model.json dynamic_batching: false); MiniLM batches.
    assert "No batching" in learner and "split every 256 rows" in learner
    assert "No batching" not in rows["minilm"][1] and "/ 16</td>" in rows["minilm"][1]
    assert "1 CPU thread per run" in learner and "CPU thread" not in rows["minilm"][1]


def test_admin_model_figures_add_up_the_web_workers(admin_client, student_client, course, tmp_path):
    import os

    from appliance.inference.metrics import SharedStats

    _answer(student_client, "e1", {"choice": 1})
    engine = admin_client.application.extensions["ce"].get("inference")
    served = engine.loaded("learner").version
    own = engine.metrics.summary("learner", served)["requests"]
    assert own >= 1
    engine.metrics._shared = SharedStats(tmp_path / "admin-stats")  # as under gunicorn (appliance/web/server.py)
    other = SharedStats(tmp_path / "admin-stats")                    # another worker of this service
    other.write({f"learner/{served}": {"requests": 46, "errors": 5, "latency_s": [0.002] * 41, "batches": {}},
                 "learner/0": {"requests": 1000, "errors": 0, "latency_s": [1.0], "batches": {}}})  # not served now
    assert other.name != engine.metrics._shared.name and other.name.startswith(f"{os.getpid()}-")
    html = admin_client.get("/admin/").get_data(as_text=True)
    table = re.search(r'<table class="models stack">.*?</table>', html, re.DOTALL).group(0)
    rows = {r[0]: r for r in re.findall(r'<tr><th scope="row">([^<]+)</th>(.*?)</tr>', table, re.DOTALL)}
    assert f'<td data-label="Requests">{own + 46}<br>' in rows["learner"][1] and "across 2 web workers" in rows["learner"][1]
    # Refused (400) and failed requests are counted in the total, and said apart.
    assert "5 of them refused or failed" in rows["learner"][1] and "refused" not in rows["minilm"][1]


def test_admin_serves_another_model_version_and_rolls_back_from_the_page(models, tmp_path, monkeypatch):
    """The versions on disk and the buttons of ``models activate`` / ``models rollback``, on a copy of
    the models with a second learner version (the same bytes)."""
    import shutil

    from lms_fixtures import sign_in_staff

    repo = tmp_path / "models"
    shutil.copytree(models, repo)
    shutil.copytree(repo / "learner" / "1", repo / "learner" / "2")
    services = learning_services(tmp_path / "data", repo)
    try:
        make_staff(services.db, "admin", "ada")
        client = create_app(services).test_client()
        assert sign_in_staff(client, "ada").status_code == 302
        html = client.get("/admin/").get_data(as_text=True)
        assert '<td data-label="Version">2</td>' in html and '<option>1</option>' in html
        assert 'action="/admin/models/minilm/activate"' not in html  # one version: nothing to choose
        assert "Roll back to version 1" in html and 'data-confirm="Serve the chosen version of learner' in html
        assert 'action="/admin/models/minilm/rollback"' not in html  # nothing to go back to: no button that always refuses
        token = csrf_of(html)
        done = client.post("/admin/models/learner/activate", data={"csrf_token": token, "version": "1"})
        assert done.status_code == 302 and done.location.endswith("/admin/")
        page = client.get(done.location).get_data(as_text=True)
        assert "learner: version 1 is served now." in page and '<td data-label="Version">1</td>' in page
        assert "Roll back to version 2" in page
        assert services.get("inference").loaded("learner").mv.version == "1"
        back = client.get(client.post("/admin/models/learner/rollback", data={"csrf_token": token}).location)
        assert "learner: version 2 is served now." in back.get_data(as_text=True)
        bad = client.get(client.post("/admin/models/learner/activate", data={"csrf_token": token, "version": "9"}).location)
        assert 'class="notice bad flash" role="alert">learner was not changed:' in bad.get_data(as_text=True)
        assert services.get("inference").loaded("learner").mv.version == "2"
        # A damaged version is refused, and the version served keeps the model "working" (the refusal
        # was kept as the model's error, "partly working", until the next successful switch).
        shutil.copytree(repo / "learner" / "1", repo / "learner" / "3")
        onnx_file = next((repo / "learner" / "3").glob("*.onnx"))
        onnx_file.write_bytes(onnx_file.read_bytes()[:-10] + b"0123456789")
        damaged = client.get(client.post("/admin/models/learner/activate", data={"csrf_token": token, "version": "3"}).location)
        assert "learner was not changed:" in damaged.get_data(as_text=True)
        learner = next(m for m in services.get("inference").models_status() if m["name"] == "learner")
        assert learner["version"] == "2" and learner["error"] is None
    finally:
        services.close()


def _admin_client(services):
    from lms_fixtures import sign_in_staff

    make_staff(services.db, "admin", "ada")
    client = create_app(services).test_client()
    sign_in_staff(client, "ada")
    return client


def _model_row(client, name: str = "learner") -> str:
    """The admin page's table row of one model."""
    html = client.get("/admin/").get_data(as_text=True)
    row = html[html.index(f'<th scope="row">{name}</th>'):]
    return row[:row.index("</tr>")]


def test_a_damaged_model_is_not_offered_again_and_the_page_says_how_to_rebuild_it(models, tmp_path):
    import shutil


    repo = tmp_path / "models"
    shutil.copytree(models, repo)
    shutil.copytree(repo / "learner" / "1", repo / "learner" / "2")
    for version in ("1", "2"):  # both damaged: the served one and the one it could go back to
        onnx_file = repo / "learner" / version / "model.onnx"
        onnx_file.write_bytes(onnx_file.read_bytes()[:-10] + b"0123456789")
    services = learning_services(tmp_path / "data", repo)
    try:
        client = _admin_client(services)
        row = _model_row(client)
        assert "Not loaded" in row and "<option>2</option>" not in row and "<option>1</option>" not in row
        assert "Version 2 could not be loaded. To build the default model again: classroom-edge models build learner" in row
        assert "Version 1 is damaged (its files do not match their checksums) and is not offered." in row
        # Repaired (a third version, good, serving): neither damaged version is offered, nor a rollback to one.
        shutil.copytree(models / "learner" / "1", repo / "learner" / "3")
        services.get("inference")._sync_model("learner")
        row = _model_row(client)
        assert '<td data-label="Version">3</td>' in row and "<option>" not in row and "Roll back to version" not in row
        assert "Versions 1, 2 are damaged" in row
    finally:
        services.close()


def test_grid_says_where_mastery_comes_from(teacher_client, klass, course):
    html = teacher_client.get(f"/teach/classes/{klass['id']}/progress").get_data(as_text=True)
    assert "Mastery is the learner model's estimate (learner v1) from each student's answers, as of now" in unescape(html)
    assert f'href="/teach/classes/{klass["id"]}/grades"' in teacher_client.get(f"/teach/classes/{klass['id']}").get_data(as_text=True)


def test_modelled_mastery_fades_on_every_page_while_a_skill_goes_unpractised(teacher_client, student_client,
                                                                            klass, course, services, monkeypatch):
    """The stored value is the estimate right after the answer; the grid, the student's history, the
    student's own page and the API ask the model again, and two months later it expects less."""
    import time as real_time

    for _ in range(3):
        _answer(student_client, "e1", {"choice": 1})
    with services.db.read() as conn:
        sid, skill, stored = conn.execute("SELECT student_id, skill_id, p_mastery FROM mastery").fetchone()

    def grid_percent() -> int:
        html = teacher_client.get(f"/teach/classes/{klass['id']}/progress").get_data(as_text=True)
        return int(re.search(rf'data-skill="{skill}"[^>]*>\s*<span>(\d+)%</span>', html).group(1))

    def api_value() -> float:
        r = student_client.get("/api/v1/me/progress")
        assert r.status_code == 200, r.get_data(as_text=True)[:500]
        rows = r.get_json()["mastery"]
        return next(r["p_mastery"] for r in rows if r["skill_id"] == skill)

    assert api_value() == pytest.approx(stored, abs=0.002) and abs(grid_percent() - stored * 100) <= 1
    later = real_time.time() + 60 * 86400
    monkeypatch.setattr(services.get("learner"), "clock", lambda: later)
    faded = api_value()
    assert faded < stored - 0.01, (faded, stored)
    assert grid_percent() == int(faded * 100 + 1e-9)  # shown rounded down: 84.9% is not yet the 85% of mastered
    history = teacher_client.get(f"/teach/classes/{klass['id']}/students/{sid}").get_data(as_text=True)
    assert f"{int(faded * 100 + 1e-9)}%" in history and f"{int(stored * 100 + 1e-9)}%" not in history
    own = student_client.get("/me/progress").get_data(as_text=True)
    assert f"{int(faded * 100 + 1e-9)}%" in own
    with services.db.read() as conn:  # the stored value itself is left as the answer wrote it
        assert conn.execute("SELECT p_mastery FROM mastery").fetchone()[0] == stored


def test_pages_without_models_still_work_and_say_why(tmp_path):
    services = learning_services(tmp_path / "plain", None)
    try:
        seed_course(services.db)
        teacher = make_staff(services.db, "teacher", "tom")
        class_id, kids = make_class(services.db, teacher["id"], ["Ana"])
        app = create_app(services)
        c = app.test_client()
        assert sign_in_student(c, class_id, kids["Ana"]["id"], kids["Ana"]["pin"]).status_code == 302
        assert "A good place to start" in _next_up(c.get("/learn").get_data(as_text=True))
        reply = _answer(c, "e6", {"text": "Both are half."})
        assert reply.status_code == 201 and reply.get_json()["graded_by"] == "pending"
        html = c.get("/search?q=Bottom+numbers").get_data(as_text=True)
        assert "Searching by words only" in html and f"/learn/{COURSE_ID}/what-is-a-fraction#ex-e4" in html
        t = app.test_client()
        sign_in_staff(t, "tom")
        grid = t.get(f"/teach/classes/{class_id}/progress").get_data(as_text=True)
        # The teacher is told where the reason is; the technical reason (English) is for the admin.
        assert "Mastery is a simple estimate" in grid and "The administrator sees why" in grid
        assert "not loaded" not in grid
        make_staff(services.db, "admin", "ada")
        a = app.test_client()
        sign_in_staff(a, "ada")
        assert "not loaded" in a.get(f"/teach/classes/{class_id}/progress").get_data(as_text=True)
        review = t.get(f"/teach/classes/{class_id}/grades").get_data(as_text=True)
        assert "Waiting for you" in review
        # No model runs: the page does not talk about one ("Class model" is the menu's other page).
        main = review[review.index('<main'):review.index('</main>')]
        assert "model" not in main.lower() and "grading by meaning is switched off" in main
        attempt = re.search(r'<tr id="attempt-(\d+)"', review).group(1)
        t.post(f"/teach/classes/{class_id}/grades/{attempt}", data={"csrf_token": csrf_of(review), "verdict": "correct"})
        done = t.get(f"/teach/classes/{class_id}/grades").get_data(as_text=True)
        assert "Nothing to check: every written answer has a grade." in done and "the model is sure" not in done
    finally:
        services.close()


def test_next_up_names_its_button_after_what_it_asks(app, services, student_client, course, monkeypatch):
    """"Read the lesson again" gets a "Read it again" button, not "Open the lesson"; the course's own
    title and description carry the course's language."""
    learner = services.get("learner")
    rec = {"kind": "relearn", "url": f"/learn/{COURSE_ID}/what-is-a-fraction", "title": "What is a fraction?",
           "why": "The questions look hard for you right now.", "course_title": "Fractions (mini)",
           "course_language": "en"}
    monkeypatch.setattr(learner, "home", lambda student, language: rec)
    html = student_client.get("/learn").get_data(as_text=True)
    assert 'Read it again: <span lang="en">What is a fraction?</span>' in html and "Open the lesson" not in _next_up(html)
    # The dot never starts a line ("Lo siguiente / · Fracciones" at 360 px); the course name may.
    assert "Next up&nbsp;<span class=\"muted\" lang=\"en\">· Fractions (mini)" in html
    assert '<h3 style="margin-block-start: 0" lang="en">Fractions (mini)</h3>' in html


def test_a_question_hard_for_the_model_never_says_the_model_is_sure(services, teacher_client, student_client, klass,
                                                                     course):
    """'The model is sure' above 'This question is hard for the model to grade' read as a contradiction:
    on a question its calibration separates badly, a confident grade reads 'fairly sure'."""
    assert _answer(student_client, "e6", {"text": "Both are one half of the whole."}).get_json()["graded_by"] == "model"
    ana = klass["students"]["Ana"]["id"]
    sure = _free_text(services, ana, "cats", "model", 0.99, 0)
    url = f"/teach/classes/{klass['id']}/grades?show=all"

    def row_of(html: str) -> str:
        return re.search(rf'<tr id="attempt-{sure}".*?</tr>', html, re.DOTALL).group(0)

    easy = row_of(teacher_client.get(url).get_data(as_text=True))
    assert 'data-sure="sure"' in easy and "hard for the model" not in easy
    services.db.write(lambda c: c.execute(
        "UPDATE semantic_calibration SET detail = json_set(detail, '$.balanced_accuracy', 0.6) WHERE exercise_id = 'e6'"))
    hard = row_of(teacher_client.get(url).get_data(as_text=True))
    assert 'data-sure="fairly"' in hard and "The model is fairly sure" in hard
    assert "This question is hard for the model to grade." in hard and "The model is sure" not in hard


def test_the_student_sees_the_teachers_grade_on_the_question(services, teacher_client, student_client, klass, course):
    """A teacher's grade of a free-text answer shows on that question of the lesson page, until the
    student answers it again."""
    reply = _answer(student_client, "e6", {"text": "cats"}).get_json()
    with services.db.read() as conn:
        attempt_id = conn.execute("SELECT id FROM attempts WHERE attempt_uid = ?", (reply["attempt_uid"],)).fetchone()[0]
    lesson_url = f"/learn/{COURSE_ID}/equal-fractions"

    def card_of_e6() -> str:
        html = student_client.get(lesson_url).get_data(as_text=True)
        return re.search(r'<form class="card exercise" data-exercise="e6".*?</form>', html, re.DOTALL).group(0)

    assert "Your teacher" not in card_of_e6()  # graded by the model only
    url = f"/teach/classes/{klass['id']}/grades"
    token = csrf_of(teacher_client.get(url).get_data(as_text=True))
    for verdict, words in (("correct", "marked it right."), ("incorrect", "marked it not right yet.")):
        assert teacher_client.post(f"{url}/{attempt_id}", data={"csrf_token": token, "verdict": verdict}).status_code == 302
        card = card_of_e6()
        assert words in card and card.count("Your teacher read your answer") == 1
        assert "Your answer: “<bdi>cats</bdi>”" in card  # what was judged (the answer box is empty again)
        history = teacher_client.get(f"/teach/classes/{klass['id']}/students/{klass['students']['Ana']['id']}")
        assert "(by a teacher)" in history.get_data(as_text=True)  # whose grade it is, as on the review page
    assert "Your teacher" not in student_client.get(lesson_url).get_data(as_text=True).split('data-exercise="e5"')[1] \
        .split("</form>")[0]  # only the question the teacher graded
    _answer(student_client, "e6", {"text": "Both are one half of the whole."})
    assert "Your teacher" not in card_of_e6()  # answered again since: the mark is old news


def test_the_teacher_sees_how_the_model_read_a_misspelt_answer(services, teacher_client, student_client, klass, course):
    # A misspelt answer is graded a second time with the course's words (SemanticGrader.judge): the
    # review page says how the model read it, so a right grade of "boht are won haf" is no mystery.
    reply = _answer(student_client, "e6", {"text": "Bothe are one halff of the wholle."}).get_json()
    assert reply["graded_by"] == "model"
    spelt = _answer(student_client, "e6", {"text": "Both are one half of the whole."}).get_json()
    assert spelt["graded_by"] == "model"
    html = teacher_client.get(f"/teach/classes/{klass['id']}/grades?show=all").get_data(as_text=True)
    # The words it put right are marked.
    assert ("The model read it with the course’s spelling: “<bdi><mark>Both</mark> are one <mark>half</mark> of the"
            " <mark>whole</mark>.</bdi>”") in html
    assert html.count('class="muted small-text read-as"') == 1  # not under the answer spelt right


def test_the_learning_pages_work_after_a_course_with_progress_is_removed(services, klass, course, student_client,
                                                                        teacher_client):
    from appliance.content.remover import remove_course

    assert _answer(student_client, "e1", {"choice": 1}).status_code == 201
    assert _answer(student_client, "e6", {"text": "Both are one half of the whole."}).status_code == 201
    with services.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM learner_state").fetchone()[0] == 1
    remove_course(services.db, COURSE_ID)
    ana = klass["students"]["Ana"]["id"]
    for client, path in ((student_client, "/learn"), (student_client, "/me/progress"), (student_client, "/api/v1/me/progress"),
                         (student_client, "/search?q=half"), (teacher_client, f"/teach/classes/{klass['id']}/progress"),
                         (teacher_client, f"/teach/classes/{klass['id']}/students/{ana}"),
                         (teacher_client, f"/teach/classes/{klass['id']}/grades?show=all")):
        assert client.get(path).status_code == 200, path


def test_an_unsure_grade_stays_hidden_when_the_lesson_is_opened_again(services, student_client, klass, course):
    """The reply said only "your teacher will read it"; the page opened later must not tell the verdict
    either (a filled dot for an unsure "right", an open one for an unsure "wrong")."""
    ana = klass["students"]["Ana"]["id"]
    below = services.cfg.learning.review_below_confidence
    lesson_url = f"/learn/{COURSE_ID}/equal-fractions"
    seen = {}
    for correct in (1, 0):
        _free_text(services, ana, f"half and half {correct}", "model", below / 4, correct)
        html = student_client.get(lesson_url).get_data(as_text=True)
        card = re.search(r'<form class="card exercise" data-exercise="e6".*?</form>', html, re.DOTALL).group(0)
        assert "Thanks! Your teacher will read this answer." in card and f"half and half {correct}" in card
        assert "marked it" not in card
        seen[correct] = html[html.index('<ol class="dots"'):html.index("</ol>")]
    assert seen[0] == seen[1]  # the dots are the same whatever the model thought
    # A sure model grade is the verdict, as the reply said.
    _free_text(services, ana, "cats", "model", 0.99, 0)
    card = re.search(r'<form class="card exercise" data-exercise="e6".*?</form>',
                     student_client.get(lesson_url).get_data(as_text=True), re.DOTALL).group(0)
    assert "Your teacher will read" not in card


def test_a_signed_only_box_passes_over_an_unsigned_copy_and_says_so(models, tmp_path):
    """An unsigned folder copied in as the highest version: the box serves the version it built (signed
    with its own key), does not offer the copy, and the admin reads why."""
    import json
    import shutil

    from appliance.ed25519 import generate_keypair

    repo = tmp_path / "models"
    shutil.copytree(models, repo)
    copy = repo / "learner" / "99"
    shutil.copytree(repo / "learner" / "1", copy)
    meta = json.loads((copy / "model.json").read_text())
    del meta["signature"]
    (copy / "model.json").write_text(json.dumps(meta))
    services = learning_services(tmp_path / "data", repo, inference__trusted_keys=generate_keypair()[1])
    try:
        row = _model_row(_admin_client(services))
        assert '<td data-label="Version">1</td>' in row and "<option>99</option>" not in row
        assert "Version 99 is not signed by a key this box trusts (inference.trusted_keys) and is not offered." in row
    finally:
        services.close()


def test_accessible_names_carry_typed_text_escaped_once(services, teacher_client, klass, course):
    """A name or answer with <, & or ' reads as typed in a button's accessible name, not as an entity."""
    from html.parser import HTMLParser

    ana = klass["students"]["Ana"]["id"]
    services.db.write(lambda c: c.execute("UPDATE users SET display_name = ? WHERE id = ?", ("Ana O'Brien", ana)))
    _free_text(services, ana, "1/2 < 3/4 & so 'both' are less", "model", 0.3, 1)

    class Labels(HTMLParser):
        def __init__(self):
            super().__init__()
            self.found: list[str] = []

        def handle_starttag(self, tag, attrs):
            self.found += [v for k, v in attrs if k == "aria-label" and v.startswith("Right: ")]

    parser = Labels()
    parser.feed(teacher_client.get(f"/teach/classes/{klass['id']}/grades").get_data(as_text=True))
    assert parser.found == ["Right: \u2068Ana O'Brien, question: Explain why 1/2 and 2/4 are the same amount., "
                            "answer: 1/2 < 3/4 & so 'both' are less\u2069"]


def test_a_grade_given_on_a_page_opened_before_another_teachers_grade_is_not_saved(services, app, teacher_client,
                                                                                 klass, course):
    """Two members of staff grade the same answer from pages opened at the same time: the second grade
    answers a grade that is no longer there, so it is not saved and the teacher is told why."""
    ana = klass["students"]["Ana"]["id"]
    unsure = _free_text(services, ana, "They are kind of the same maybe", "model", 0.3, 1)
    url = f"/teach/classes/{klass['id']}/grades"
    page = teacher_client.get(url).get_data(as_text=True)
    assert re.search(rf'action="{url}/{unsure}".*?name="seen_by" value="model".*?name="seen_correct" value="1"',
                     page, re.DOTALL)
    make_staff(services.db, "admin", "alice")
    admin = app.test_client()
    sign_in_staff(admin, "alice")
    admin_page = admin.get(url).get_data(as_text=True)
    seen = {"seen_by": "model", "seen_correct": "1"}
    assert admin.post(f"{url}/{unsure}", data={"csrf_token": csrf_of(admin_page), "verdict": "correct", **seen}).status_code == 302
    r = teacher_client.post(f"{url}/{unsure}", data={"csrf_token": csrf_of(page), "verdict": "incorrect", **seen})
    assert r.status_code == 302 and r.location.endswith(f"#attempt-{unsure}")
    told = unescape(teacher_client.get(r.location).get_data(as_text=True))
    assert "Someone else graded this answer while your page was open: it is now marked right." in told
    with services.db.read() as conn:
        assert tuple(conn.execute("SELECT correct, graded_by FROM attempts WHERE id = ?", (unsure,)).fetchone()) == (1, "teacher")
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE type = 'grade_override'").fetchone()[0] == 1
    # From the page that shows the admin's grade, the teacher's grade is saved.
    fresh = teacher_client.get(url + "?show=all").get_data(as_text=True)
    r = teacher_client.post(f"{url}/{unsure}", data={"csrf_token": csrf_of(fresh), "verdict": "incorrect",
                                                     "seen_by": "teacher", "seen_correct": "1"})
    with services.db.read() as conn:
        assert tuple(conn.execute("SELECT correct, graded_by FROM attempts WHERE id = ?", (unsure,)).fetchone()) == (0, "teacher")


def test_only_written_answers_can_be_graded_by_a_teacher(services, teacher_client, student_client, klass, course):
    reply = _answer(student_client, "e1", {"choice": 0}).get_json()
    assert reply["correct"] is False
    with services.db.read() as conn:
        attempt = conn.execute("SELECT id FROM attempts WHERE exercise_id = 'e1'").fetchone()[0]
    url = f"/teach/classes/{klass['id']}/grades"
    token = csrf_of(teacher_client.get(url).get_data(as_text=True))
    assert teacher_client.post(f"{url}/{attempt}", data={"csrf_token": token, "verdict": "correct"}).status_code == 404
    with services.db.read() as conn:
        assert tuple(conn.execute("SELECT correct, graded_by FROM attempts WHERE id = ?", (attempt,)).fetchone())[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE type = 'grade_override'").fetchone()[0] == 0


def test_a_long_list_of_answers_to_check_comes_in_pages_oldest_waiting_first(services, teacher_client, klass, course,
                                                                             monkeypatch):
    from appliance.web import learning_views

    monkeypatch.setattr(learning_views, "REVIEW_LIMIT", 3)
    students = classmates(services.db, klass["id"], *(f"Pupil {i}" for i in range(5)))
    waiting = [_free_text(services, s, f"answer {i}", "pending", 0.0, 0) for i, s in enumerate(students)]
    url = f"/teach/classes/{klass['id']}/grades"

    def rows(html):
        return [int(x) for x in re.findall(r'<tr id="attempt-(\d+)"', html)]

    first = teacher_client.get(url).get_data(as_text=True)
    assert rows(first) == waiting[:3]                       # the longest waiting first
    assert "Answers 1 to 3 of 5" in first and f'href="{url}?page=1"' in first
    second = teacher_client.get(url + "?page=1").get_data(as_text=True)
    assert rows(second) == waiting[3:] and "Answers 4 to 5 of 5" in second and "Next page" not in second
    # A grade given on the second page comes back to the second page, the answer still on it, on top.
    r = teacher_client.post(f"{url}/{waiting[3]}", data={"csrf_token": csrf_of(second), "verdict": "correct", "page": "1"})
    assert "page=1" in r.location and f"graded={waiting[3]}" in r.location
    back = teacher_client.get(r.location).get_data(as_text=True)
    assert rows(back) == [waiting[3], waiting[4]] and "Just graded" in back and "Answers 4 to 4 of 4" in back
    assert rows(teacher_client.get(url).get_data(as_text=True)) == waiting[:3]   # page 1 as it was
    # Once the answers on a page are all graded, its link leads to the last page there is.
    teacher_client.post(f"{url}/{waiting[4]}", data={"csrf_token": csrf_of(back), "verdict": "correct", "page": "1"})
    r = teacher_client.get(url + "?page=1")
    assert r.status_code == 302 and "page=" not in r.location
    assert rows(teacher_client.get(r.location).get_data(as_text=True)) == waiting[:3]
    for odd in ("junk", "²", str(10**30)):
        assert teacher_client.get(url + f"?page={odd}").status_code in (200, 302), odd


def test_ids_too_big_for_the_database_are_no_such_page(services, teacher_client, klass, course):
    huge = 10**20
    for path in (f"/teach/classes/{huge}/grades", f"/teach/classes/{huge}/progress",
                 f"/teach/classes/{klass['id']}/students/{huge}"):
        assert teacher_client.get(path).status_code == 404, path
    token = csrf_of(teacher_client.get(f"/teach/classes/{klass['id']}/grades").get_data(as_text=True))
    assert teacher_client.post(f"/teach/classes/{klass['id']}/grades/{huge}",
                               data={"csrf_token": token, "verdict": "correct"}).status_code == 404


def test_search_is_the_students_its_hits_open_lesson_pages_only_students_can(teacher_client, admin_client, course):
    for client in (teacher_client, admin_client):
        assert client.get("/search?q=half").status_code == 403
        assert client.get("/api/v1/search?q=half").status_code == 403
        assert client.get(f"/learn/{COURSE_ID}").status_code == 403  # where a hit would have led
