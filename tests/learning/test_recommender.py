"""The recommender's decisions on hand-made course plans and student views (no database, no model)."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from appliance.learning.plan import CoursePlan, Exercise, Lesson, Skill
from appliance.learning.recommender import StudentView, recommend
from appliance.learning.review import Due

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
TARGET, THRESHOLD = 0.75, 0.85


def make_plan() -> CoursePlan:
    skills = {"parts": Skill("parts", "Parts of a whole", ()),
              "equal": Skill("equal", "Equal fractions", ("parts",)),
              "add": Skill("add", "Adding", ("parts", "equal"))}
    lessons = [Lesson("l-parts", "What is a fraction?", 0, ("parts",)),
               Lesson("l-equal", "Equal fractions", 1, ("equal",)),
               Lesson("l-add", "Adding fractions", 2, ("add",))]
    exercises = {}
    for lesson, skill in (("l-parts", "parts"), ("l-equal", "equal"), ("l-add", "add")):
        for i in range(3):
            ex = Exercise(f"{skill}-{i}", lesson, len(exercises), "single_choice", f"{skill} question {i}", (skill,))
            exercises[ex.id] = ex
    plan = CoursePlan("c", "Fractions", "en", ("sha", "t"), skills, lessons, exercises)
    for ex in exercises.values():
        for s in ex.skills:
            plan.skill_exercises.setdefault(s, []).append(ex.id)
    for le in lessons:
        for s in le.skills:
            plan.skill_lessons.setdefault(s, []).append(le.id)
    return plan


def view(mastery=None, predicted=None, practised=None, **kw) -> StudentView:
    plan = make_plan()
    mastery = {"parts": 0.4, "equal": 0.4, "add": 0.4, **(mastery or {})}
    return StudentView(mastery=mastery, predicted={i: 0.5 for i in plan.exercises} | (predicted or {}),
                       practised=practised or {}, **kw)


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context():
        yield


def test_a_new_student_starts_with_the_skill_that_needs_nothing():
    rec = recommend(make_plan(), view(), TARGET, THRESHOLD, NOW)
    assert (rec.kind, rec.lesson_id, rec.skill_id, rec.reason) == ("lesson", "l-parts", "parts", "no_prerequisites")
    assert "Parts of a whole" in rec.why


def test_practice_picks_the_question_nearest_the_target_success():
    predicted = {"parts-0": 0.95, "parts-1": 0.72, "parts-2": 0.40}
    rec = recommend(make_plan(), view(predicted=predicted, practised={"parts": 2}), TARGET, THRESHOLD, NOW)
    assert (rec.kind, rec.exercise_id, rec.reason) == ("practice", "parts-1", "desirable_difficulty")
    assert rec.predicted_success == pytest.approx(0.72)
    assert "70%" in rec.why  # "about 70%": rounded to 5 for a child


def test_a_question_just_answered_right_is_not_offered_again():
    predicted = {"parts-0": 0.74, "parts-1": 0.70, "parts-2": 0.30}
    answered = {"parts-0": (1, True, NOW.timestamp() - 30)}
    rec = recommend(make_plan(), view(predicted=predicted, practised={"parts": 1}, exercises=answered),
                    TARGET, THRESHOLD, NOW)
    assert rec.exercise_id == "parts-1"


def test_locked_skills_wait_for_their_prerequisites():
    # "parts" is mastered now; "equal" needs only "parts"; "add" also needs "equal", so it stays locked.
    v = view(mastery={"parts": 0.9}, practised={"parts": 6})
    rec = recommend(make_plan(), v, TARGET, THRESHOLD, NOW)
    assert (rec.kind, rec.skill_id, rec.reason) == ("lesson", "equal", "prerequisites_met")
    assert "“Parts of a whole”" in rec.why
    # Even when "add" questions would sit exactly on the target, they are not offered before "equal".
    v = view(mastery={"parts": 0.9}, practised={"parts": 6, "add": 1}, predicted={"add-0": 0.75})
    rec = recommend(make_plan(), v, TARGET, THRESHOLD, NOW)
    assert rec.skill_id == "equal" and rec.exercise_id is None


def test_a_mastered_skill_stays_a_met_prerequisite_when_forgetting_sets_in():
    card = Due("parts", NOW + timedelta(days=3), 0.95)
    v = view(mastery={"parts": 0.7}, practised={"parts": 6}, cards={"parts": card}, predicted={"parts-0": 0.7})
    rec = recommend(make_plan(), v, TARGET, THRESHOLD, NOW)
    assert rec.skill_id in ("parts", "equal")
    assert rec.skill_id != "add"
    # The drop of "parts" to 0.7 sits near the target: practising it comes before the new lesson.
    assert (rec.kind, rec.skill_id) == ("practice", "parts")


def test_due_reviews_come_first_most_forgotten_first():
    cards = {"parts": Due("parts", NOW - timedelta(days=1), 0.88),
             "equal": Due("equal", NOW - timedelta(hours=2), 0.80)}
    v = view(mastery={"parts": 0.9, "equal": 0.9}, practised={"parts": 5, "equal": 5, "add": 1},
             predicted={"add-0": 0.75}, cards=cards)
    rec = recommend(make_plan(), v, TARGET, THRESHOLD, NOW)
    assert (rec.kind, rec.skill_id, rec.reason) == ("review", "equal", "review_due")
    assert rec.exercise_id.startswith("equal-")
    assert "review" in rec.why.lower()


def test_when_everything_in_progress_is_too_hard_the_lesson_is_read_again():
    v = view(mastery={"parts": 0.9, "equal": 0.9, "add": 0.2}, practised={"parts": 5, "equal": 5, "add": 3},
             predicted={"add-0": 0.2, "add-1": 0.25, "add-2": 0.22},
             cards={"parts": Due("parts", NOW + timedelta(days=5), 0.97), "equal": Due("equal", NOW + timedelta(days=5), 0.97)})
    rec = recommend(make_plan(), v, TARGET, THRESHOLD, NOW)
    assert (rec.kind, rec.lesson_id, rec.reason) == ("relearn", "l-add", "too_hard")


def test_everything_mastered_says_when_the_next_review_is():
    cards = {s: Due(s, NOW + timedelta(days=d), 0.97) for s, d in (("parts", 9), ("equal", 4), ("add", 6))}
    v = view(mastery={"parts": 0.95, "equal": 0.95, "add": 0.95}, practised={"parts": 5, "equal": 5, "add": 5},
             cards=cards)
    rec = recommend(make_plan(), v, TARGET, THRESHOLD, NOW)
    assert (rec.kind, rec.skill_id, rec.reason) == ("done", "equal", "all_mastered")
    assert "March 6, 2026" in rec.why


def test_reasons_are_translated(app):
    with app.test_request_context(headers={"Accept-Language": "es"}):
        rec = recommend(make_plan(), view(), TARGET, THRESHOLD, NOW)
        assert rec.why.startswith("Un buen sitio para empezar: «Parts of a whole»")
        v = view(predicted={"parts-1": 0.72}, practised={"parts": 2})
        assert "más o menos un 70%" in recommend(make_plan(), v, TARGET, THRESHOLD, NOW).why
