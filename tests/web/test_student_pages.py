"""The student's pages: course list, lesson with the exercise runner, own progress."""
from __future__ import annotations

import re
import uuid

from lms_fixtures import RIGHT, csrf_of

from appliance.people import classes


def test_course_list_shows_courses_and_assigned_lessons(services, course, klass, student_client):
    page = student_client.get("/learn").get_data(as_text=True)
    assert "Fractions (mini)" in page and "0 of 2 lessons done" in page
    assert "Your teacher picked these" not in page
    services.db.write(lambda c: classes.set_assignments(c, klass["id"], course, ["equal-fractions"]))
    page = student_client.get("/learn").get_data(as_text=True)
    assert "Your teacher picked these" in page and "Equal fractions" in page


def test_a_course_with_answers_says_keep_going_before_any_lesson_is_done(course, student_client):
    def button() -> str:
        page = student_client.get("/learn").get_data(as_text=True)
        link = page.split('class="btn" href="/learn/fractions-mini"', 1)[1].split("</a>", 1)[0]
        label, text = re.fullmatch(r' aria-label="([^"]*)">(.*)', link).groups()
        assert label == f"{text}: \u2068Fractions (mini)\u2069"  # a screen reader hears which course
        return text

    assert button() == "Start"
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))
    student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
        "attempt_uid": str(uuid.uuid4()), "course_id": "fractions-mini", "exercise_id": "e1", "answer": RIGHT["e1"]})
    page = student_client.get("/learn").get_data(as_text=True)
    assert "0 of 2 lessons done" in page and button() == "Keep going"


def test_lesson_page_shows_body_and_exercises_but_never_the_answers(course, student_client):
    resp = student_client.get("/learn/fractions-mini/what-is-a-fraction")
    page = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "<strong>equal parts</strong>" in page  # importer's safe HTML is rendered as HTML
    assert page.count('class="card exercise"') == 4
    assert "Which fraction is one half?" in page and 'type="radio"' in page and 'type="checkbox"' in page
    assert "Half means 2 equal parts." in page  # hints are on the page (shown on request)
    # Neither the explanation nor the answer key leave the server before an answer.
    assert "One half is 1 of 2 equal parts" not in page and "denominator" not in page.lower().replace(
        "what is the bottom number of a fraction called", "")
    assert 'data-api="/api/v1/attempts"' in page and "runner.js" in page


def test_lesson_page_shows_media_blocks_the_body_does_not_show(services, course, student_client):
    media = ('[{"kind": "video", "asset": "clip.mp4", "title": "Cutting a pizza"}, {"kind": "pdf", "asset": "sheet.pdf",'
             ' "title": "Worksheet"}, {"kind": "audio", "asset": "say.wav"}]')
    services.db.write(lambda c: c.execute("UPDATE lessons SET media = ? WHERE id = 'equal-fractions'", (media,)))
    page = student_client.get("/learn/fractions-mini/equal-fractions").get_data(as_text=True)
    # Players carry a name (the title, else what they are): a screen reader said just "audio".
    assert '<video controls preload="metadata" src="/content/fractions-mini/assets/clip.mp4" aria-label="Cutting a pizza">' in page
    assert 'src="/content/fractions-mini/assets/say.wav" aria-label="Audio">' in page
    assert 'src="/content/fractions-mini/assets/sheet.pdf"' in page and "Open the PDF: Worksheet" in page


def test_unknown_course_or_lesson_is_a_friendly_404(course, student_client):
    resp = student_client.get("/learn/fractions-mini/nope")
    assert resp.status_code == 404 and "We could not find that page" in resp.get_data(as_text=True)
    assert student_client.get("/learn/nope").status_code == 404


def test_progress_page_reflects_answers(course, student_client):
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))
    for ex in ("e1", "e2", "e3", "e4"):
        student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
            "attempt_uid": str(uuid.uuid4()), "course_id": "fractions-mini", "exercise_id": ex, "answer": RIGHT[ex]})
    page = student_client.get("/me/progress").get_data(as_text=True)
    assert "1 of 2 lessons done" in page and "4 of 4 questions right" in page
    assert "to try again" not in page
    assert "Parts of a whole" in page and "83%" in page  # rule estimate (4 + 1) / (4 + 2) = 0.833
    course_page = student_client.get("/learn/fractions-mini").get_data(as_text=True)
    assert "Done" in course_page
    api = student_client.get("/api/v1/me/progress").get_json()
    assert {m["skill_id"] for m in api["mastery"]} == {"parts"}
    assert api["lessons"][0]["status"] == "completed"


def _send(client, token, exercise_id, answer):
    return client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
        "attempt_uid": str(uuid.uuid4()), "course_id": "fractions-mini", "exercise_id": exercise_id, "answer": answer})


def test_progress_counts_questions_not_attempts_and_the_latest_answer_decides(course, student_client):
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))
    for wrong in ({"choice": 0}, {"choice": 2}, {"choice": 0}):      # one question, wrong three times
        assert _send(student_client, token, "e1", wrong).status_code == 201
    page = student_client.get("/me/progress").get_data(as_text=True)
    assert "0 of 1 question right" in page                          # singular: one question answered
    assert "0 questions right, 1 to try again" in page              # one question, not three attempts
    _send(student_client, token, "e2", RIGHT["e2"])
    page = student_client.get("/me/progress").get_data(as_text=True)
    assert "1 of 2 questions right" in page and "1 question right, 1 to try again" in page
    lesson = student_client.get("/learn/fractions-mini/what-is-a-fraction").get_data(as_text=True)
    assert lesson.count('<li class="done">') == 1                   # e2 only: e1's latest answer is wrong
    _send(student_client, token, "e1", RIGHT["e1"])
    _send(student_client, token, "e1", {"choice": 2})                # right, then wrong again: not done
    lesson = student_client.get("/learn/fractions-mini/what-is-a-fraction").get_data(as_text=True)
    assert lesson.count('<li class="done">') == 1
    assert "1 of 2 questions right" in student_client.get("/me/progress").get_data(as_text=True)


def test_lesson_page_carries_the_runner_messages_and_a_way_on_from_the_last_question(course, student_client):
    page = student_client.get("/learn/fractions-mini/what-is-a-fraction").get_data(as_text=True)
    assert 'data-msg-write="Please write your answer first."' in page
    assert 'data-msg-pending="Thanks! Your teacher will read this answer."' in page
    assert 'data-msg-repeat="You already sent this answer."' in page
    # The last question is never a dead end: on to the next lesson, or to "Next up" after the last lesson.
    assert 'class="btn secondary lesson-end" href="/learn/fractions-mini/equal-fractions">Next lesson: Equal fractions' in page
    last = student_client.get("/learn/fractions-mini/equal-fractions").get_data(as_text=True)
    assert 'class="btn secondary lesson-end" href="/learn#next-up-h">Next up</a>' in last
    assert 'href="/learn/fractions-mini">Back to the course</a>' in last


def test_spanish_pages_quote_and_write_decimals_as_the_course_does(services, course, klass, student_client):
    services.db.write(lambda c: c.execute("UPDATE classes SET language = 'es' WHERE id = ?", (klass["id"],)))
    page = student_client.get("/learn/fractions-mini/what-is-a-fraction").get_data(as_text=True)
    assert "Escribe un número, como 0,75, 3/4 o 1 1/2." in page      # a decimal comma, as the Spanish course writes them
    assert 'data-msg-write="Primero escribe tu respuesta, por favor."' in page


def test_a_course_in_another_language_is_folded_away_until_the_student_works_in_it(services, course, klass,
                                                                                   student_client):
    from lms_fixtures import seed_course

    seed_course(services.db, "fracciones", "Fracciones (mini)")
    services.db.write(lambda c: c.execute("UPDATE courses SET language = 'es' WHERE id = 'fracciones'"))
    services.db.write(lambda c: c.execute("UPDATE classes SET language = 'es' WHERE id = ?", (klass["id"],)))
    home = student_client.get("/learn").get_data(as_text=True)
    cards = home[:home.index("other-courses")] if "other-courses" in home else home
    assert "Fracciones (mini)" in cards and "Fractions (mini)" not in cards
    assert "1 curso en otro idioma" in home and 'href="/learn/fractions-mini"' in home  # still one tap away
    assert "Fractions (mini)" not in student_client.get("/me/progress").get_data(as_text=True)
    # Once the student answers in it, it is one of their courses.
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))
    assert student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
        "attempt_uid": str(uuid.uuid4()), "course_id": course, "exercise_id": "e1", "answer": {"choice": 1},
        "duration_ms": 900}).status_code == 201
    home = student_client.get("/learn").get_data(as_text=True)
    assert "Fractions (mini)" in home and "otro idioma" not in home
    assert "Fractions (mini)" in student_client.get("/me/progress").get_data(as_text=True)


def test_a_question_that_asks_for_a_form_says_which_under_it(services, course, student_client):
    services.db.write(lambda c: c.execute(
        "UPDATE exercises SET spec = json_set(spec, '$.form', 'decimal') WHERE id = 'e3'"))
    page = student_client.get("/learn/fractions-mini/what-is-a-fraction").get_data(as_text=True)
    card = page[page.index('data-exercise="e3"'):]
    card = card[:card.index("</form>")]
    # Not "like 0.75, 3/4 or 1 1/2": 3/4 is a form it refuses, and 0.75 is this question's answer.
    assert "Write a decimal number, like 0.35." in card and "3/4 or 1 1/2" not in card


def test_one_answer_in_another_language_s_course_does_not_come_first_in_my_progress(services, course, klass,
                                                                                  student_client):
    """A Spanish class's pupil tried one question of the English course before any of the Spanish one:
    Next up and "my progress" switched to the English course."""
    from lms_fixtures import seed_course

    seed_course(services.db, "fracciones", "Fracciones (mini)")
    services.db.write(lambda c: c.execute("UPDATE courses SET language = 'es' WHERE id = 'fracciones'"))
    services.db.write(lambda c: c.execute("UPDATE classes SET language = 'es' WHERE id = ?", (klass["id"],)))
    token = csrf_of(student_client.get("/learn").get_data(as_text=True))
    assert student_client.post("/api/v1/attempts", headers={"X-CSRF-Token": token}, json={
        "attempt_uid": str(uuid.uuid4()), "course_id": course, "exercise_id": "e1", "answer": {"choice": 1},
        "duration_ms": 900}).status_code == 201
    # (Next up: tests/web/test_learning_views.py, test_next_up_stays_in_the_class_language...)
    progress = student_client.get("/me/progress").get_data(as_text=True)
    assert progress.index("Fracciones (mini)") < progress.index("Fractions (mini)")
