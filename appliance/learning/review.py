"""Spaced review of mastered skills, scheduled by FSRS (the ``fsrs`` package).

A skill gets a card the first time the learner model (or the rule estimate) says it is mastered;
that moment is its first successful review. After that every graded answer on the skill is a review:
right = ``Good``, wrong = ``Again``. FSRS then says when the student has about ``desired_retention``
chance of still knowing it, and the recommender offers a review once that date has passed.

Skills are reviewed through their exercises, which are never "learned" in the flash-card sense, so
the scheduler runs without (re)learning steps: a card goes straight to day-scale intervals.
Fuzzing is off so a schedule can be explained and tested; spreading reviews matters for a deck of
thousands of cards, not a course of a dozen skills.
"""
from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime

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


def _card_id(student_id: int, course_id: str, skill_id: str) -> int:
    # fsrs makes ids from the clock and sleeps 1 ms to keep them apart: not in the writer thread.
    digest = hashlib.blake2b(f"{student_id}:{course_id}:{skill_id}".encode(), digest_size=6).digest()
    return int.from_bytes(digest, "little")


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class Reviews:
    def __init__(self, settings):
        self.scheduler = make_scheduler(settings)

    def record(self, conn: sqlite3.Connection, student_id: int, course_id: str, skills, correct: bool,
               mastery: dict[str, float], threshold: float, at: datetime) -> list[str]:
        """Fold one graded answer into the cards of ``skills``; returns the skills that got a new card.

        Runs inside the answer's transaction (the writer thread): a select and an upsert per skill.
        """
        created = []
        for skill in skills:
            row = conn.execute("SELECT card, reviews FROM review_cards WHERE student_id = ? AND course_id = ? AND skill_id = ?",
                               (student_id, course_id, skill)).fetchone()
            if row is None:
                if not correct or mastery.get(skill, 0.0) < threshold:
                    continue  # not mastered yet: nothing to review
                card, reviews = Card(card_id=_card_id(student_id, course_id, skill)), 0
                created.append(skill)
            else:
                card, reviews = Card.from_dict(json.loads(row["card"])), row["reviews"]
            card, _log = self.scheduler.review_card(card, Rating.Good if correct else Rating.Again, at)
            conn.execute(
                "INSERT INTO review_cards (student_id, course_id, skill_id, card, due, reviews) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (student_id, course_id, skill_id) DO UPDATE SET card = excluded.card, due = excluded.due,"
                " reviews = excluded.reviews",
                (student_id, course_id, skill, json.dumps(card.to_dict()), iso(card.due), reviews + 1))
        return created

    def cards(self, conn: sqlite3.Connection, student_id: int, course_id: str, now: datetime) -> dict[str, Due]:
        """Every card of the student in the course: skill -> (due, chance of remembering it now)."""
        out = {}
        for r in conn.execute("SELECT skill_id, card FROM review_cards WHERE student_id = ? AND course_id = ?",
                              (student_id, course_id)):
            card = Card.from_dict(json.loads(r["card"]))
            out[r["skill_id"]] = Due(r["skill_id"], card.due, float(self.scheduler.get_card_retrievability(card, now)))
        return out
