"""The learning features wired into the LMS: ``attach(services)`` (called by bootstrap.attach_components).

Provides
- ``learner``: the hooks of ``appliance.learning.progress``:
  ``prepare(student, exercise, correct)`` runs in the request thread BEFORE the write: it reads the
  student's ``LearnerState``, folds the answer in and asks the learner model for the new mastery of
  the answered item's skills (concurrent students' predictions batch in the engine);
  ``observe(conn, attempt)`` runs in the single writer thread and only persists: the state (if its row
  still has the version the prediction was made from; otherwise it recomputes, which only happens when
  one student's answers race each other) and the FSRS review cards; it returns the new mastery.
  ``next_up(student, course_id)`` recommends what to do next (``recommender``).
- ``semantic``: free-text grading by meaning (``semantic.SemanticGrader``).
- ``search``: search by meaning (``search.SearchIndex``).
and the ``learning`` status: which model each feature uses, or the rule estimate / word search it falls
back to, and why.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.languages import base_language, in_language_sql
from appliance.learning import learner_state
from appliance.learning.embedder import Embedder
from appliance.learning.features import LearnerState
from appliance.learning.grading import NEEDS_TEACHER_SQL, WAITING_SQL
from appliance.learning.plan import CoursePlan, plans_of
from appliance.learning.predictor import LearnerPredictor
from appliance.learning.recommender import StudentView, recommend
from appliance.learning.review import Reviews
from appliance.learning.search import SearchIndex, url_of
from appliance.learning.semantic import SemanticGrader
from appliance.services import PartStatus, Services

log = logging.getLogger(__name__)

FORECAST_TTL_S = 60.0  # a forecast older than this is made again (days-since-practice features move)
# Answers in a course of another language before the home page offers it as Next up: one or two are a
# look around (a Spanish class's pupil tried the English course once and the home page switched to it).
SWITCH_AFTER = 3
# Other courses the home page asks Next up of when the chosen one has nothing left (one learner-model
# run each, on every home page a student who finished a course opens).
HOME_COURSES_TRIED = 3


@dataclass
class Forecast:
    """Predicted success on a typical item of every skill and on every exercise of a course."""
    skills: dict[str, float]
    exercises: dict[str, float]
    source: str
    at: float


@dataclass
class Prepared:
    """A prediction made outside the writer, valid while the state row still has ``base``."""
    student_id: int
    course_id: str
    exercise_id: str
    base: int | None
    state: LearnerState
    mastery: dict[str, float]
    forecast: Forecast
    written: int | None = None  # the version observe() stored the state under (set in the writer thread)


class LearnerService:
    def __init__(self, services: Services, predictor: LearnerPredictor):
        self.services = services
        self.settings = services.cfg.learning
        self.predictor = predictor
        self.reviews = Reviews(self.settings)
        self.plans = plans_of(services)
        self.stats = {"prepared": 0, "recomputed": 0}
        # The answer's request thread runs prepare(), then (after the write) next_up(): the forecast made
        # for the first serves the second, so an answer costs one learner-model call, not two.
        self._local = threading.local()
        self.clock = time.time  # "now" for predictions and Next up (a test moves it weeks ahead)

    # -- after an answer ---------------------------------------------------------------------------
    def prepare(self, student: dict, exercise: dict, correct: bool) -> Prepared:
        now = self.clock()
        course_id = exercise["course_id"]
        with self.services.db.read() as conn:
            stored = learner_state.load(conn, student["id"], course_id)
            plan = self.plans.get(conn, course_id)
        state = stored.state
        state.observe(exercise["id"], exercise["skills"], correct, now)
        forecast = self._forecast(plan, state, now, exercise["skills"])
        mastery = {s: round(forecast.skills[s], 4) for s in exercise["skills"]}
        prepared = Prepared(student["id"], course_id, exercise["id"], stored.version, state, mastery, forecast)
        self._local.prepared = prepared
        return prepared

    def _forecast(self, plan: CoursePlan, state: LearnerState, now: float, extra_skills=()) -> Forecast:
        skills = list(dict.fromkeys([*plan.skills, *extra_skills]))
        exercises = list(plan.exercises.values())
        pred = self.predictor.predict(state, [(None, [s]) for s in skills]
                                      + [(ex.id, list(ex.skills)) for ex in exercises], now)
        return Forecast(dict(zip(skills, pred.p[:len(skills)])),
                        {ex.id: p for ex, p in zip(exercises, pred.p[len(skills):])}, pred.source, now)

    def _mastery(self, state: LearnerState, skills, now: float) -> tuple[dict[str, float], str]:
        pred = self.predictor.predict(state, [(None, [s]) for s in skills], now)
        return {s: round(p, 4) for s, p in zip(skills, pred.p)}, pred.source

    def mastery_now(self, conn, wanted: list[tuple[int, str, list[str]]],
                    now: float | None = None) -> list[dict[str, float]] | None:
        """The learner model's mastery now, for each (student id, course id, skills) asked, in one
        model run. ``mastery.p_mastery`` holds the estimate right after the last answer; the model lets
        it fade while a skill goes unpractised, so the pages a teacher or student reads ask again.
        None when the model is not serving or the run failed: the stored values (the rule's when no
        model was serving at the answer) stand, for everyone on the page."""
        if not self.predictor.available()[0]:
            return None
        items = [(learner_state.load(conn, sid, cid).state, [(None, [s]) for s in skills]) for sid, cid, skills in wanted]
        preds = self.predictor.predict_many(items, self.clock() if now is None else now)
        if preds is None:
            return None
        return [{s: round(p, 4) for s, p in zip(skills, pred.p)} for (_sid, _cid, skills), pred in zip(wanted, preds)]

    def observe(self, conn, attempt: dict) -> dict | None:
        """In the writer: persist state and review cards; the model's mastery (None = keep the rule's)."""
        sid, cid, skills = attempt["student_id"], attempt["course_id"], attempt["skills"]
        version = learner_state.current_version(conn, sid, cid)
        prepared = attempt.get("prepared")
        if isinstance(prepared, Prepared) and prepared.exercise_id == attempt["exercise_id"] and prepared.base == version:
            state, mastery, source = prepared.state, prepared.mastery, prepared.forecast.source
            prepared.written = (version or 0) + 1
            self.stats["prepared"] += 1
        else:
            # Another answer of this student was stored since the prediction (or none was made).
            stored = learner_state.load(conn, sid, cid, exclude_uid=attempt["attempt_uid"])
            state = stored.state
            at = learner_state.epoch_of(attempt["created_at"])
            state.observe(attempt["exercise_id"], skills, bool(attempt["correct"]), at)
            mastery, source = self._mastery(state, skills, at)
            self.stats["recomputed"] += 1
        learner_state.save(conn, sid, cid, state, (version or 0) + 1, attempt["created_at"])
        if source != "model":
            # The rule estimate progress.py just wrote is what the cards go by.
            mastery = {r[0]: r[1] for r in conn.execute(
                "SELECT skill_id, p_mastery FROM mastery WHERE student_id = ? AND course_id = ?", (sid, cid))
                if r[0] in skills}
        at_dt = datetime.fromisoformat(attempt["created_at"])
        plan, least = self.plans.get(conn, cid), self.settings.mastery_min_answers
        self.reviews.record(conn, sid, cid, skills, bool(attempt["correct"]), mastery,
                            self.settings.mastery_threshold, at_dt,
                            lambda s: state.answers_on(s) >= plan.answers_to_master(s, least),
                            lambda s: plan.tests_skill(attempt["exercise_id"], s))
        return mastery if source == "model" else None

    # -- what next -------------------------------------------------------------------------------
    def _own_forecast(self, conn, student_id: int, course_id: str, now: float) -> Prepared | None:
        """This thread's forecast from prepare(), if it is for this student and course, was stored, and
        nothing (another answer, a teacher's grade) has changed the state since."""
        prepared = getattr(self._local, "prepared", None)
        self._local.prepared = None
        if (prepared is None or prepared.written is None or prepared.student_id != student_id
                or prepared.course_id != course_id or now - prepared.forecast.at > FORECAST_TTL_S):
            return None
        return prepared if learner_state.current_version(conn, student_id, course_id) == prepared.written else None

    def next_up(self, student: dict, course_id: str) -> dict | None:
        now = self.clock()
        now_dt = datetime.fromtimestamp(now, UTC)
        with self.services.db.read() as conn:
            plan = self.plans.get(conn, course_id)
            own = self._own_forecast(conn, student["id"], course_id, now)
            state = own.state if own else learner_state.load(conn, student["id"], course_id).state
            # A model grade too unsure to tell the student waits for the teacher like an ungraded answer:
            # Next up must not say "your last answer on it was not right" while the page says "your
            # teacher will read this answer".
            args = (student["id"], course_id, self.services.cfg.learning.review_below_confidence)
            answered = {r["exercise_id"]: (r["n"], bool(r["correct"]), learner_state.epoch_of(r["created_at"]))
                        for r in conn.execute(
                            "SELECT exercise_id, COUNT(*) AS n, correct, created_at, MAX(id) FROM attempts a"
                            f" WHERE student_id = ? AND course_id = ? AND NOT {NEEDS_TEACHER_SQL} GROUP BY exercise_id",
                            args)}
            waiting = {r[0]: learner_state.epoch_of(r[1]) for r in conn.execute(
                "SELECT exercise_id, MAX(created_at) FROM attempts a WHERE student_id = ? AND course_id = ?"
                f" AND {WAITING_SQL} GROUP BY exercise_id", args)}
            cards = self.reviews.cards(conn, student["id"], course_id, now_dt)
        forecast = own.forecast if own else self._forecast(plan, state, now)
        view = StudentView(
            mastery=forecast.skills, predicted=forecast.exercises,
            practised={s: state.answers_on(s) for s in state.skills},
            exercises=answered, cards=cards, source=forecast.source, waiting=waiting)
        rec = recommend(plan, view, self.settings.target_success, self.settings.mastery_threshold, now_dt,
                        self.settings.mastery_min_answers)
        if rec.lesson_id:
            rec.url = url_of(course_id, rec.lesson_id, rec.start)
        out = rec.to_json()
        out["course_title"] = plan.title
        out["course_language"] = plan.language  # the page marks the title and reason as that language
        return out

    def home(self, student: dict, language: str | None) -> dict | None:
        """Next up for the student home: the course in their language worked on last; else a course in
        another language they work in (``SWITCH_AFTER`` answers or more there), the one worked on last;
        else the first course in their language, else the first course. A question or two tried in
        another language's course does not switch the home page to it, even before the student has
        answered anything in their own language's course."""
        lang = base_language(language)
        in_language = in_language_sql("c.language")
        with self.services.db.read() as conn:
            row = conn.execute("SELECT a.course_id FROM attempts a JOIN courses c ON c.id = a.course_id"
                               f" WHERE a.student_id = :student AND {in_language} ORDER BY a.id DESC LIMIT 1",
                               {"student": student["id"], "lang": lang}).fetchone()
            if row is None:
                # Joined with courses: the answers of a removed course are kept, its Next up is gone.
                row = conn.execute("SELECT a.course_id FROM attempts a JOIN courses c ON c.id = a.course_id"
                                   " WHERE a.student_id = ? GROUP BY a.course_id HAVING COUNT(*) >= ?"
                                   " ORDER BY MAX(a.id) DESC LIMIT 1", (student["id"], SWITCH_AFTER)).fetchone()
            if row is None:
                row = conn.execute(f"SELECT c.id FROM courses c WHERE {in_language_sql('c.language')}"
                                   " ORDER BY c.title LIMIT 1", {"lang": lang}).fetchone()
            if row is None:
                row = conn.execute("SELECT id FROM courses ORDER BY title LIMIT 1").fetchone()
            others = [] if row is None else [r[0] for r in conn.execute(
                f"SELECT c.id FROM courses c WHERE {in_language} AND c.id != :course ORDER BY c.title LIMIT :most",
                {"lang": lang, "course": row[0], "most": HOME_COURSES_TRIED})]
        if row is None:
            return None
        first = self.next_up(student, row[0])
        if first is None or first["kind"] != "done":
            return first
        # Nothing left to do in that course now: the next course in the student's language that has
        # something (a finished course's Next up stood on the home page while another waited unstarted).
        for course_id in others:
            other = self.next_up(student, course_id)
            if other is not None and other["kind"] != "done":
                return other
        return first


def learning_status(predictor: LearnerPredictor, embedder: Embedder, learner: LearnerService) -> PartStatus:
    l_ok, l_why = predictor.available()
    e_ok, e_why = embedder.available()
    detail = [f"mastery and next up by {l_why}" if l_ok else f"mastery and next up use a rule estimate: {l_why}",
              f"free text and search by {e_why}" if e_ok
              else f"free-text answers wait for the teacher and search matches words: {e_why}"]
    extra = {"learner_model": {"ready": l_ok, "detail": l_why}, "embedding_model": {"ready": e_ok, "detail": e_why},
             "answers": dict(learner.stats)}
    return PartStatus("learning", "ok" if l_ok and e_ok else "degraded", "; ".join(detail), extra)


def attach(services: Services) -> LearnerService:
    """Runtime hook: the learner hooks, free-text grading and search for this process."""
    s = services.cfg.learning
    predictor = LearnerPredictor(services, s.learner_model)
    embedder = Embedder(services, s.embedding_model)
    learner = LearnerService(services, predictor)
    services.provide("learner", learner)
    services.provide("semantic", SemanticGrader(services.db, embedder))
    services.provide("search", SearchIndex(services.db, embedder, s))
    services.report_status("learning", lambda: learning_status(predictor, embedder, learner))
    ok_l, why_l = predictor.available()
    ok_e, why_e = embedder.available()
    log.info("learning: %s; %s", why_l if ok_l else f"rule estimate ({why_l})",
             why_e if ok_e else f"no grading by meaning ({why_e})")
    return learner
