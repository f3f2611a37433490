"""Free-text answers graded by meaning, with a threshold calibrated per exercise on the serving model.

Similarity = the best cosine between the answer and the exercise's reference answers, embedded by the
int8 MiniLM that the box serves, discounted when the answer is closer to the question than to any
reference (``calibrate.effective``: restating the question is not an answer). One fixed threshold cannot fit every exercise: a short factual
reference ("Yes, because 5 is more than 4") sits closer to everything than a long explanation, and an
English encoder scores Spanish paraphrases lower. So each exercise gets its own threshold, calibrated
on the same int8 model (``calibrate.choose_threshold``) from
- positives: each reference scored against the other references (how far apart right answers can be),
  and shortened references (a right answer a child writes is often incomplete),
- negatives: the question itself (copying it is not an answer), the other questions of the course and
  their reference answers (on topic but wrong), and everyday non-answers ("I don't know"),
- wrong answers: the spec's optional ``wrong_answers`` (classic misconceptions, "The numerator."), the
  only negatives that are on topic for this very question; they weigh as much as all the others, and
  without them a threshold never goes below the default (``calibrate.choose_threshold``).
The result is stored in ``semantic_calibration`` per exercise and model version, computed on first
use for all free-text exercises of the course at once (one batch through the engine).

An answer clearly nearer one of the author's wrong answers than every reference (``CLEARLY_WRONG_SHARE``)
is wrong whatever its similarity; one only a little nearer keeps the threshold's verdict with low
confidence, so the teacher reads it first. A grade's confidence is how far the similarity lies from the threshold, in units of that exercise's
calibrated spread (``calibrate.confidence``), and low whatever the threshold when the answer is about as
close to one of the author's wrong answers as to the best reference: the teacher's review page lists the
least confident grades first. A threshold the
course author set in the exercise spec wins over the calibrated one.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import logging
import threading
from dataclasses import dataclass

import numpy as np

from appliance.errors import Unavailable
from appliance.languages import base_language
from appliance.learning.calibrate import (
    Calibration,
    choose_threshold,
    confidence,
    effective,
    negatives_for,
    shortened,
    wrong_answers_of,
)
from appliance.learning.search import course_version
from appliance.learning.spelling import CourseWords, CourseWordsCache, fold, other_language
from appliance.store.database import now_iso

log = logging.getLogger(__name__)


# Within this much similarity of a known-wrong answer a grade is a coin toss: the model cannot tell
# "how many parts the whole is cut into" from "how many parts you take" much better than that.
WRONG_ANSWER_MARGIN = 0.1
# An answer whose distance (1 - raw cosine) to one of the author's wrong answers is at most this share of
# its distance to the nearest reference is graded wrong whatever its similarity: it is nearly that
# wrong answer. Less is no evidence with this encoder: right answers to "why is 1/3 bigger than 1/4?"
# come to 0.5 of the way, next to "1/4 is bigger because 4 is more than 3" (tests/learning/test_semantic.py).
CLEARLY_WRONG_SHARE = 0.4
UNSURE = 0.25  # the confidence of a grade the teacher should read first (below review_below_confidence)
# How much wider a wrong grade's band of doubt is for an answer to a course in a language the encoder
# was not trained on. Its references are paraphrases of each other, so they calibrate a narrow spread,
# but a child's own words in that language land farther from them than an English child's do: "en
# cuántos trozos se parte la cosa entera" (right) scored 0.64 against a threshold of 0.72 and was
# graded wrong with confidence 0.87, so no teacher saw it. Three times the spread sends the two right
# answers of bench.grading's labelled set that were "sure" wrong to the teacher (4 more of 91 answers
# to read), and no wrong answer is graded right for it: only the confidence of wrong grades changes.
FOREIGN_SPREAD = 3.0
# An exercise with one reference answer gives calibration no paraphrase to learn from: its only
# positives are shortened copies of that reference, scored against the reference itself (0.78-0.89),
# so the spread fitted on them is the floor, and a right answer in other words was graded wrong and
# sure: "they are both 50%" (0.60 against a threshold of 0.70, for "Explain why 1/2 and 2/4 are the
# same amount.", reference "Both are half of the whole.") with confidence 0.93. With one reference,
# right answers in a child's words score 0.42-0.83 and on-topic wrong ones 0.24-0.75 (bench.grading,
# "one_reference": the demo courses' questions cut down to their first reference), so the grade is
# only sure far from the threshold: the spread is at least this, and answers within about 0.27 of
# the threshold go to the teacher.
ONE_REFERENCE_MIN_SPREAD = 0.25
# An answer at least this similar to its question is on the question's topic (a restated question
# scores 0.8-0.96; "I like pizza", 0.05).
ON_TOPIC = 0.5
# An answer (four words or more) that is, word for word, most of one of the author's wrong answers
# (``LEXICAL_WRONG_SHARE`` of its words found there in order) and clearly less of every reference
# (``LEXICAL_MARGIN``) is that wrong answer, whatever the encoder says: "porque 4 es mas grande que 3"
# was graded right (unsure) next to the wrong answer "Porque 4 es un número más grande que 3...". In
# bench.grading's labelled set this catches 11 wrong answers, 3 of them graded right before, and no
# right one.
LEXICAL_WRONG_SHARE = 0.8
LEXICAL_MARGIN = 0.25
LEXICAL_MIN_WORDS = 4


def _in_order_share(words: list[str], other: list[str]) -> float:
    """The share of ``words`` found in ``other`` in the same order (longest common subsequence)."""
    matcher = difflib.SequenceMatcher(a=words, b=other, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / max(1, len(words))


# The first word of an answer to a yes/no question ("Is Lena right?"), folded: the encoder hears
# "No, she is wrong: half of 10 is 5..." as nearly "Yes, she is right: half of 10 is 5...".
_YES = frozenset({"yes", "yeah", "yep", "si"})
_NO = frozenset({"no", "nope", "nah"})


def _polarity(text: str) -> str | None:
    words = fold(text)
    if not words:
        return None
    if words[0] in _NO and words[1:2] != ["se"]:  # "no sé": I don't know, no answer to the question
        return "no"
    return "yes" if words[0] in _YES else None


def says_the_opposite(text: str, references: list[str]) -> bool:
    """Every reference starts with "yes" (or every one with "no") and the answer starts with the other."""
    said = {_polarity(r) for r in references}
    if len(said) != 1 or None in said:
        return False
    answer = _polarity(text)
    return answer is not None and answer not in said


def words_of_a_wrong_answer(text: str, references: list[str], wrong: list[str]) -> bool:
    """``text`` repeats one of the author's wrong answers, by its words (see ``LEXICAL_WRONG_SHARE``)."""
    words = fold(text)
    if len(words) < LEXICAL_MIN_WORDS or not wrong:
        return False
    to_wrong = max(_in_order_share(words, fold(w)) for w in wrong)
    to_ref = max((_in_order_share(words, fold(r)) for r in references), default=0.0)
    return to_wrong >= LEXICAL_WRONG_SHARE and to_wrong - to_ref >= LEXICAL_MARGIN


def refs_sha(spec: dict) -> str:
    """What a calibration depends on: the references and the author's wrong answers (and the rules:
    v2 floors thresholds calibrated without wrong answers at the default, so v1 rows are redone)."""
    what = {"v": 2, "references": list(spec.get("references", [])), "wrong_answers": wrong_answers_of(spec)}
    return hashlib.sha256(json.dumps(what, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@dataclass
class Judgement:
    similarity: float
    threshold: float
    confidence: float
    # Nearer one of the author's wrong answers than every reference: wrong, whatever the threshold
    # ("add 2 to the top and the bottom" is on topic, and close to the right answer's words).
    closer_to_wrong: bool = False

    @property
    def correct(self) -> bool:
        return self.similarity >= self.threshold and not self.closer_to_wrong


class BoundJudge:
    """``judge(text)`` for one exercise (what ``grading.grade`` uses for free text)."""

    def __init__(self, grader: SemanticGrader, exercise: dict):
        self.grader, self.exercise = grader, exercise

    def judge(self, text: str) -> Judgement:
        return self.grader.judge(self.exercise, text)

    def __call__(self, text: str, references: list[str]) -> float:
        return self.grader(text, references)


class SemanticGrader:
    def __init__(self, db, embedder):
        self.db = db
        self.embedder = embedder
        self._calibrations: dict[tuple, Calibration] = {}
        self._lock = threading.Lock()
        self._course_locks: dict[str, threading.Lock] = {}
        self._course_words = CourseWordsCache()

    def available(self) -> tuple[bool, str]:
        return self.embedder.available()

    # -- the contract of appliance.learning.grading -----------------------------------------------
    def __call__(self, text: str, references: list[str]) -> float:
        """Best cosine between ``text`` and the references, clipped to [0, 1]."""
        refs = [r for r in references if isinstance(r, str) and r.strip()]
        if not refs:
            return 0.0
        ans = self.embedder.embed([text]).vectors
        ref = self.embedder.embed(refs, cache=True).vectors
        return float(np.clip((ref @ ans[0]).max(), 0.0, 1.0))

    def for_exercise(self, exercise: dict) -> BoundJudge | None:
        """A judge for ``exercise``, or None when the model is not loaded (the answer waits for a teacher)."""
        if self.embedder.loaded() is None:
            return None
        return BoundJudge(self, exercise)

    def judge(self, exercise: dict, text: str, reread: bool = True) -> Judgement:
        """The answer's grade. A misspelt answer is read a second time with its words put right to the
        course's (``spelling.respell``): when the two readings disagree, the answer is right if either
        reading is, and the teacher reads it first (the respelling may have changed a right word
        the course does not use, or put right what the child misspelt). ``reread=False``: the answer as
        typed only (``bench.grading`` compares the two)."""
        as_typed = self._judge(exercise, text)
        respelt = self.read_as(exercise["course_id"], text) if reread else ""
        if not respelt:
            return as_typed
        put_right = self._judge(exercise, respelt)
        if put_right.correct == as_typed.correct:
            return as_typed
        better = put_right if put_right.correct else as_typed
        return dataclasses.replace(better, confidence=min(better.confidence, UNSURE))

    def read_as(self, course_id: str, text: str) -> str:
        """``text`` with its misspelt words put right to the course's, "" when none is (what the teacher's
        review page shows next to the answer, and the second reading ``judge`` grades). An answer in
        another language than the course's is not misspelt: it is left as written."""
        if other_language(text, self._course_language(course_id)):
            return ""
        return self._words(course_id).respell(text)

    def _encoder_reads(self, course_id: str) -> bool:
        """The encoder was trained on the course's language (``Embedder.languages``)."""
        languages = getattr(self.embedder, "languages", None)  # a test double may not say
        return base_language(self._course_language(course_id)) in (languages() if languages else ("en",))

    def _course_language(self, course_id: str) -> str | None:
        with self.db.read() as conn:
            row = conn.execute("SELECT language FROM courses WHERE id = ?", (course_id,)).fetchone()
        return row[0] if row else None

    def _words(self, course_id: str) -> CourseWords:
        """The course's words (``spelling.course_words``), made once per course version."""
        with self.db.read() as conn:
            return self._course_words.get(conn, course_id, course_version(conn, course_id))

    def _judge(self, exercise: dict, text: str) -> Judgement:
        spec = exercise["spec"] if isinstance(exercise["spec"], dict) else json.loads(exercise["spec"])
        refs = [r for r in spec.get("references", []) if isinstance(r, str) and r.strip()]
        wrong = wrong_answers_of(spec)
        similarity, to_ref, to_wrong, to_question = 0.0, 0.0, None, 0.0
        if refs:
            ans = self.embedder.embed([text], alone=True).vectors[0]  # the same grade whoever else answers
            known = self.embedder.embed(refs + wrong + [exercise.get("prompt") or ""], cache=True).vectors
            to_ref = similarity = float(np.clip((known[:len(refs)] @ ans).max(), 0.0, 1.0))
            if wrong:
                to_wrong = float(np.clip((known[len(refs):-1] @ ans).max(), 0.0, 1.0))
            if exercise.get("prompt"):
                to_question = float(known[-1] @ ans)
                similarity = max(0.0, effective(similarity, to_question))
        try:
            cal = self.calibration(exercise)
        except Unavailable as exc:  # e.g. the model was swapped mid-calibration: grade now, calibrate later
            log.warning("calibration of %s/%s failed (%s); default threshold used", exercise["course_id"],
                        exercise["id"], exc.message)
            cal = choose_threshold([], [], refs_sha(spec))
        threshold = float(spec["threshold"]) if spec.get("threshold") is not None else cal.threshold
        spread = cal.spread
        if len(refs) == 1:
            # Where the grade is made, so it holds for a stored calibration and the fallback default
            # alike; before the foreign widening, which applies to the evidence's own spread.
            spread = max(spread, ONE_REFERENCE_MIN_SPREAD)
        if similarity < threshold and not self._encoder_reads(exercise["course_id"]):
            spread *= FOREIGN_SPREAD
        sure = confidence(similarity, threshold, spread)
        closer_to_wrong = False
        if to_wrong is not None:
            # Raw cosines on both sides (the question discount applies to references only).
            if 1.0 - to_wrong <= CLEARLY_WRONG_SHARE * (1.0 - to_ref) or words_of_a_wrong_answer(text, refs, wrong):
                closer_to_wrong = True  # far nearer a known-wrong answer: wrong whatever the threshold
                if similarity >= threshold:
                    sure = min(sure, UNSURE)  # it overrules the threshold: the teacher looks first
            elif to_wrong > to_ref and similarity >= threshold - WRONG_ANSWER_MARGIN:
                # Nearer a known-wrong answer, by less than the encoder can be trusted with ("1/3 is
                # bigger than 1/4 because..." sits next to "1/4 is bigger because..."): the threshold's
                # verdict stands, but the teacher reads it first and the student hears no verdict.
                sure = min(sure, UNSURE)
            elif abs(similarity - to_wrong) < WRONG_ANSWER_MARGIN and max(similarity, to_wrong) >= threshold - WRONG_ANSWER_MARGIN:
                # As near a known-wrong answer as to the best reference, and near enough to either to pass:
                # a teacher should look at it first. (Far from both, e.g. "I like pizza.", is surely wrong.)
                sure = min(sure, abs(similarity - to_wrong) / WRONG_ANSWER_MARGIN * 0.5)
        if not closer_to_wrong and refs and says_the_opposite(text, refs):
            closer_to_wrong = True  # "No, ..." to a question every reference answers "Yes, ..."
            if similarity >= threshold:
                sure = min(sure, UNSURE)  # it overrules the encoder: the teacher looks first
        if len(refs) == 1 and similarity < threshold and not closer_to_wrong and to_question >= max(to_ref, ON_TOPIC):
            # On the question's topic but away from the one reference: the reference is one way of saying
            # a right answer, and the encoder cannot tell a restated question from a right answer in the
            # question's own terms ("Because 2/4 is the same as 1/2.", 0.34 from "Both are half of the
            # whole." and 0.86 from its question, was graded wrong with confidence 1.0). The teacher reads it.
            sure = min(sure, UNSURE)
        if (similarity < threshold or closer_to_wrong) and self._other_language(exercise, text):
            sure = min(sure, UNSURE)  # a right answer in the other language scores like nonsense: ask the teacher
        return Judgement(round(similarity, 4), round(threshold, 4), round(sure, 4), closer_to_wrong)

    def _other_language(self, exercise: dict, text: str) -> bool:
        """The answer reads as a language other than its course's (both known to ``answer_language``)."""
        return other_language(text, self._course_language(exercise["course_id"]))

    # -- calibration ------------------------------------------------------------------------------
    def calibration(self, exercise: dict) -> Calibration:
        ident = self.embedder.identity()
        if ident is None:
            raise Unavailable(self.available()[1])
        key = (exercise["course_id"], exercise["id"], ident)
        spec = exercise["spec"] if isinstance(exercise["spec"], dict) else json.loads(exercise["spec"])
        sha = refs_sha(spec)
        with self._lock:
            cal = self._calibrations.get(key)
        if cal is not None and cal.refs_sha256 == sha:
            return cal
        with self.db.read() as conn:
            row = conn.execute("SELECT * FROM semantic_calibration WHERE course_id = ? AND exercise_id = ? AND model = ?",
                               key).fetchone()
        if row is not None and row["refs_sha256"] == sha:
            cal = Calibration(row["threshold"], row["spread"], row["refs_sha256"], json.loads(row["detail"]))
        else:
            cal = self.calibrate_course(exercise["course_id"]).get(exercise["id"])
            if cal is None:  # the exercise is not (or no longer) in the database: calibrate it alone
                cal = self._calibrate([dict(exercise, spec=spec)], [], ident)[exercise["id"]]
        with self._lock:
            self._calibrations[key] = cal
        return cal

    def _course_lock(self, course_id: str) -> threading.Lock:
        with self._lock:
            return self._course_locks.setdefault(course_id, threading.Lock())

    def calibrate_course(self, course_id: str) -> dict[str, Calibration]:
        """Calibrate every free-text exercise of the course on the current model and store the result."""
        with self._course_lock(course_id):  # 16 threads asking at once calibrate once
            ident = self.embedder.identity()
            if ident is None:
                raise Unavailable(self.available()[1])
            with self.db.read() as conn:
                rows = [dict(r) for r in conn.execute("SELECT course_id, id, kind, prompt, spec FROM exercises"
                                                      " WHERE course_id = ? ORDER BY position", (course_id,))]
                done = {r["exercise_id"]: r["refs_sha256"] for r in conn.execute(
                    "SELECT exercise_id, refs_sha256 FROM semantic_calibration WHERE course_id = ? AND model = ?",
                    (course_id, ident))}
            for r in rows:
                r["spec"] = json.loads(r["spec"])
            free = [r for r in rows if r["kind"] == "free_text"]
            todo = [r for r in free if done.get(r["id"]) != refs_sha(r["spec"])]
            result = self._calibrate(todo, rows, ident) if todo else {}
            if result:
                self._store(course_id, ident, result)
            with self.db.read() as conn:
                stored = {r["exercise_id"]: Calibration(r["threshold"], r["spread"], r["refs_sha256"], json.loads(r["detail"]))
                          for r in conn.execute("SELECT * FROM semantic_calibration WHERE course_id = ? AND model = ?",
                                                (course_id, ident))}
            return {**stored, **result}

    def _calibrate(self, todo: list[dict], course_rows: list[dict], ident: str) -> dict[str, Calibration]:
        plans = {}
        texts: list[str] = []
        for ex in todo:
            refs = [r for r in ex["spec"].get("references", []) if isinstance(r, str) and r.strip()]
            short = [(i, s) for i, r in enumerate(refs) for s in shortened(r)]
            neg = negatives_for(ex, course_rows)
            wrong = wrong_answers_of(ex["spec"])
            plans[ex["id"]] = (ex, refs, short, neg, wrong)
            texts += refs + [s for _i, s in short] + neg + wrong + [ex["prompt"]]
        unique = list(dict.fromkeys(texts))
        emb = self.embedder.embed(unique, cache=True, background=True)
        if emb.identity != ident:
            raise Unavailable("the embedding model changed during calibration; try again")
        index = {t: i for i, t in enumerate(unique)}
        V = emb.vectors
        out = {}
        for ex_id, (ex, refs, short, neg, wrong) in plans.items():
            R = V[[index[r] for r in refs]] if refs else None
            Q = V[index[ex["prompt"]]]

            def score(others, x, Q=Q):  # the same effective similarity the grade will use
                return max(0.0, effective(float((others @ x).max()), float(Q @ x)))

            pos: list[float] = []
            negs: list[float] = []
            wrongs: list[float] = []
            if R is not None:
                for i in range(len(refs)):
                    # Against the OTHER references: a right answer is a paraphrase, not a copy.
                    others = np.delete(R, i, axis=0) if len(refs) > 1 else R
                    if len(refs) > 1:
                        pos.append(score(others, R[i]))
                    pos += [score(others, V[index[s]]) for j, s in short if j == i]
                negs = [score(R, V[index[n]]) for n in neg]
                wrongs = [score(R, V[index[n]]) for n in wrong]
            out[ex_id] = choose_threshold(pos, negs, refs_sha(ex["spec"]), wrongs)
        return out

    def _store(self, course_id: str, ident: str, result: dict[str, Calibration]) -> None:
        at = now_iso()

        def write(conn):
            for ex_id, cal in result.items():
                conn.execute(
                    "INSERT INTO semantic_calibration (course_id, exercise_id, model, refs_sha256, threshold, spread,"
                    " detail, calibrated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (course_id, exercise_id, model)"
                    " DO UPDATE SET refs_sha256 = excluded.refs_sha256, threshold = excluded.threshold,"
                    " spread = excluded.spread, detail = excluded.detail, calibrated_at = excluded.calibrated_at",
                    (course_id, ex_id, ident, cal.refs_sha256, cal.threshold, cal.spread, json.dumps(cal.detail), at))

        self.db.write(write)
        log.info("calibrated %d free-text exercises of %s on %s: %s", len(result), course_id, ident,
                 ", ".join(f"{k}={v.threshold:.2f}" for k, v in sorted(result.items())))
