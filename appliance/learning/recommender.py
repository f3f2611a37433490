"""What a student should do next in a course, and why, in words a child understands.

``recommend(plan, view, ...)`` is pure (no database, no model): the service gathers a ``StudentView``
(predicted success per exercise and per skill from the learner model, review cards, recent answers)
and this module decides, in order:

1. **Review** a skill the student mastered before whose FSRS review is due (most forgotten first).
2. **Practice** the exercise whose predicted success is closest to ``target_success`` among the skills
   the student has started and not mastered (nor mastered before, with a review card, unless the
   latest answer on it went wrong): hard enough to learn from, not so hard it discourages (desirable
   difficulty); an easier one too while the skill is short of the answers mastery needs. The question
   just answered, and one answered right minutes ago, are not offered; when only those are left, the
   lesson to look back at ("come back soon").
3. **Explain**: a skill mastered now whose own written ("explain why") question the student never
   answered gets that question before a new lesson.
4. A **new lesson** for a skill whose prerequisites are all mastered, when nothing in progress is near
   the target (or nothing is in progress). The link goes to the skill's first question not waiting for
   the teacher when the student has already worked in that lesson (they read it for an earlier skill).
5. **Relearn**: when every question in progress looks too hard after enough answers on the skill (as
   for mastery), read the lesson again (before that, one wrong answer is no reason to send a child back).
6. **Done**: every skill is mastered, and the answer says when the next review is due; or what is left
   waits for the teacher to read the student's answers, and the answer says so.

Answers waiting for the teacher (ungraded, or graded by the model too unsure to tell the student) are
answered, not graded: never asked again, and never "your last answer was not right". A skill no
question asks (a lesson to read) counts as met.

A skill is mastered *now* with enough graded answers (``CoursePlan.answers_to_master``: ``min_answers``,
or one per question for a skill with fewer) and a predicted success of ``threshold`` or more. A
prerequisite counts as met while it is mastered now, or once it was mastered (it has a review card) as
long as the student's latest answer to one of its own questions was right: the model's forgetting is for
reviews to handle, and re-locking later lessons would punish the student for a holiday; but a student
whose answers on it now go wrong is not ready to build on it, and practises it first.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import cached_property

from flask import has_app_context
from flask_babel import format_date
from flask_babel import gettext as _

from appliance.learning.plan import CoursePlan, Exercise
from appliance.learning.review import Due
from appliance.localtime import local_day

log = logging.getLogger(__name__)

# How far from the target a practice question may be before a new lesson is the better offer.
NEAR_TARGET = 0.2
# Above target + this, a practice question is described as one the student will probably get right:
# chosen as near the target it may be, but "hard enough to learn from" is not true of a 95% chance.
EASY_WORDING = 0.1
# Below this predicted success every question in progress is "too hard for now".
TOO_HARD = 0.4
RECENT_S = 600          # an exercise answered in the last 10 minutes is not offered again
FRESH_BONUS = 0.1       # prefer questions the student has not yet answered right


@dataclass
class StudentView:
    mastery: dict[str, float]                 # skill -> predicted success on a typical item, now
    predicted: dict[str, float]               # exercise -> predicted success, now
    practised: dict[str, int]                 # skill -> graded answers
    exercises: dict[str, tuple[int, bool, float]] = field(default_factory=dict)  # id -> (answers, last right, last at)
    cards: dict[str, Due] = field(default_factory=dict)                           # skill -> FSRS card
    source: str = "model"
    # id -> when the latest answer waiting for the teacher came (free text the model could not grade): no
    # grade to learn from, but answered; asking for it again would pile up copies for the teacher to read.
    waiting: dict[str, float] = field(default_factory=dict)


@dataclass
class Recommendation:
    kind: str                      # review | practice | lesson | relearn | done
    course_id: str
    why: str
    reason: str                    # machine code of ``why``
    lesson_id: str | None = None
    exercise_id: str | None = None
    title: str = ""
    skill_id: str | None = None
    skill: str | None = None
    predicted_success: float | None = None
    due: str | None = None
    source: str = "model"
    start: str | None = None       # the exercise the link opens at (the lesson's top when None)
    url: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def _chance(p: float) -> int:
    return int(round(p * 20) * 5)  # "about 70%": a child does not need 71.3%


def _date(d: datetime) -> str:
    # The day by the box's clock (Babel would write it in UTC: a day early or late far from Greenwich).
    # Outside a request (CLI, tests of the service) there is no locale to format for: ISO date.
    day = local_day(d)
    return format_date(day, "long") if has_app_context() else day.isoformat()


def _quoted(names) -> str:
    return ", ".join(_("“%(name)s”", name=n) for n in names)  # «…» in Spanish, „…“ in German


class _Rules:
    def __init__(self, plan: CoursePlan, view: StudentView, target: float, threshold: float, now: datetime,
                 min_answers: int):
        self.plan, self.view, self.target, self.threshold, self.now = plan, view, target, threshold, now
        self.now_s, self.min_answers = now.timestamp(), min_answers

    def enough_answers(self, s: str) -> bool:
        return self.view.practised.get(s, 0) >= self.plan.answers_to_master(s, self.min_answers)

    def mastered_now(self, s: str) -> bool:
        return self.plan.mastered(s, self.view.mastery.get(s, 0.0), self.view.practised.get(s, 0), self.threshold,
                                  self.min_answers)

    def last_answer_wrong(self, s: str) -> bool:
        """The student's latest graded answer to a question of the skill (``CoursePlan.tests_skill``) was wrong."""
        own = (i for i in self.plan.skill_exercises.get(s, []) if i in self.view.exercises and self.plan.tests_skill(i, s))
        latest = max((self.view.exercises[i] for i in own), key=lambda a: a[2], default=None)
        return latest is not None and not latest[1]

    def secured(self, s: str) -> bool:
        if not self.plan.skill_exercises.get(s):
            # No question asks it (the importer allows that: a lesson to read): nothing to master, and
            # the lessons built on it would otherwise stay locked for good.
            return True
        return self.mastered_now(s) or (s in self.view.cards and not self.last_answer_wrong(s))

    def unlocked(self, s: str) -> bool:
        skill = self.plan.skills.get(s)
        return skill is None or all(self.secured(p) for p in skill.prerequisites if p in self.plan.skills)

    def answered(self, exercise_id: str) -> bool:
        """Graded, or waiting for the teacher."""
        return exercise_id in self.view.exercises or exercise_id in self.view.waiting

    def score(self, ex: Exercise) -> tuple:
        p = self.view.predicted.get(ex.id, 0.5)
        answers, last_right, last_at = self.view.exercises.get(ex.id, (0, False, 0.0))
        if ex.id in self.view.waiting:
            answers, last_at = answers + 1, max(last_at, self.view.waiting[ex.id])
        penalty = 0.0
        if answers and last_right:
            penalty += FRESH_BONUS
        age = self.now_s - last_at
        if answers and age < RECENT_S:
            # More the more recent: when every question of a skill was answered in the last minutes, the
            # one just answered (maybe wrong, with its choices fresh in mind) still comes last.
            penalty += 1.0 + (RECENT_S - max(age, 0.0)) / RECENT_S
        lesson = self.plan.lesson(ex.lesson_id)
        return (round(abs(p - self.target) + penalty, 2), lesson.position if lesson else 0, ex.position)

    def best(self, exercise_ids) -> Exercise | None:
        pool = [self.plan.exercises[i] for i in exercise_ids if i in self.plan.exercises]
        pool = [ex for ex in pool if all(self.unlocked(s) for s in ex.skills)]
        return min(pool, key=self.score) if pool else None

    @cached_property
    def last_answered(self) -> str | None:
        """The question the student answered last in this course (graded or waiting); once per view."""
        times = {i: a[2] for i, a in self.view.exercises.items()}
        for i, at in self.view.waiting.items():
            times[i] = max(at, times.get(i, 0.0))
        return max(times, key=times.get, default=None)

    def just_done(self, exercise_id: str) -> bool:
        """Not worth asking again now: within ``RECENT_S`` of its answer, the question just answered (the
        same answer again straight away is a repeat, not counted: ``progress.REPEAT_WINDOW_S``; and
        after a wrong one its answer is on the screen), or one answered right."""
        answers, last_right, last_at = self.view.exercises.get(exercise_id, (0, False, 0.0))
        if not answers or self.now_s - last_at >= RECENT_S:
            return False
        return last_right or exercise_id == self.last_answered

    def skill_name(self, s: str) -> str:
        skill = self.plan.skills.get(s)
        return skill.name if skill else s

    def rec(self, kind: str, reason: str, why: str, *, ex: Exercise | None = None, lesson_id: str | None = None,
            skill: str | None = None, p: float | None = None, due: str | None = None,
            start: str | None = None) -> Recommendation:
        lesson_id = ex.lesson_id if ex is not None else lesson_id
        lesson = self.plan.lesson(lesson_id) if lesson_id else None
        title = ex.prompt if ex is not None else (lesson.title if lesson else self.plan.title)
        return Recommendation(kind, self.plan.course_id, why, reason, lesson_id, ex.id if ex else None, title, skill,
                              self.skill_name(skill) if skill else None,
                              None if p is None else round(p, 3), due, self.view.source, start=start or (ex.id if ex else None))


def recommend(plan: CoursePlan, view: StudentView, target: float, threshold: float, now: datetime,
              min_answers: int = 3) -> Recommendation:
    r = _Rules(plan, view, target, threshold, now, min_answers)
    return (_review(r) or _practice_or_lesson(r) or _done(r))


def _review(r: _Rules) -> Recommendation | None:
    # Due by the day, not the minute: a card answered at 10:05 with a one-day interval is due the next
    # day at 10:05, and a class that meets at 10:00 would meet it a lesson late.
    today = local_day(r.now)
    due = sorted((d for d in r.view.cards.values() if d.skill_id in r.plan.skills and local_day(d.due) <= today),
                 key=lambda d: d.retrievability)
    for d in due:
        # A question of the skill itself, where it has one: reviewing "fraction of a number" with a word
        # problem tests the word problem as much.
        own = [i for i in r.plan.skill_exercises.get(d.skill_id, []) if r.plan.tests_skill(i, d.skill_id)]
        ex = r.best(own) or r.best(r.plan.skill_exercises.get(d.skill_id, []))
        if ex is None:
            continue
        name = r.skill_name(d.skill_id)
        if r.last_answer_wrong(d.skill_id):
            why = _("Let's go back to “%(skill)s”. Your last answer on it was not right, and a little practice "
                    "now brings it back.", skill=name)
            reason = "review_after_mistake"
        else:
            why = _("Time to review “%(skill)s”. You mastered it before, and practising just as you start to "
                    "forget helps you remember it for longer.", skill=name)
            reason = "review_due"
        return r.rec("review", reason, why, ex=ex, skill=d.skill_id, p=r.view.predicted.get(ex.id))
    return None


def _practice_or_lesson(r: _Rules) -> Recommendation | None:
    # Started and not mastered now. A skill mastered before (it has a review card) that the model's
    # forgetting has taken under the threshold is FSRS's to bring back when its review is due, unless
    # the latest answer on it went wrong (``secured``).
    in_progress = [s for s in r.plan.skills if r.view.practised.get(s, 0) > 0 and not r.mastered_now(s)
                   and not (s in r.view.cards and r.secured(s)) and r.unlocked(s)]
    every = {i for s in in_progress for i in r.plan.skill_exercises.get(s, []) if i not in r.view.waiting}
    candidates = {i for i in every if not r.just_done(i)}
    ex = r.best(candidates)
    p = r.view.predicted.get(ex.id, 0.5) if ex else None
    if ex is not None and (abs(p - r.target) <= NEAR_TARGET
                           or (p > r.target and not r.enough_answers(_weakest_skill(r, ex)))):
        # Too easy is no reason to leave a skill a right answer or two short of mastered: it would never
        # be mastered (nor reviewed), losing to every new lesson.
        return _practice(r, ex, p)
    explain = _explain(r)
    if explain is not None:
        return explain
    new = _new_lesson(r)
    if new is not None:
        return new
    weakest = _weakest_skill(r, ex) if ex is not None else None
    if ex is not None and p < TOO_HARD and r.enough_answers(weakest):
        lessons = r.plan.skill_lessons.get(weakest, [ex.lesson_id])
        why = _("The questions on “%(skill)s” look hard for you right now. Reading the lesson again first will help.",
                skill=r.skill_name(weakest))
        return r.rec("relearn", "too_hard", why, lesson_id=lessons[0], skill=weakest, p=p)
    if ex is not None:
        return _practice(r, ex, p)
    resting = r.best(every)
    if resting is not None:
        # Only questions answered a moment ago are left on the skills in progress: the lesson to look
        # back at, and its questions again in a few minutes.
        skill = _weakest_skill(r, resting)
        why = _("More questions on “%(skill)s” come back in a few minutes. Until then, look back over the "
                "lesson.", skill=r.skill_name(skill))
        return r.rec("relearn", "come_back_soon", why, lesson_id=resting.lesson_id, skill=skill)
    return None


def _explain(r: _Rules) -> Recommendation | None:
    """A skill mastered now whose written question ("explain why...") the student never answered: that
    question before the next lesson. A strong student went through the whole course on choices and
    numbers, three right answers a skill, and never wrote a sentence; putting it in words is where a
    teacher sees the understanding behind the right answers. Once answered, it is never asked again here."""
    for s in r.plan.skills:
        if not r.mastered_now(s):
            continue
        # The skill's own questions (``tests_skill``): a word problem tagged "fraction of a number" is
        # a question of the word problems lesson, still to come.
        unanswered = [i for i in r.plan.skill_exercises.get(s, []) if i in r.plan.exercises
                      and r.plan.exercises[i].kind == "free_text" and not r.answered(i) and r.plan.tests_skill(i, s)]
        ex = r.best(unanswered)
        if ex is not None:
            why = _("You have mastered “%(skill)s”. Can you explain it in your own words? Your teacher can read "
                    "what you write.", skill=r.skill_name(s))
            return r.rec("practice", "explain", why, ex=ex, skill=s, p=r.view.predicted.get(ex.id))
    return None


def _weakest_skill(r: _Rules, ex: Exercise) -> str:
    return min((s for s in ex.skills if s in r.plan.skills), key=lambda s: r.view.mastery.get(s, 0.0),
               default=ex.skills[0])


def _practice(r: _Rules, ex: Exercise, p: float) -> Recommendation:
    skill = _weakest_skill(r, ex)
    name, chance = r.skill_name(skill), _chance(p)
    # The sentence must be true of this question: "not too hard" only near the target.
    if p < r.target - NEAR_TARGET:
        why = _("Practise “%(skill)s”: this one is tricky for you right now (your chance of getting it right is "
                "about %(chance)s%%). Take your time with it.", skill=name, chance=chance)
        reason = "tricky"
    elif p > r.target + EASY_WORDING:
        why = _("Practise “%(skill)s”: you will probably get this one right (your chance is about %(chance)s%%). A "
                "few more right answers make it stick.", skill=name, chance=chance)
        reason = "confidence"
    else:
        why = _("Practise “%(skill)s”: we think your chance of getting this one right is about %(chance)s%%. That "
                "is hard enough to learn from, but not too hard.", skill=name, chance=chance)
        reason = "desirable_difficulty"
    return r.rec("practice", reason, why, ex=ex, skill=skill, p=p)


def _new_lesson(r: _Rules) -> Recommendation | None:
    # A skill whose only answers wait for the teacher has no graded answer yet, but is not new: its
    # lesson opens at a question not yet answered, and when every one waits, there is nothing to offer.
    fresh = [s for s in r.plan.skills if r.view.practised.get(s, 0) == 0 and not r.secured(s) and r.unlocked(s)
             and r.plan.skill_lessons.get(s) and not all(i in r.view.waiting for i in r.plan.skill_exercises.get(s, []))]
    if not fresh:
        return None
    position = {le.id: le.position for le in r.plan.lessons}
    skill = min(fresh, key=lambda s: (position.get(r.plan.skill_lessons[s][0], 0), list(r.plan.skills).index(s)))
    lesson_id = r.plan.skill_lessons[skill][0]
    # Already worked in this lesson (it teaches an earlier skill too): open it at this skill's questions.
    worked_in = any(r.plan.exercises[i].lesson_id == lesson_id for i in (*r.view.exercises, *r.view.waiting)
                    if i in r.plan.exercises)
    start = next((i for i in r.plan.skill_exercises.get(skill, []) if r.plan.exercises[i].lesson_id == lesson_id
                  and i not in r.view.waiting), None) if worked_in else None
    prereqs = [p for p in r.plan.skills[skill].prerequisites if p in r.plan.skills]
    # Named by the lesson's title, as on the button under it: a child looked for a lesson called
    # "Fraction basics" (the skill) beside "Open the lesson: What is a fraction?".
    lesson = r.plan.lesson(lesson_id)
    title = lesson.title if lesson else r.skill_name(skill)
    if prereqs and worked_in:
        # Already in this lesson: "New for you: “Equal fractions”, because you have mastered “Equal
        # fractions”" (a lesson and a skill of one name) told the child nothing. Name the new skill.
        why = _("Next in “%(lesson)s”: “%(skill)s”. You are ready for it because you have mastered %(prereqs)s.",
                lesson=title, skill=r.skill_name(skill), prereqs=_quoted(r.skill_name(p) for p in prereqs))
        reason = "prerequisites_met"
    elif prereqs:
        why = _("New for you: “%(lesson)s”. You are ready for it because you have mastered %(prereqs)s.",
                lesson=title, prereqs=_quoted(r.skill_name(p) for p in prereqs))
        reason = "prerequisites_met"
    elif worked_in:
        why = _("Next in “%(lesson)s”: “%(skill)s”. You can start it now: it builds on nothing else.",
                lesson=title, skill=r.skill_name(skill))
        reason = "no_prerequisites"
    elif not r.view.exercises and not r.view.waiting:
        why = _("A good place to start: “%(lesson)s” comes first, with nothing to learn before it.", lesson=title)
        reason = "no_prerequisites"
    else:
        # Not "a good place to start" for a student four lessons in: another skill that needs nothing.
        why = _("New for you: “%(lesson)s”. You can start it now: it builds on nothing else.", lesson=title)
        reason = "no_prerequisites"
    return r.rec("lesson", reason, why, lesson_id=lesson_id, skill=skill, p=r.view.mastery.get(skill), start=start)


def _done(r: _Rules) -> Recommendation:
    waiting_on = [s for s in r.plan.skills if not r.secured(s)
                  and any(i in r.view.waiting for i in r.plan.skill_exercises.get(s, []))]
    if waiting_on:
        why = _("Your teacher will read your answers on %(skills)s. There is more to do here once they have.",
                skills=_quoted(r.skill_name(s) for s in waiting_on))
        return r.rec("done", "waiting_for_teacher", why, skill=waiting_on[0])
    upcoming = sorted((d for d in r.view.cards.values() if d.skill_id in r.plan.skills), key=lambda d: d.due)
    if upcoming and all(r.secured(s) for s in r.plan.skills):
        nxt = upcoming[0]
        why = _("You have mastered every skill in this course! Your next review, “%(skill)s”, is on %(date)s.",
                skill=r.skill_name(nxt.skill_id), date=_date(nxt.due))
        return r.rec("done", "all_mastered", why, skill=nxt.skill_id, due=nxt.due.isoformat())
    why = _("There is nothing to practise in this course right now.")
    return r.rec("done", "nothing_left", why)
