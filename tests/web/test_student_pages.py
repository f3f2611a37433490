"""The student's pages: course list, lesson with the exercise runner, own progress."""
from __future__ import annotations

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
    media = '[{"kind": "video", "asset": "clip.mp4", "title": "Cutting a pizza"}, {"kind": "pdf", "asset": "sheet.pdf", "title": "Worksheet"}]'
    services.db.write(lambda c: c.execute("UPDATE lessons SET media = ? WHERE id = 'equal-fractions'", (media,)))
    page = student_client.get("/learn/fractions-mini/equal-fractions").get_data(as_text=True)
    assert '<video controls preload="metadata" src="/content/fractions-mini/assets/clip.mp4">' in page
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
    assert "1 of 2 lessons done" in page and "4 right answers out of 4" in page
    assert "Parts of a whole" in page and "83%" in page  # rule estimate (4 + 1) / (4 + 2) = 0.833
    course_page = student_client.get("/learn/fractions-mini").get_data(as_text=True)
    assert "Done" in course_page
    api = student_client.get("/api/v1/me/progress").get_json()
    assert {m["skill_id"] for m in api["mastery"]} == {"parts"}
    assert api["lessons"][0]["status"] == "completed"
