"""The learning service in the answer path: learner state, modelled mastery, FSRS cards, next up,
the status, the rule fallback without models, and a teacher's override. Real models (built once per
session), real engine, real SQLite."""
from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import onnxruntime as ort
import pytest
from learning_models import learning_config, learning_services
from lms_fixtures import COURSE_ID, make_class, make_staff, seed_course

from appliance.learning import overrides
from appliance.learning.features import FeatureSpec, LearnerState
from appliance.learning.progress import record_attempt

RULE_AFTER_ONE_RIGHT = 2 / 3  # (successes + 1) / (answers + 2)
from appliance.services import Services
from appliance.store.database import now_iso

RIGHT = {"e1": {"choice": 1}, "e2": {"choices": [0, 2]}, "e3": {"value": "3/4"}, "e4": {"text": "denominator"},
         "e5": {"choice": 0}}
WRONG = {"e1": {"choice": 0}, "e3": {"value": "1/4"}}


def _people(services) -> tuple[dict, dict, int]:
    seed_course(services.db)
    teacher = make_staff(services.db, "teacher", "tom")
    class_id, added = make_class(services.db, teacher["id"], ["Ana"])
    with services.db.read() as conn:
        ana = dict(conn.execute("SELECT * FROM users WHERE id = ?", (added["Ana"]["id"],)).fetchone())
    return ana, teacher, class_id


@pytest.fixture
def svc(tmp_path, models):
    s = learning_services(tmp_path / "data", models)
    yield s
    s.close()


@pytest.fixture
def ana(svc):
    return _people(svc)[0]


def answer(services, student, exercise_id, ans) -> dict:
    return record_attempt(services, student, {"attempt_uid": str(uuid.uuid4()), "course_id": COURSE_ID,
                                              "exercise_id": exercise_id, "answer": ans})


def _reference_mastery(models, history, skill: str) -> float:
    """The learner ONNX file run directly on a state replayed here: independent of the service's code path."""
    return _reference_at(models, history, skill, history[-1][3])


def _history(services, student) -> list:
    with services.db.read() as conn:
        return [(r["exercise_id"], json.loads(r["skills"]), bool(r["correct"]),
                 datetime.fromisoformat(r["created_at"]).timestamp()) for r in conn.execute(
            "SELECT a.exercise_id, a.correct, a.created_at, e.skills FROM attempts a JOIN exercises e"
            " ON e.course_id = a.course_id AND e.id = a.exercise_id WHERE a.student_id = ? ORDER BY a.id",
            (student["id"],))]


def test_each_answer_updates_state_and_modelled_mastery(svc, ana, models):
    results = [answer(svc, ana, "e1", RIGHT["e1"]), answer(svc, ana, "e3", WRONG["e3"]),
               answer(svc, ana, "e2", RIGHT["e2"])]
    assert [r["correct"] for r in results] == [True, False, True]
    ps = [r["mastery"]["parts"] for r in results]
    assert ps[1] < ps[0] and ps[2] > ps[1]  # a wrong answer lowers it, a right one raises it
    # Not the rule estimate: the rule would give 2/3 after the first right answer.
    assert ps[0] != pytest.approx(RULE_AFTER_ONE_RIGHT, abs=1e-3)
    want = _reference_mastery(models, _history(svc, ana), "parts")
    assert ps[-1] == pytest.approx(want, abs=2e-3)  # the prediction used the answer's time, the replay its stamp
    with svc.db.read() as conn:
        row = conn.execute("SELECT version, state FROM learner_state WHERE student_id = ?", (ana["id"],)).fetchone()
        p_table = conn.execute("SELECT p_mastery FROM mastery WHERE student_id = ? AND skill_id = 'parts'",
                               (ana["id"],)).fetchone()[0]
    assert row["version"] == 3
    assert json.loads(row["state"])["skills"]["parts"][:2] == [2, 1]
    assert p_table == pytest.approx(ps[-1], abs=1e-4)  # the teacher grid reads this column
    # Every prediction was made before the write; the writer thread only stored it.
    assert svc.get("learner").stats == {"prepared": 3, "recomputed": 0}


def test_a_prediction_overtaken_by_another_answer_is_recomputed_in_the_writer(svc, ana, models):
    learner = svc.get("learner")
    answer(svc, ana, "e1", RIGHT["e1"])
    with svc.db.read() as conn:
        ex = dict(conn.execute("SELECT * FROM exercises WHERE course_id = ? AND id = 'e3'", (COURSE_ID,)).fetchone())
    ex["skills"] = json.loads(ex["skills"])
    stale = learner.prepare(ana, ex, True)            # made from version 1 ...
    answer(svc, ana, "e2", RIGHT["e2"])               # ... which this answer moves to version 2
    uid = str(uuid.uuid4())
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    def write(conn):
        conn.execute("INSERT INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score,"
                     " graded_by, created_at) VALUES (?, ?, ?, 'e3', '{}', 1, 1, 'rule', ?)", (uid, ana["id"], COURSE_ID, now))
        return learner.observe(conn, {"attempt_uid": uid, "student_id": ana["id"], "course_id": COURSE_ID,
                                      "exercise_id": "e3", "skills": ["parts"], "correct": True, "created_at": now,
                                      "prepared": stale})

    mastery = svc.db.write(write)
    assert learner.stats["recomputed"] == 1
    with svc.db.read() as conn:
        state = json.loads(conn.execute("SELECT state FROM learner_state WHERE student_id = ?", (ana["id"],)).fetchone()[0])
    assert state["skills"]["parts"][:2] == [3, 0]  # all three answers, none lost to the stale token
    assert mastery["parts"] == pytest.approx(_reference_mastery(models, _history(svc, ana), "parts"), abs=2e-3)


def test_history_from_before_the_learner_existed_is_replayed(tmp_path, models):
    plain = Services.open(learning_config(tmp_path / "data", None))
    ana, _t, _c = _people(plain)
    answer(plain, ana, "e1", RIGHT["e1"])   # no learner attached: rule estimate only
    answer(plain, ana, "e3", WRONG["e3"])
    plain.close()
    svc = learning_services(tmp_path / "data", models)
    try:
        answer(svc, ana, "e2", RIGHT["e2"])
        with svc.db.read() as conn:
            state = json.loads(conn.execute("SELECT state FROM learner_state WHERE student_id = ?", (ana["id"],)).fetchone()[0])
        assert state["skills"]["parts"][:2] == [2, 1] and state["success"] == 2 and state["failure"] == 1
    finally:
        svc.close()


def test_mastering_a_skill_schedules_fsrs_reviews_and_next_up_offers_them(svc, ana):
    for ex in ("e1", "e2", "e3", "e4", "e1", "e2"):
        r = answer(svc, ana, ex, RIGHT[ex])
    assert r["mastery"]["parts"] >= svc.cfg.learning.mastery_threshold
    with svc.db.read() as conn:
        card = conn.execute("SELECT due, reviews FROM review_cards WHERE student_id = ? AND skill_id = 'parts'",
                            (ana["id"],)).fetchone()
    assert card is not None and card["reviews"] >= 1
    due = datetime.fromisoformat(card["due"])
    assert due > datetime.now(UTC) + timedelta(hours=12)  # days, not minutes: no learning steps
    nxt = svc.get("learner").next_up(ana, COURSE_ID)
    assert nxt["kind"] != "review" and nxt["skill_id"] != "parts"   # mastered and not due: move on
    assert nxt["skill_id"] == "equivalent"                             # "parts" was its only prerequisite

    def make_due(conn):  # time passes: the review date is reached
        conn.execute("UPDATE review_cards SET card = json_set(card, '$.due', ?), due = ? WHERE skill_id = 'parts'",
                     ("2020-01-01T00:00:00+00:00", "2020-01-01T00:00:00.000Z"))
    svc.db.write(make_due)
    nxt = svc.get("learner").next_up(ana, COURSE_ID)
    assert (nxt["kind"], nxt["skill_id"], nxt["reason"]) == ("review", "parts", "review_due")
    assert nxt["url"].startswith(f"/learn/{COURSE_ID}/what-is-a-fraction#ex-")
    assert "Parts of a whole" in nxt["why"]


def test_the_status_names_the_models_in_use(svc):
    status = {p.name: p for p in svc.statuses()}["learning"]
    assert status.state == "ok"
    assert "learner v1" in status.detail and "minilm v1" in status.detail


def test_without_models_the_lms_works_on_rule_estimates_and_says_why(tmp_path):
    svc = learning_services(tmp_path / "data", None)
    try:
        ana = _people(svc)[0]
        r = answer(svc, ana, "e1", RIGHT["e1"])
        assert r["correct"] and r["mastery"] == {"parts": pytest.approx(RULE_AFTER_ONE_RIGHT, abs=1e-4)}
        assert r["next"]["source"] == "rule" and r["next"]["why"]
        pending = answer(svc, ana, "e6", {"text": "Both are one half."})
        assert pending["graded_by"] == "pending"   # free text waits for the teacher instead of failing
        status = {p.name: p for p in svc.statuses()}["learning"]
        assert status.state == "degraded"
        assert "rule estimate" in status.detail and "not loaded" in status.detail
        assert "wait for the teacher" in status.detail
        with svc.db.read() as conn:
            assert conn.execute("SELECT version FROM learner_state").fetchone()[0] == 1  # state kept for later
    finally:
        svc.close()


def test_teacher_override_updates_attempt_mastery_state_and_outbox(tmp_path, models):
    svc = learning_services(tmp_path / "data", None)   # no model: the free-text answer waits for the teacher
    ana, teacher, class_id = _people(svc)
    answer(svc, ana, "e1", RIGHT["e1"])
    pending = answer(svc, ana, "e6", {"text": "Both are one half."})
    svc.close()
    svc = learning_services(tmp_path / "data", models)
    try:
        with svc.db.read() as conn:
            attempt_id = conn.execute("SELECT id FROM attempts WHERE attempt_uid = ?", (pending["attempt_uid"],)).fetchone()[0]
        out = overrides.override(svc, teacher, class_id, attempt_id, True)
        assert out["source"] == "model" and set(out["mastery"]) == {"equivalent", "add"}
        with svc.db.read() as conn:
            a = conn.execute("SELECT correct, score, graded_by, confidence FROM attempts WHERE id = ?", (attempt_id,)).fetchone()
            m = {r["skill_id"]: dict(r) for r in conn.execute("SELECT * FROM mastery WHERE student_id = ?", (ana["id"],))}
            state = json.loads(conn.execute("SELECT state FROM learner_state WHERE student_id = ?", (ana["id"],)).fetchone()[0])
            ev = conn.execute("SELECT payload FROM outbox WHERE type = 'grade_override'").fetchone()
        assert tuple(a) == (1, 1.0, "teacher", 1.0)
        assert (m["equivalent"]["successes"], m["equivalent"]["failures"]) == (1, 0)
        assert m["equivalent"]["p_mastery"] == pytest.approx(out["mastery"]["equivalent"])
        assert state["success"] == 2 and state["skills"]["add"][:2] == [1, 0]
        payload = json.loads(ev[0])
        assert payload["previous"]["graded_by"] == "pending" and payload["correct"] is True
        assert payload["teacher_uid"] == teacher["uid"] and payload["student_uid"] == ana["uid"]
        # Changing the mind moves the count instead of adding one.
        overrides.override(svc, teacher, class_id, attempt_id, False)
        with svc.db.read() as conn:
            m = conn.execute("SELECT successes, failures FROM mastery WHERE student_id = ? AND skill_id = 'equivalent'",
                             (ana["id"],)).fetchone()
            events = conn.execute("SELECT COUNT(*) FROM outbox WHERE type = 'grade_override'").fetchone()[0]
        assert tuple(m) == (0, 1) and events == 2
    finally:
        svc.close()


def test_override_is_refused_for_a_student_of_another_class(svc):
    ana = _people(svc)[0]
    answer(svc, ana, "e1", RIGHT["e1"])
    other = make_staff(svc.db, "teacher", "olga")
    other_class, _ = make_class(svc.db, other["id"], ["Bo"], name="Other")
    with svc.db.read() as conn:
        attempt_id = conn.execute("SELECT id FROM attempts").fetchone()[0]
    from appliance.errors import NotFound

    with pytest.raises(NotFound):
        overrides.override(svc, other, other_class, attempt_id, False)
    assert np.isclose(answer(svc, ana, "e1", RIGHT["e1"])["score"], 1.0)


WRONG_TEXT = {"text": "cats"}   # the grading model marks it wrong, sure of it
RIGHT_TEXT = {"text": "Both are one half of the whole."}


def _cards(services, student) -> dict:
    """skill -> (reviews, the FSRS card as stored)."""
    with services.db.read() as conn:
        return {r["skill_id"]: (r["reviews"], json.loads(r["card"])) for r in conn.execute(
            "SELECT skill_id, reviews, card FROM review_cards WHERE student_id = ?", (student["id"],))}


def _schedule(cards: dict) -> dict:
    """What a card says about the student, without the moments (twins answer milliseconds apart)."""
    out = {}
    for skill, (reviews, c) in cards.items():
        gap = datetime.fromisoformat(c["due"]) - datetime.fromisoformat(c["last_review"])
        out[skill] = (reviews, c["state"], round(c["stability"], 6), round(c["difficulty"], 6), gap)
    return out


def _attempt_id(services, attempt_uid: str) -> int:
    with services.db.read() as conn:
        return conn.execute("SELECT id FROM attempts WHERE attempt_uid = ?", (attempt_uid,)).fetchone()[0]


def _twins(services, lead_in: int) -> tuple:
    """Ana and Bo (classes of one teacher) answer e5 right ``lead_in`` times, then e6: Ana wrong and Bo
    right, both graded by the model. Returns ana, bo, teacher, their classes and their e6 attempt ids.
    The e5 answers stand for practice on different days, so none of them is a repeat."""
    from appliance.learning import progress

    saved, progress.REPEAT_WINDOW_S = progress.REPEAT_WINDOW_S, -1
    try:
        return _twins_answer(services, lead_in)
    finally:
        progress.REPEAT_WINDOW_S = saved


def _twins_answer(services, lead_in: int) -> tuple:
    ana, teacher, class_id = _people(services)
    bo_class, added = make_class(services.db, teacher["id"], ["Bo"], name="Class 4C")
    with services.db.read() as conn:
        bo = dict(conn.execute("SELECT * FROM users WHERE id = ?", (added["Bo"]["id"],)).fetchone())
    for _ in range(lead_in):
        answer(services, ana, "e5", RIGHT["e5"])
        answer(services, bo, "e5", RIGHT["e5"])
    a, b = answer(services, ana, "e6", WRONG_TEXT), answer(services, bo, "e6", RIGHT_TEXT)
    assert (a["graded_by"], a["correct"], b["graded_by"], b["correct"]) == ("model", False, "model", True)
    return ana, bo, teacher, class_id, bo_class, _attempt_id(services, a["attempt_uid"]), _attempt_id(services, b["attempt_uid"])


def test_override_to_right_reschedules_reviews_as_a_right_answer_would(svc):
    ana, bo, teacher, ana_class, bo_class, ana_e6, bo_e6 = _twins(svc, lead_in=6)
    wrong_cards, right_cards = _cards(svc, ana), _cards(svc, bo)
    assert "equivalent" in wrong_cards and "equivalent" in right_cards   # mastered by the e5 answers
    assert _schedule(wrong_cards) != _schedule(right_cards)              # the e6 review: Again vs Good
    overrides.override(svc, teacher, ana_class, ana_e6, True)
    now_right = _cards(svc, ana)
    assert _schedule(now_right) == _schedule(right_cards)                # as if Ana had answered like Bo
    assert now_right["equivalent"][1]["due"] > wrong_cards["equivalent"][1]["due"]
    assert now_right["equivalent"][1]["card_id"] == wrong_cards["equivalent"][1]["card_id"]
    # The teacher takes it back: the card is again the one the wrong answer made (sooner review).
    overrides.override(svc, teacher, ana_class, ana_e6, False)
    assert _cards(svc, ana) == wrong_cards
    # And a right answer marked wrong moves Bo's card to where Ana's wrong answer put hers.
    overrides.override(svc, teacher, bo_class, bo_e6, False)
    assert _schedule(_cards(svc, bo)) == _schedule(wrong_cards)
    assert _cards(svc, bo)["equivalent"][1]["due"] < right_cards["equivalent"][1]["due"]


def test_override_to_right_creates_the_card_where_it_masters_the_skill(tmp_path, models):
    # The rule estimate instead of the learner model (the grading model still grades): mastery after n right
    # answers and none wrong is (n + 1) / (n + 2), so the fifth right answer is the first at 0.85 or above.
    svc = learning_services(tmp_path / "data", models, learning__learner_model="no-such-model")
    try:
        assert svc.cfg.learning.mastery_threshold == 0.85
        ana, bo, teacher, ana_class, bo_class, ana_e6, bo_e6 = _twins(svc, lead_in=4)
        assert _cards(svc, ana) == {}                        # 4 right, 1 wrong: 5/7, not mastered
        assert set(_cards(svc, bo)) == {"equivalent"}        # 5 right: 6/7, mastered by the e6 answer
        overrides.override(svc, teacher, ana_class, ana_e6, True)
        cards = _cards(svc, ana)
        assert set(cards) == {"equivalent"}                  # "add" has one right answer: 2/3, still no card
        assert _schedule(cards) == _schedule(_cards(svc, bo))
        with svc.db.read() as conn:
            e6_at = conn.execute("SELECT created_at FROM attempts WHERE id = ?", (ana_e6,)).fetchone()[0]
        assert cards["equivalent"][0] == 1
        assert datetime.fromisoformat(cards["equivalent"][1]["last_review"]) == datetime.fromisoformat(e6_at)
        overrides.override(svc, teacher, ana_class, ana_e6, False)
        assert _cards(svc, ana) == {}                        # wrong again: the skill was never mastered
        overrides.override(svc, teacher, bo_class, bo_e6, False)
        assert _cards(svc, bo) == {}
    finally:
        svc.close()


def test_override_on_an_unmastered_skill_without_a_card_creates_none(svc):
    ana, teacher, class_id = _people(svc)
    a = answer(svc, ana, "e6", WRONG_TEXT)
    assert (a["graded_by"], a["correct"]) == ("model", False)
    out = overrides.override(svc, teacher, class_id, _attempt_id(svc, a["attempt_uid"]), True)
    assert max(out["mastery"].values()) < svc.cfg.learning.mastery_threshold
    assert _cards(svc, ana) == {}


def test_batched_feature_rows_equal_the_spec_encoding():
    import random

    from appliance.learning.predictor import feature_rows

    spec, state, rnd = FeatureSpec(), LearnerState(), random.Random(7)
    skills = [f"s{i}" for i in range(9)]
    for k in range(300):
        state.observe(f"i{rnd.randrange(70)}", rnd.sample(skills, rnd.choice([1, 2])), rnd.random() < 0.6, 1e9 + k * 3600)
    queries = ([(None, [s]) for s in skills] + [(f"i{j}", rnd.sample(skills, rnd.choice([1, 2]))) for j in range(70)]
               + [("never-seen", ["zz"]), ("i1", ["s1", "s1"])])
    now = 1e9 + 400 * 3600
    want = np.stack([spec.encode(state, item, s, now) for item, s in queries])
    assert np.array_equal(feature_rows(spec, state, queries, now), want)


def test_next_up_after_an_answer_reuses_the_forecast_made_before_the_write(svc, ana):
    learner = svc.get("learner")
    calls = []
    real = learner.predictor.predict
    learner.predictor.predict = lambda state, queries, now: calls.append(len(queries)) or real(state, queries, now)
    r = answer(svc, ana, "e1", RIGHT["e1"])
    assert len(calls) == 1 and calls[0] > 3          # one model call per answer: every skill and exercise
    fresh = learner.next_up(ana, COURSE_ID)           # another request: nothing to reuse, predicts again
    assert len(calls) == 2
    assert {k: v for k, v in r["next"].items() if k != "predicted_success"} == \
        {k: v for k, v in fresh.items() if k != "predicted_success"}
    assert r["next"]["predicted_success"] == pytest.approx(fresh["predicted_success"], abs=1e-3)


def test_mastery_now_is_the_model_on_each_students_state_in_one_run_and_fades(svc, models):
    """Two students asked together: each value equals the learner file run on that student's replayed
    history at that moment; one engine run for both; two months on, less is expected of them."""
    seed_course(svc.db)
    teacher = make_staff(svc.db, "teacher", "tom")
    _class_id, added = make_class(svc.db, teacher["id"], ["Ana", "Ben"])
    with svc.db.read() as conn:
        kids = [dict(conn.execute("SELECT * FROM users WHERE id = ?", (added[n]["id"],)).fetchone()) for n in ("Ana", "Ben")]
    answer(svc, kids[0], "e1", {"choice": 1})
    answer(svc, kids[0], "e3", {"value": "3/4"})
    answer(svc, kids[1], "e1", {"choice": 0})
    learner, engine = svc.get("learner"), svc.get("inference")
    with svc.db.read() as conn:
        skills = [[r[0] for r in conn.execute("SELECT skill_id FROM mastery WHERE student_id = ?", (k["id"],))] for k in kids]
    later = _history(svc, kids[0])[-1][3] + 60 * 86400
    runs_before = engine.metrics.summary("learner")["requests"]
    with svc.db.read() as conn:
        now = learner.mastery_now(conn, [(k["id"], COURSE_ID, sk) for k, sk in zip(kids, skills)], now=later)
    assert engine.metrics.summary("learner")["requests"] == runs_before + 1
    assert [set(v) for v in now] == [set(sk) for sk in skills] and all(skills)
    for kid, sk, values in zip(kids, skills, now):
        history = _history(svc, kid)
        for skill in sk:
            assert values[skill] == pytest.approx(_reference_at(models, history, skill, later), abs=1e-4)
            # The same history asked right after the last answer expected more.
            assert values[skill] < _reference_mastery(models, history, skill)


def _reference_at(models, history, skill: str, at: float) -> float:
    """As _reference_mastery, asked at ``at`` (seconds since the epoch)."""
    meta = json.loads((models / "learner" / "1" / "model.json").read_text())
    spec = FeatureSpec.from_dict(meta["learner_feature_spec"])
    state = LearnerState()
    for item, skills, ok, ts in history:
        state.observe(item, skills, ok, ts)
    sess = ort.InferenceSession(str(models / "learner" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    return float(sess.run(None, {"features": spec.encode(state, None, [skill], at)[None]})[0][0, 0])


def test_mastery_now_is_all_or_nothing_when_the_model_fails(svc, ana, monkeypatch):
    from appliance.errors import Unavailable

    answer(svc, ana, "e1", {"choice": 1})
    engine = svc.get("inference")

    def busy(*args, **kwargs):
        raise Unavailable("model learner is busy")

    monkeypatch.setattr(engine, "run", busy)
    with svc.db.read() as conn:
        assert svc.get("learner").mastery_now(conn, [(ana["id"], COURSE_ID, ["parts"])]) is None


def test_review_cards_wait_for_enough_answers_when_recorded_and_when_regraded(tmp_path):
    """With a threshold any right answer passes, only the number of answers decides: "parts" has four
    questions and needs 3 answers; "equivalent" has two (e5, e6) and needs 2, "add" one (e6) and needs 1,
    also when the second arrives as a teacher's grade of a written answer."""
    svc = learning_services(tmp_path / "data", None, learning__mastery_threshold="0.05")
    try:
        ana, teacher, class_id = _people(svc)

        def carded() -> set[str]:
            with svc.db.read() as conn:
                return {r[0] for r in conn.execute("SELECT skill_id FROM review_cards WHERE student_id = ?", (ana["id"],))}

        answer(svc, ana, "e1", RIGHT["e1"])
        answer(svc, ana, "e2", RIGHT["e2"])
        assert carded() == set()
        answer(svc, ana, "e3", RIGHT["e3"])
        assert carded() == {"parts"}
        answer(svc, ana, "e5", RIGHT["e5"])
        pending = answer(svc, ana, "e6", {"text": "Both are one half."})
        assert pending["graded_by"] == "pending" and carded() == {"parts"}
        with svc.db.read() as conn:
            attempt_id = conn.execute("SELECT id FROM attempts WHERE attempt_uid = ?", (pending["attempt_uid"],)).fetchone()[0]
        overrides.override(svc, teacher, class_id, attempt_id, True)
        assert carded() == {"parts", "equivalent", "add"}
    finally:
        svc.close()


def test_one_course_plan_cache_per_appliance(svc):
    """Next up, review cards, regrades and the teacher's reports read course plans from one cache of
    these services, not one each (and not one shared by two appliances in one process)."""
    from appliance.learning.plan import plans_of
    from appliance.services import Services

    assert plans_of(svc) is svc.get("learner").plans is plans_of(svc)
    other = Services.open(svc.cfg)
    try:
        assert plans_of(other) is not plans_of(svc)
    finally:
        other.close()


def test_a_lesson_is_done_when_the_learner_model_masters_its_skill(svc, ana):
    """With the learner model, a student right every time masters 'parts' before answering e4: the
    lesson is done at that answer, not before, as Next up moves on to the next lesson."""
    threshold = svc.cfg.learning.mastery_threshold
    got = []
    for ex in ("e1", "e2", "e3") * 3:
        got.append(answer(svc, ana, ex, RIGHT[ex]))
        if got[-1]["mastery"]["parts"] >= threshold:
            break
    assert len(got) >= 3 and got[-1]["mastery"]["parts"] >= threshold  # mastered, e4 never answered
    assert [r["lesson_status"] for r in got] == ["started"] * (len(got) - 1) + ["completed"]
    assert got[-1]["next"]["lesson_id"] != "what-is-a-fraction"


def _lesson_status(services, student, lesson_id: str) -> str | None:
    with services.db.read() as conn:
        row = conn.execute("SELECT status FROM lesson_progress WHERE student_id = ? AND lesson_id = ?",
                           (student["id"], lesson_id)).fetchone()
    return row[0] if row else None


def test_override_to_right_finishes_the_lesson_whose_last_wrong_answer_it_was(svc):
    # e5 right, e6 (free text) graded wrong by the model: the lesson is not done. The teacher's "right"
    # leaves every question's latest answer right: done, as if the answer had come in right.
    ana, teacher, class_id = _people(svc)
    answer(svc, ana, "e5", RIGHT["e5"])
    wrong = answer(svc, ana, "e6", WRONG_TEXT)
    assert (wrong["graded_by"], wrong["correct"], wrong["lesson_status"]) == ("model", False, "started")
    overrides.override(svc, teacher, class_id, _attempt_id(svc, wrong["attempt_uid"]), True)
    assert _lesson_status(svc, ana, "equal-fractions") == "completed"
    with svc.db.read() as conn:
        events = [json.loads(r[0]) for r in conn.execute("SELECT payload FROM outbox WHERE type = 'lesson_progress'")]
    assert events[-1]["lesson_id"] == "equal-fractions" and events[-1]["status"] == "completed"


def test_the_same_teacher_grade_twice_changes_nothing_the_second_time(svc):
    ana, teacher, class_id = _people(svc)
    wrong = answer(svc, ana, "e6", WRONG_TEXT)
    attempt_id = _attempt_id(svc, wrong["attempt_uid"])

    def snapshot():
        with svc.db.read() as conn:
            return (conn.execute("SELECT COUNT(*) FROM outbox WHERE type = 'grade_override'").fetchone()[0],
                    conn.execute("SELECT version FROM learner_state WHERE student_id = ?", (ana["id"],)).fetchone()[0],
                    [tuple(r) for r in conn.execute("SELECT skill_id, successes, failures, p_mastery FROM mastery"
                                                    " WHERE student_id = ? ORDER BY skill_id", (ana["id"],))])

    first = overrides.override(svc, teacher, class_id, attempt_id, True)
    after_first = snapshot()
    assert after_first[0] == 1
    again = overrides.override(svc, teacher, class_id, attempt_id, True)   # a second click on "Right"
    assert snapshot() == after_first and again["correct"] is True
    assert again["mastery"] == pytest.approx(first["mastery"])
    overrides.override(svc, teacher, class_id, attempt_id, False)          # a real change still counts
    assert snapshot()[0] == 2


def test_a_double_click_on_the_same_grade_is_no_conflict(svc, monkeypatch):
    """Two requests with the same grade both read the answer before either writes (a double click): the
    second finds the teacher's grade already there and answers "unchanged", not "graded again meanwhile"."""
    import threading

    ana, teacher, class_id = _people(svc)
    attempt_id = _attempt_id(svc, answer(svc, ana, "e6", WRONG_TEXT)["attempt_uid"])
    both_read = threading.Barrier(2, timeout=10)
    real = overrides.reviewable_attempt

    def read_then_wait(conn, a_id, c_id):
        row = real(conn, a_id, c_id)
        both_read.wait()
        return row

    monkeypatch.setattr(overrides, "reviewable_attempt", read_then_wait)
    replies, errors = [], []

    def click():
        try:
            replies.append(overrides.override(svc, teacher, class_id, attempt_id, True))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    clicks = [threading.Thread(target=click) for _ in range(2)]
    for t in clicks:
        t.start()
    for t in clicks:
        t.join()
    assert errors == [] and sorted(r["source"] != "unchanged" for r in replies) == [False, True]
    with svc.db.read() as conn:
        assert conn.execute("SELECT COUNT(*) FROM outbox WHERE type = 'grade_override'").fetchone()[0] == 1


def test_a_written_answer_waiting_for_the_teacher_is_not_asked_for_again(tmp_path):
    """Without the grading model, "explain it in your own words" was offered again right after the answer,
    and again after each new copy, until the teacher graded one (found in review)."""
    svc = learning_services(tmp_path / "data", None, learning__mastery_threshold="0.05",
                            learning__mastery_min_answers="1")
    try:
        ana = _people(svc)[0]
        for ex in ("e1", "e2", "e3", "e4", "e5"):
            reply = answer(svc, ana, ex, RIGHT[ex])
        # e6 is a question of "add" too (which builds on "equivalent"): Next up opens the lesson at it.
        assert (reply["next"]["skill_id"], reply["next"]["start"]) == ("add", "e6")
        pending = answer(svc, ana, "e6", {"text": "Both are one half."})
        assert pending["graded_by"] == "pending"
        assert pending["next"]["start"] != "e6" and pending["next"]["reason"] != "explain", pending["next"]
        # "add" has no other question: there is nothing more until the teacher has read it.
        assert pending["next"]["reason"] == "waiting_for_teacher"
    finally:
        svc.close()


def _all_answered_but_e6(tmp_path):
    """Services with no models (so e6 waits for the teacher) and Ana, who answered every other question
    right; mastery needs one answer."""
    svc = learning_services(tmp_path / "data", None, learning__mastery_threshold="0.05",
                            learning__mastery_min_answers="1")
    ana = _people(svc)[0]
    for ex in ("e1", "e2", "e3", "e4", "e5"):
        answer(svc, ana, ex, RIGHT[ex])
    return svc, ana


def _model_graded_e6(svc, student: dict, text: str, correct: bool, confidence: float) -> None:
    """An answer to the free-text question e6 as the grading model would have stored it."""
    svc.db.write(lambda c: c.execute(
        "INSERT INTO attempts (attempt_uid, student_id, course_id, exercise_id, answer, correct, score, confidence,"
        " graded_by, created_at) VALUES (?, ?, ?, 'e6', ?, ?, ?, ?, 'model', ?)",
        (str(uuid.uuid4()), student["id"], COURSE_ID, json.dumps({"text": text}), int(correct), float(correct),
         confidence, now_iso())))


def test_an_unsure_model_grade_waits_for_the_teacher_in_next_up_too(tmp_path):
    """The student was told only that the teacher will read the answer: Next up must not treat it as a
    wrong answer ("your last answer on it was not right") nor ask it again."""
    svc, ana = _all_answered_but_e6(tmp_path)
    try:
        _model_graded_e6(svc, ana, "half", False, svc.cfg.learning.review_below_confidence / 2)
        nxt = svc.get("learner").next_up(ana, COURSE_ID)
        assert (nxt["reason"], nxt["start"]) == ("waiting_for_teacher", None), nxt
    finally:
        svc.close()


def test_an_answer_given_again_since_no_longer_waits_in_next_up(tmp_path):
    """The student answered the question again after an answer that waited for the teacher: the later
    answer is the one that counts (the progress page and the lesson go by it), so Next up no longer
    holds the skill back for the teacher."""
    svc, ana = _all_answered_but_e6(tmp_path)
    try:
        assert answer(svc, ana, "e6", {"text": "Both are one half."})["graded_by"] == "pending"
        assert svc.get("learner").next_up(ana, COURSE_ID)["reason"] == "waiting_for_teacher"
        _model_graded_e6(svc, ana, "both are half", True, 0.95)
        assert svc.get("learner").next_up(ana, COURSE_ID)["reason"] != "waiting_for_teacher"
    finally:
        svc.close()


def test_the_home_page_moves_on_to_another_course_once_one_has_nothing_left(tmp_path):
    svc = learning_services(tmp_path / "data", None, learning__mastery_threshold="0.05",
                            learning__mastery_min_answers="1")
    try:
        seed_course(svc.db, "zz-second", title="Zeta fractions")
        ana = _people(svc)[0]
        for ex in ("e1", "e2", "e3", "e4", "e5"):
            answer(svc, ana, ex, RIGHT[ex])
        answer(svc, ana, "e6", {"text": "Both are one half."})  # waits for the teacher: nothing left here
        assert svc.get("learner").next_up(ana, COURSE_ID)["kind"] == "done"
        home = svc.get("learner").home(ana, "en")
        assert (home["course_id"], home["kind"]) == ("zz-second", "lesson")
    finally:
        svc.close()
