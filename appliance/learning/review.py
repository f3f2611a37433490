"""Spaced review of mastered skills, scheduled by FSRS (the ``fsrs`` package).

A skill gets a card the first time it is mastered: a right answer after which the learner model (or
the rule estimate) says it is, with enough graded answers on the skill (``CoursePlan.answers_to_master``:
one lucky answer of a strong student is no mastery). That moment is its first successful review. After
that every graded answer on the skill is a review: right = ``Good``, wrong = ``Again``. FSRS then says when the student has about ``desired_retention``
chance of still knowing it, and the recommender offers a review once that date has passed.

Skills are reviewed through their exercises, which are never "learned" in the flash-card sense, so
the scheduler runs without (re)learning steps: a card goes straight to day-scale intervals.
Fuzzing is off so a schedule can be explained and tested; spreading reviews matters for a deck of
thousands of cards, not a course of a dozen skills.

A card is a function of the skill's graded answers, oldest first (``fold`` is one step): when a teacher
changes a grade, ``appliance.learning.overrides`` folds the answers again into a new card and ``put``s it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial

from fsrs import Card, Rating, Scheduler

log = logging.getLogger(__name__)


@dataclass
class Due:
    skill_id: str
    due: datetime
    retrievability: float


def make_scheduler(settings) -> Scheduler:
    return Scheduler(desired_retention=float(settings.desired_retention), learning_steps=(), relearning_steps=(),
                     maximum_interval=int(settings.max_review_interval_days), enable_fuzzing=False)


def card_id(student_id: int, course_id: str, skill_id: str) -> int:
    # fsrs makes ids from the clock and sleeps 1 ms to keep them apart: not in the writer thread.
    digest = hashlib.blake2b(f"{student_id}:{course_id}:{skill_id}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "little")


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Reviews:
    def __init__(self, settings):
        self.scheduler = make_scheduler(settings)

    def record(self, conn: sqlite3.Connection, student_id: int, course_id: str, skills, correct: bool,
               mastery: dict[str, float], threshold: float, at: datetime,
               enough: Callable[[str], bool], tests: Callable[[str], bool] = lambda skill: True) -> list[str]:
        """Fold one graded answer into the cards of ``skills``; returns the skills that got a new card.
        ``enough(skill)``: the skill has enough graded answers to be mastered, this one included.
        ``tests(skill)``: the question is one of the skill's own (``CoursePlan.tests_skill``; see ``fold``).

        Runs inside the answer's transaction (the writer thread): a select and an upsert per skill.
        """
        created = []
        for skill in skills:
            row = conn.execute("SELECT card, reviews FROM review_cards WHERE student_id = ? AND course_id = ? AND skill_id = ?",
                               (student_id, course_id, skill)).fetchone()
            old = None if row is None else Card.from_dict(json.loads(row["card"]))
            card = self.fold(old, card_id(student_id, course_id, skill), correct, at,
                             partial(mastery.get, skill, 0.0), threshold, enough(skill), tests(skill))
            if card is None:
                continue  # not mastered yet: nothing to review
            if old is None:
                created.append(skill)
            put(conn, student_id, course_id, skill, card, (row["reviews"] if row else 0) + 1)
        return created

    def fold(self, card: Card | None, new_id: int, correct: bool, at: datetime, mastery: Callable[[], float],
             threshold: float, enough: bool, tested: bool = True) -> Card | None:
        """The card after one graded answer on its skill; None while the skill has none.

        A skill without a card gets one (``new_id``) on a right answer that leaves it mastered, once it has
        ``enough`` answers; ``mastery()`` (the skill's mastery after this answer) is asked only then, so a
        replay predicts no more than needed.

        A wrong answer to a question that is not ``tested`` as one of the skill's own (a word problem also
        tagged with the "fraction of a number" it builds on) leaves the card alone: the slip says more about
        the word problem, and rating the mastered skill Again would bring its review back the next day
        with "You mastered it before" for a skill the student still knows. A right one still counts.
        """
        if not correct and not tested:
            return card
        if card is None:
            if not correct or not enough or mastery() < threshold:
                return None
            card = Card(card_id=new_id)
        card, _log = self.scheduler.review_card(card, Rating.Good if correct else Rating.Again, at)
        return card

    def cards(self, conn: sqlite3.Connection, student_id: int, course_id: str, now: datetime) -> dict[str, Due]:
        """Every card of the student in the course: skill -> (due, chance of remembering it now)."""
        out = {}
        for r in conn.execute("SELECT skill_id, card FROM review_cards WHERE student_id = ? AND course_id = ?",
                              (student_id, course_id)):
            card = Card.from_dict(json.loads(r["card"]))
            out[r["skill_id"]] = Due(r["skill_id"], card.due, float(self.scheduler.get_card_retrievability(card, now)))
        return out


def put(conn: sqlite3.Connection, student_id: int, course_id: str, skill: str, card: Card | None, reviews: int) -> None:
    """Store the skill's card after ``reviews`` reviews; ``None`` removes it (the skill has none)."""
    if card is None:
        conn.execute("DELETE FROM review_cards WHERE student_id = ? AND course_id = ? AND skill_id = ?",
                     (student_id, course_id, skill))
        return
    conn.execute(
        "INSERT INTO review_cards (student_id, course_id, skill_id, card, due, reviews) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (student_id, course_id, skill_id) DO UPDATE SET card = excluded.card, due = excluded.due,"
        " reviews = excluded.reviews",
        (student_id, course_id, skill, json.dumps(card.to_dict()), iso(card.due), reviews))
