"""POST /api/v1/attempts: grading, idempotency on attempt_uid, progress, mastery, outbox, hooks."""
from __future__ import annotations

import json
import re
import threading
import uuid

import pytest
from lms_fixtures import RIGHT, csrf_of


def _token(client) -> str:
    return csrf_of(client.get("/learn").get_data(as_text=True))


def _post(client, exercise_id, answer, uid=None, token=None, course="fractions-mini"):
    body = {"attempt_uid": uid or str(uuid.uuid4()), "course_id": course, "exercise_id": exercise_id,
            "answer": answer, "duration_ms": 1200}
    return client.post("/api/v1/attempts", json=body, headers={"X-CSRF-Token": token or _token(client)})


def _count(services, sql, *args):
    with services.db.read() as conn:
        return conn.execute(sql, args).fetchone()[0]


def test_right_and_wrong_answers_get_instant_feedback(services, course, student_client):
    ok = _post(student_client, "e1", {"choice": 1})
    assert ok.status_code == 201
    body = ok.get_json()
    assert body["correct"] is True and body["feedback"] == "correct" and body["score"] == 1.0
    assert body["explanation"].startswith("One half") and body["mastery"]["parts"] > 0
    bad = _post(student_client, "e3", {"value": "2/3"}).get_json()
    assert bad["correct"] is False and bad["feedback"] == "incorrect"
    assert bad["mastery"]["parts"] < body["mastery"]["parts"] + 0.3


def test_retried_submission_counts_once_and_returns_the_original_result(services, course, student_client):
    uid = str(uuid.uuid4())
    token = _token(student_client)
    first = _post(student_client, "e1", {"choice": 0}, uid=uid, token=token)
    assert first.status_code == 201 and first.get_json()["correct"] is False
    # The same uid again, even with a different (right) answer, is the same attempt: the reply was lost.
    again = _post(student_client, "e1", {"choice": 1}, uid=uid, token=token)
    assert again.status_code == 200
    replay = again.get_json()
    assert replay["replayed"] is True and replay["correct"] is False
    assert _count(services, "SELECT COUNT(*) FROM attempts WHERE attempt_uid = ?", uid) == 1
    assert _count(services, "SELECT successes + failures FROM mastery WHERE skill_id = 'parts'") == 1
    assert _count(services, "SELECT COUNT(*) FROM outbox WHERE type = 'attempt'") == 1


def test_concurrent_duplicates_are_recorded_once(app, services, course, klass):
    from lms_fixtures import sign_in_student

    ana = klass["students"]["Ana"]
    uid = str(uuid.uuid4())
    results = []

    def send():
        c = app.test_client()
        sign_in_student(c, klass["id"], ana["id"], ana["pin"])
        results.append(_post(c, "e2", {"choices": [0, 2]}, uid=uid))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results).count(201) == 1
    assert all(r.get_json()["correct"] for r in results)
    assert _count(services, "SELECT COUNT(*) FROM attempts WHERE attempt_uid = ?", uid) == 1


def test_attempt_uid_of_another_student_is_refused(app, services, course, klass, student_client):
    from lms_fixtures import sign_in_student

    uid = str(uuid.uuid4())
    assert _post(student_client, "e1", {"choice": 1}, uid=uid).status_code == 201
    ben = klass["students"]["Ben"]
    other = app.test_client()
    sign_in_student(other, klass["id"], ben["id"], ben["pin"])
    resp = _post(other, "e1", {"choice": 1}, uid=uid)
    assert resp.status_code == 409 and resp.get_json()["code"] == "conflict"


def test_outbox_event_carries_uids_not_row_ids(services, course, klass, student_client):
    uid = str(uuid.uuid4())
    _post(student_client, "e3", {"value": "0.75"}, uid=uid)
    with services.db.read() as conn:
        row = conn.execute("SELECT payload FROM outbox WHERE type = 'attempt'").fetchone()
        student_uid = conn.execute("SELECT uid FROM users WHERE id = ?", (klass["students"]["Ana"]["id"],)).fetchone()[0]
    event = json.loads(row["payload"])
    assert event["attempt_uid"] == uid and event["student_uid"] == student_uid
    assert "student_id" not in event and event["correct"] is True and event["answer"] == {"value": "0.75"}


def test_lesson_completes_when_every_exercise_is_answered_right(services, course, student_client):
    token = _token(student_client)
    statuses = [_post(student_client, ex, RIGHT[ex], token=token).get_json()["lesson_status"] for ex in ("e1", "e2", "e3", "e4")]
    assert statuses == ["started", "started", "started", "completed"]
    assert _count(services, "SELECT COUNT(*) FROM outbox WHERE type = 'lesson_progress'") == 2


def test_a_lesson_answered_wrong_is_not_done_until_its_questions_are_right(services, course, student_client):
    """Every question answered, one of them wrong last: not done (the course page does not tick that
    question either). Putting it right completes the lesson, and a later slip does not undo it."""
    token = _token(student_client)
    statuses = [_post(student_client, ex, RIGHT[ex], token=token).get_json()["lesson_status"] for ex in ("e1", "e2", "e4")]
    assert _post(student_client, "e3", {"value": "0.5"}, token=token).get_json()["lesson_status"] == "started"
    assert _post(student_client, "e1", {"choice": 0}, token=token).get_json()["lesson_status"] == "started"
    assert _post(student_client, "e3", RIGHT["e3"], token=token).get_json()["lesson_status"] == "started"  # e1 now wrong
    assert _post(student_client, "e1", RIGHT["e1"], token=token).get_json()["lesson_status"] == "completed"
    assert _post(student_client, "e2", {"choices": [1]}, token=token).get_json()["lesson_status"] == "completed"
    assert statuses == ["started"] * 3


def test_a_lesson_is_done_once_its_skills_are_mastered_before_every_question_is(services, course, student_client):
    """Next up moves a student on once a lesson's skill is mastered; the lesson counts as done then,
    not only after its last questions. Without a learner model the rule estimate masters 'parts' at
    the fifth right answer in a row ((5 + 1) / (5 + 2) = 0.857 >= 0.85); e3 stays unanswered."""
    token = _token(student_client)
    statuses = [_post(student_client, ex, RIGHT[ex], token=token).get_json()["lesson_status"]
                for ex in ("e1", "e2", "e4", "e1", "e2")]
    assert statuses == ["started"] * 4 + ["completed"]
    assert _count(services, "SELECT COUNT(*) FROM outbox WHERE type = 'lesson_progress'") == 2
    page = student_client.get("/learn/fractions-mini").get_data(as_text=True)
    assert "Done" in page
    # "My progress" says the skill is mastered, by the same rule (and only that skill).
    progress = student_client.get("/me/progress").get_data(as_text=True)
    assert progress.count("&#10003; Mastered") == 1 or progress.count("✓ Mastered") == 1
    assert re.search(r"Parts of a whole <span class=\"badge ok\">", progress)
    # The lesson page says why it is done while e3 is still open (the reply says so for runner.js too);
    # a lesson done question by question does not.
    assert _post(student_client, "e4", RIGHT["e4"], token=token).get_json()["lesson_mastered"] is True
    assert _mastered_notice_shown(student_client) is True
    _post(student_client, "e3", RIGHT["e3"], token=token)
    assert _mastered_notice_shown(student_client) is False


def test_the_lesson_page_says_mastered_by_the_same_estimate_as_the_progress_page(services, course, student_client):
    """The pages people read ask the learner model for its estimate now (it fades while a skill goes
    unpractised); the lesson page's "you have mastered what it teaches" went by the estimate stored at
    the last answer, and said so on a day the progress page no longer did."""
    token = _token(student_client)
    for ex in ("e1", "e2", "e4", "e1", "e2"):
        _post(student_client, ex, RIGHT[ex], token=token)
    assert _mastered_notice_shown(student_client) is True
    class FadedModel:  # the learner model's estimate some days later: 0.8 on every skill
        def mastery_now(self, conn, wanted, now=None):
            return [{s: 0.8 for s in skills} for _sid, _cid, skills in wanted]

    assert services.get("learner") is None
    services.provide("learner", FadedModel())
    progress = student_client.get("/me/progress").get_data(as_text=True)
    assert not re.search(r"Parts of a whole <span class=\"badge ok\">", progress)
    assert _mastered_notice_shown(student_client) is False


def _mastered_notice_shown(client) -> bool:
    html = client.get("/learn/fractions-mini/what-is-a-fraction").get_data(as_text=True)
    tag = re.search(r'<div class="notice ok mastered-early"[^>]*>', html).group(0)
    return " hidden" not in tag


def test_a_lesson_done_question_by_question_never_claims_mastery(services, course, student_client):
    """Every question right finishes the lesson at (4 + 1) / (4 + 2) = 0.83: done, not mastered. A wrong
    answer after it leaves it done, with a question open, and the page must not say "you have mastered"."""
    token = _token(student_client)
    replies = [_post(student_client, ex, RIGHT[ex], token=token).get_json() for ex in ("e1", "e2", "e3", "e4")]
    assert replies[-1]["lesson_status"] == "completed" and replies[-1]["lesson_mastered"] is False
    wrong = _post(student_client, "e3", {"value": "0.5"}, token=token).get_json()
    assert wrong["lesson_status"] == "completed" and wrong["lesson_mastered"] is False
    assert _mastered_notice_shown(student_client) is False


def _seed_parts_mastery(services, klass, successes: int) -> None:
    """'parts' as if mastered in another lesson: the rule estimate stays over 0.85 after one more answer."""
    ana = klass["students"]["Ana"]["id"]
    services.db.write(lambda c: c.execute(
        "INSERT INTO mastery (student_id, course_id, skill_id, successes, failures, p_mastery, last_practice)"
        " VALUES (?, 'fractions-mini', 'parts', ?, 0, 0.95, '2026-01-01T00:00:00.000Z') ON CONFLICT"
        " (student_id, course_id, skill_id) DO UPDATE SET successes = successes + excluded.successes,"
        " p_mastery = 0.95", (ana, successes)))


def test_a_wrong_answer_does_not_finish_a_lesson_whatever_the_estimate(services, course, klass, student_client):
    """Three of the lesson's questions right, its skill mastered, and a wrong answer to the fourth: not
    done (the estimate after it, 21 of 22, is still over the threshold). Putting it right finishes it."""
    token = _token(student_client)
    got = [_post(student_client, ex, RIGHT[ex], token=token).get_json()["lesson_status"] for ex in ("e1", "e2", "e4")]
    assert got == ["started"] * 3  # (3 + 1) / (3 + 2) = 0.8: not mastered yet
    _seed_parts_mastery(services, klass, 17)
    wrong = _post(student_client, "e3", {"value": "0.5"}, token=token).get_json()
    assert wrong["lesson_status"] == "started" and wrong["mastery"]["parts"] >= 0.85
    assert _post(student_client, "e3", RIGHT["e3"], token=token).get_json()["lesson_status"] == "completed"


def test_a_lesson_whose_skill_was_mastered_elsewhere_needs_three_right_answers(services, course, klass,
                                                                               student_client):
    """A review lesson, its skill mastered before: not done at its first right answer, but once three of
    its questions (learning.mastery_min_answers) are answered right, with one still unanswered."""
    _seed_parts_mastery(services, klass, 20)
    token = _token(student_client)
    got = [_post(student_client, ex, RIGHT[ex], token=token).get_json()["lesson_status"] for ex in ("e1", "e2", "e4")]
    assert got == ["started", "started", "completed"]


def test_free_text_waits_for_the_model_and_does_not_move_mastery(services, course, student_client):
    body = _post(student_client, "e6", RIGHT["e6"]).get_json()
    assert body["feedback"] == "pending" and body["graded_by"] == "pending" and body["mastery"] == {}
    assert _count(services, "SELECT COUNT(*) FROM mastery") == 0


def test_free_text_uses_the_semantic_hook_when_present(services, course, student_client):
    services.provide("semantic", lambda text, refs: 0.9 if "half" in text else 0.1)
    body = _post(student_client, "e6", RIGHT["e6"]).get_json()
    assert body["correct"] is True and body["graded_by"] == "model"
    assert _post(student_client, "e6", {"text": "no idea"}).get_json()["correct"] is False


class _Learner:
    def __init__(self, fail=False):
        self.fail = fail
        self.seen = []

    def observe(self, conn, attempt):
        self.seen.append(attempt)
        # Writes inside the attempt's transaction are allowed (and rolled back alone on failure).
        conn.execute("INSERT INTO kv (key, value) VALUES (?, 'x')", (attempt["attempt_uid"],))
        if self.fail:
            raise RuntimeError("model exploded")
        return {s: 0.5 for s in attempt["skills"]}

    def next_up(self, student, course_id):
        return {"exercise_id": "e5", "course_id": course_id}


def test_learner_hook_sets_mastery_and_next_up(services, course, student_client):
    learner = _Learner()
    services.provide("learner", learner)
    body = _post(student_client, "e1", {"choice": 1}).get_json()
    assert body["mastery"] == {"parts": 0.5} and body["next"]["exercise_id"] == "e5"
    assert learner.seen[0]["student_uid"] and learner.seen[0]["correct"] is True
    assert _count(services, "SELECT p_mastery FROM mastery WHERE skill_id = 'parts'") == 0.5


def test_failing_learner_hook_never_loses_the_answer(services, course, student_client):
    services.provide("learner", _Learner(fail=True))
    resp = _post(student_client, "e1", {"choice": 1})
    assert resp.status_code == 201
    assert _count(services, "SELECT COUNT(*) FROM attempts") == 1
    assert _count(services, "SELECT COUNT(*) FROM kv") == 0  # the hook's own write was rolled back
    assert resp.get_json()["mastery"]["parts"] == pytest.approx(2 / 3, abs=1e-4)  # the rule estimate, (1 + 1) / (1 + 2)


@pytest.mark.parametrize("body, message", [
    ({"course_id": "fractions-mini", "exercise_id": "e1", "answer": {"choice": 1}}, "attempt_uid"),
    ({"attempt_uid": "x", "course_id": "fractions-mini", "exercise_id": "e1", "answer": {"choice": 1}}, "attempt_uid"),
    ({"attempt_uid": str(uuid.uuid4()), "course_id": "fractions-mini", "exercise_id": "e1", "answer": {"choice": 7}}, "not one of"),
    ({"attempt_uid": str(uuid.uuid4()), "course_id": "fractions-mini", "exercise_id": "e3", "answer": {"value": "lots"}}, "number"),
])
def test_bad_submissions_get_clear_json_errors_and_store_nothing(services, course, student_client, body, message):
    resp = student_client.post("/api/v1/attempts", json=body, headers={"X-CSRF-Token": _token(student_client)})
    assert resp.status_code == 400 and message in resp.get_json()["error"]
    assert _count(services, "SELECT COUNT(*) FROM attempts") == 0


def test_unknown_exercise_is_404_json(services, course, student_client):
    resp = _post(student_client, "nope", {"choice": 1})
    assert resp.status_code == 404 and resp.is_json


def test_attempts_need_the_csrf_header(services, course, student_client):
    resp = student_client.post("/api/v1/attempts", json={"attempt_uid": str(uuid.uuid4()), "course_id": "fractions-mini",
                                                         "exercise_id": "e1", "answer": {"choice": 1}})
    assert resp.status_code == 403 and resp.is_json


def test_any_field_of_any_type_is_a_clear_answer_never_a_500(services, course, student_client):
    """Every field of a valid answer to every kind of exercise, swapped for a value of every other JSON
    type: each reply is a 2xx or a 4xx with a message, and only the accepted ones are stored."""
    from json_fuzz import replaced, replacements

    token = _token(student_client)
    before = _count(services, "SELECT COUNT(*) FROM attempts")
    accepted = tried = 0
    for exercise_id, answer in RIGHT.items():
        valid = {"attempt_uid": "x", "course_id": "fractions-mini", "exercise_id": exercise_id, "answer": answer,
                 "duration_ms": 1200}
        for path, value in replacements(valid):
            body = replaced(valid, path, value)
            if isinstance(body, dict) and body.get("attempt_uid") == "x":
                body["attempt_uid"] = str(uuid.uuid4())  # a fresh answer each time, not a replay
            r = student_client.post("/api/v1/attempts", json=body, headers={"X-CSRF-Token": token})
            assert r.status_code < 500, (path, value, r.status_code, r.get_data(as_text=True)[:300])
            if r.status_code >= 400:
                assert r.get_json()["error"], (path, value)
            elif not r.get_json()["repeat"]:  # the same answer as the one just before is not stored again
                accepted += 1
            tried += 1
    assert tried > 250 and 0 < accepted < tried
    assert _count(services, "SELECT COUNT(*) FROM attempts") == before + accepted


def test_the_same_answer_sent_again_at_once_counts_once(services, course, student_client):
    """A second Enter, or "Check" pressed again on a graded answer, is no new evidence: a child must not
    raise mastery by tapping one button. Answering other questions first, it counts again."""
    token = _token(student_client)
    first = _post(student_client, "e1", RIGHT["e1"], token=token).get_json()
    for _ in range(3):
        again = _post(student_client, "e1", RIGHT["e1"], token=token)
        assert again.status_code == 200
        body = again.get_json()
        assert body["repeat"] is True and body["correct"] is True and body["mastery"] == first["mastery"]
    assert _count(services, "SELECT COUNT(*) FROM attempts WHERE exercise_id = 'e1'") == 1
    assert _count(services, "SELECT successes + failures FROM mastery WHERE skill_id = 'parts'") == 1
    assert _count(services, "SELECT COUNT(*) FROM outbox WHERE type = 'attempt'") == 1
    changed = _post(student_client, "e1", {"choice": 0}, token=token).get_json()  # a different answer counts
    assert changed["repeat"] is False and changed["correct"] is False
    _post(student_client, "e3", RIGHT["e3"], token=token)
    back = _post(student_client, "e1", {"choice": 0}, token=token).get_json()  # after another question
    assert back["repeat"] is False
    assert _count(services, "SELECT COUNT(*) FROM attempts WHERE exercise_id = 'e1'") == 3


def test_deeply_nested_json_is_a_clear_answer_never_a_500(services, course, student_client):
    """100,000 brackets exhaust the JSON parser's stack (RecursionError, not a ValueError), which
    get_json(silent=True) does not catch: it was a 500. Also nested inside a valid answer."""
    token = _token(student_client)
    for raw in ("[" * 100_000 + "]" * 100_000,
                '{"attempt_uid": "%s", "course_id": "fractions-mini", "exercise_id": "e1", "answer": {"choice": %s}}'
                % (uuid.uuid4(), "[" * 100_000 + "]" * 100_000)):
        r = student_client.post("/api/v1/attempts", data=raw, content_type="application/json",
                                headers={"X-CSRF-Token": token})
        assert r.status_code == 400 and r.get_json()["error"], r.get_data(as_text=True)[:200]
    assert _count(services, "SELECT COUNT(*) FROM attempts") == 0


def test_only_the_field_the_kind_grades_is_stored_and_sent(services, course, student_client):
    """Anything else in the answer is never graded: it is not stored or sent on to the hub, where a
    deeply nested extra would be the box's to carry."""
    deep = json.loads("[" * 500 + "]" * 500)
    body = _post(student_client, "e1", {"choice": 1, "note": "x", "extra": deep}).get_json()
    assert body["correct"] is True
    with services.db.read() as conn:
        stored = json.loads(conn.execute("SELECT answer FROM attempts").fetchone()[0])
        sent = json.loads(conn.execute("SELECT payload FROM outbox WHERE type = 'attempt'").fetchone()[0])
    assert stored == {"choice": 1} and sent["answer"] == {"choice": 1}
    # A repeat compares what was graded: the same choice with other extras is the same answer.
    assert _post(student_client, "e1", {"choice": 1, "note": "y"}).get_json()["repeat"] is True


def test_lessons_mastered_before_the_rule_existed_are_finished_once_at_start(services, course, klass, student_client):
    """A box upgraded with progress in it: the lesson whose skill the student had mastered, last answer
    right, is done after the next start; the run is recorded, so a later start changes nothing."""
    from appliance.learning.progress import finish_mastered_lessons

    token = _token(student_client)
    for ex in ("e1", "e2", "e4"):
        _post(student_client, ex, RIGHT[ex], token=token)
    _seed_parts_mastery(services, klass, 20)  # mastered as an older box's model had it, no answer since
    with services.db.read() as conn:
        assert conn.execute("SELECT status FROM lesson_progress").fetchone()[0] == "started"
    assert finish_mastered_lessons(services) == 1
    with services.db.read() as conn:
        assert conn.execute("SELECT status FROM lesson_progress").fetchone()[0] == "completed"
        events = [json.loads(r[0])["status"] for r in conn.execute(
            "SELECT payload FROM outbox WHERE type = 'lesson_progress' ORDER BY seq")]
    assert events == ["started", "completed"]
    services.db.write(lambda c: c.execute("UPDATE lesson_progress SET status = 'started'"))
    assert finish_mastered_lessons(services) == 0  # once per box


def test_a_lesson_whose_last_answer_was_wrong_is_not_finished_at_start(services, course, klass, student_client):
    from appliance.learning.progress import finish_mastered_lessons

    token = _token(student_client)
    for ex, ans in (("e1", RIGHT["e1"]), ("e2", RIGHT["e2"]), ("e4", RIGHT["e4"]), ("e3", {"value": "0.5"})):
        _post(student_client, ex, ans, token=token)
    _seed_parts_mastery(services, klass, 20)
    assert finish_mastered_lessons(services) == 0
    with services.db.read() as conn:
        assert conn.execute("SELECT status FROM lesson_progress").fetchone()[0] == "started"


def test_the_reply_carries_the_estimate_the_page_showed_before(services, course, student_client):
    first = _post(student_client, "e1", {"choice": 1}).get_json()
    assert first["mastery_before"] == {}  # no estimate before the first answer on the skill
    second = _post(student_client, "e3", {"value": "3/4"}).get_json()
    assert second["mastery_before"] == first["mastery"]  # "parts" as the first reply showed it
    assert second["mastery"]["parts"] > second["mastery_before"]["parts"]
