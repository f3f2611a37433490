"""The learning features in real Chromium with the real models: an answer shows the new mastery on the
exercise page, "Next up" on the home page links to one question (#ex-...), search by meaning, the
teacher's grade review; axe-core on each of these pages. Screenshots go to tests/artifacts/browser/.
"""
from __future__ import annotations

import json
import re

import pytest
from learning_models import built_models, learning_config
from lms_browser import (
    answer_exercise,
    attach_demo_content,
    axe_violations,
    chromium,
    ensure_axe,
    live_server,
    need_chromium,
    shot,
    sign_in_staff,
)
from lms_fixtures import csrf_of, make_class, make_staff

from appliance.bootstrap import attach_components

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    need_chromium()
    axe = ensure_axe()
    repo = built_models(tmp_path_factory)
    people = {}

    def prepare(services):
        attach_components(services)             # the engine and the learning hooks, as in a web worker
        assert attach_demo_content(services)
        teacher = make_staff(services.db, "teacher", "tom", "correct horse")
        class_id, students = make_class(services.db, teacher["id"], ["Ana"])
        people.update(class_id=class_id, ana=students["Ana"])

    with live_server(learning_config(tmp_path_factory.mktemp("learning-browser"), repo), prepare=prepare) as (url, services):
        yield url, services, axe, people


def _sign_in_student(ctx, url, people):
    path = f"{url}/signin/class/{people['class_id']}/student/{people['ana']['id']}"
    token = csrf_of(ctx.request.get(path).text())
    r = ctx.request.post(path, form={"csrf_token": token, "pin": people["ana"]["pin"]}, max_redirects=0)
    assert r.status == 302


def _axe(page, axe, name, found):
    shot(page, f"learning-{name}")
    found += [f"{name}: [{v['impact']}] {v['id']} - {v['help']}" for v in axe_violations(page, axe)]


def test_mastery_next_up_search_and_grade_review_in_the_browser(world):
    url, services, axe, people = world
    with services.db.read() as conn:
        exercises = [dict(r) for r in conn.execute(
            "SELECT id, kind, spec FROM exercises WHERE course_id = 'fractions' AND lesson_id = 'what-is-a-fraction'"
            " ORDER BY position")]
    found: list[str] = []
    with chromium() as browser:
        ctx = browser.new_context(bypass_csp=True, viewport={"width": 1100, "height": 900})
        _sign_in_student(ctx, url, people)
        page = ctx.new_page()
        page.goto(url + "/learn")
        card = page.locator("section.next-up")
        assert "What is a fraction?" in card.inner_text()
        _axe(page, axe, "home-next-up", found)

        # Answer the first question: the reply's mastery appears under the feedback, named and measured.
        page.goto(f"{url}/learn/fractions/what-is-a-fraction")
        first = page.locator(f"form.exercise[data-exercise='{exercises[0]['id']}']")
        # "Check" is the main button, as bold as the others (a checkbox-label rule made it thin).
        assert int(first.locator("button.check").evaluate("e => getComputedStyle(e).fontWeight")) >= 600
        back = page.locator(".breadcrumb a").first.bounding_box()
        assert back["height"] >= 40                     # the way back to the course is big enough to tap
        answer_exercise(first, exercises[0])
        first.locator("button.check").click()
        line = first.locator(".mastery-line")
        line.wait_for()
        assert re.fullmatch(r"Fraction basics: \d{1,3}% mastered", line.locator("span").first.inner_text())
        width = line.locator(".meter > span").evaluate("e => e.style.inlineSize")
        with services.db.read() as conn:
            p = conn.execute("SELECT p_mastery FROM mastery WHERE skill_id = 'fraction-basics'").fetchone()[0]
        assert width == f"{int(p * 100 + 1e-9)}%"    # the page shows what the model stored (rounded down)
        assert line.evaluate("e => getComputedStyle(e).borderTopStyle") == "solid"  # a line of its own
        _axe(page, axe, "exercise-mastery", found)
        # Check again, unchanged: not sent a second time, and the child is told so.
        first.locator("button.check").click()
        first.locator(".feedback-note.repeat").wait_for()
        # A wrong answer after the right one: the card is no longer green (the latest answer decides).
        wrong = dict(exercises[0], spec=json.loads(exercises[0]["spec"]))
        wrong["spec"]["answer"] = (wrong["spec"]["answer"] + 1) % len(wrong["spec"]["choices"])
        answer_exercise(first, wrong)
        first.locator("button.check").click()
        page.wait_for_function("e => !e.classList.contains('is-correct')", arg=first.element_handle())
        # Right again after the wrong one: the estimate rose, and the page says by how much.
        answer_exercise(first, exercises[0])
        first.locator("button.check").click()
        rise = first.locator(".mastery-up")
        rise.wait_for()
        # The arrow is for the eye only; a hidden comma makes "…% mastered, up 20" one sentence aloud.
        assert re.fullmatch(r",\s*▲ up \d{1,2}", rise.inner_text().strip())
        assert rise.locator("[aria-hidden=true]").inner_text().strip() == "▲"
        with services.db.read() as conn:
            assert conn.execute("SELECT COUNT(*) FROM attempts WHERE exercise_id = ?", (exercises[0]["id"],)).fetchone()[0] == 3

        # Next up now points at one question of the lesson; the link opens that question.
        page.goto(url + "/learn")
        href = page.locator("section.next-up a.btn").get_attribute("href")
        assert "#ex-" in href
        page.goto(url + href)
        wanted = href.split("#ex-")[1]
        assert page.locator(f"form.exercise[data-exercise='{wanted}']").is_visible()

        # Search by meaning from the home page's box.
        page.goto(url + "/learn")
        page.fill("#search-q", "turning a fraction into a decimal")
        page.locator("form[role=search] button").click()
        page.wait_for_url(re.compile(r".*/search\?q=.*"))
        assert "Decimals and fractions" in page.locator(".search-results").inner_text()
        _axe(page, axe, "search", found)

        # A free-text answer, then the teacher's review page with an override.
        free = next(e for e in exercises if e["kind"] == "free_text")
        page.goto(f"{url}/learn/fractions/what-is-a-fraction#ex-{free['id']}")
        card = page.locator(f"form.exercise[data-exercise='{free['id']}']")
        card.locator("textarea").fill("It says what the fraction is about, I think")

        def unsure_right(route):
            # The model's grade as if it were right but unsure (a misconception near a reference): the
            # child must hear neither "right" nor "wrong", nor see the worked answer or the mastery.
            reply = route.fetch().json()
            route.fulfill(json={**reply, "correct": True, "feedback": "correct", "review": True,
                                "explanation": "WORKED ANSWER"}, status=201)

        page.route("**/api/v1/attempts", unsure_right)
        card.locator("button.check").click()
        card.locator(".feedback .notice").wait_for()
        said = card.locator(".feedback").inner_text()
        assert "Your teacher will read this answer" in said
        assert "Well done" not in said and "WORKED ANSWER" not in said and "mastered" not in said
        page.unroute("**/api/v1/attempts")
        card.locator("textarea").fill("The number of equal parts the whole is cut into")
        card.locator("button.check").click()
        page.wait_for_function("e => !e.querySelector('button.check').disabled && e.querySelector('.feedback').innerText"
                               ".indexOf('It says') < 0", arg=card.element_handle())

        teacher = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        tp = teacher.new_page()
        sign_in_staff(tp, url, "tom", "/teach/")
        tp.goto(f"{url}/teach/classes/{people['class_id']}/grades?show=all")
        row = tp.locator("tr[data-graded-by=model]", has_text="It says what the fraction is about")
        _axe(tp, axe, "grade-review", found)
        rows = tp.eval_on_selector_all("tr[data-attempt]", "els => els.map(e => e.id)")
        assert len(rows) == 2
        after = rows[1] if rows[0] == row.get_attribute("id") else rows[0]
        graded_id = row.get_attribute("data-attempt")     # before the grade: then the row is the teacher's
        row.locator("button[value=correct]").focus()
        tp.keyboard.press("Enter")                        # graded by keyboard: the page comes back to the other row
        tp.wait_for_url(re.compile(rf".*/grades\?show=all&graded={graded_id}#{after}$"))
        tp.wait_for_function(f"document.activeElement.id === '{after}'")
        assert "Saved: the answer is marked right." in tp.content()
        # The focused row is described by that message, which sits at the top of the page, scrolled away.
        said = tp.evaluate(f"document.getElementById(document.getElementById('{after}').getAttribute('aria-describedby')).textContent")
        assert said == "Saved: the answer is marked right."
        assert tp.locator("tr[data-graded-by=teacher]").count() == 1
        # The answer just graded is still on the page with its new grade, where a mis-click is put right.
        assert "Just graded" in tp.locator(f"tr[data-attempt='{graded_id}']").inner_text()
        shot(tp, "learning-grade-review-after")

        # The class grid: the model's mastery as of now for the skills this student has answered.
        tp.goto(f"{url}/teach/classes/{people['class_id']}/progress")
        assert "as of now: it fades while a skill goes unpractised" in tp.locator(".mastery-source").inner_text()
        answered = tp.locator(".cell[data-level]:not([data-level=none])")
        assert answered.count() >= 1 and re.search(r"\d+%", answered.first.inner_text())
        # All nine skills of the demo course fit a 1280 px laptop screen without scrolling sideways.
        assert tp.locator(".grid-table th.skill").count() == 9
        assert tp.evaluate("() => { const w = document.querySelector('.table-wrap'); return w.scrollWidth <= w.clientWidth }")
        _axe(tp, axe, "teacher-grid", found)

        # The teacher grades the student's latest answer: the student sees it on the question, and it
        # goes as soon as they answer again (it was of the answer before).
        tp.goto(f"{url}/teach/classes/{people['class_id']}/grades?show=all")
        tp.locator("tr[data-attempt]", has_text="The number of equal parts").locator("button[value=incorrect]").click()
        tp.wait_for_url(re.compile(r".*/grades\?show=all&graded=\d+#.*"))
        page.reload()  # the same URL as before, anchor and all: goto would not load it again
        mark = card.locator(".teacher-mark")
        assert "marked it not right yet" in mark.inner_text()
        shot(page, "learning-student-teacher-mark")
        card.locator("textarea").fill("How many equal parts the whole is split into")
        card.locator("button.check").click()
        card.locator(".feedback .notice").wait_for()
        mark.wait_for(state="detached")
    assert not found, "accessibility violations:\n" + "\n".join(found)
