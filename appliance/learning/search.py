"""Search lessons and exercises by meaning, in the language of the student's courses.

Each course's lesson titles (with the start of the lesson text) and exercise prompts are embedded once
per course version and model and kept in ``search_vectors``; each web worker loads them into one
matrix per course, so a search costs one query embedding and a matrix-vector product. An upgraded
course (new ``bundle_sha256``) or a new model version is indexed again on its first search.

A hit is shown when its score clears ``learning.search_min_similarity`` and stands
``learning.search_min_margin`` above the query's median score over the course (a query about nothing in
the course is about as close to everything and finds nothing; courses of fewer than 20 lessons and
questions skip this); a question whose words repeat another's
in the same lesson is listed once. A hit's score is its cosine similarity plus ``learning.search_word_weight`` times the share of the
query's words it contains, each word weighted by how rare it is in the course (IDF, so "fractions",
which every item says, counts for little). The encoder was trained on English: in the Spanish course
it finds "cuál es mayor" by meaning but ranked "sumar fracciones" under "fracciones equivalentes";
the words put the lesson "Sumar y restar fracciones" first (tests/learning/test_search.py, the
labelled queries there).

Words are compared by their stems in the course's language (``spelling.stemmer``): "sumamos
fracciones" finds "Sumar y restar fracciones", which the encoder ranked under the equivalent fractions.

Without the embedding model the search still works: it matches words (accents and case ignored) and
says so, rather than showing nothing.

Children misspell. Each query word of 4+ letters that no item has (nor a word starting with it) is
replaced by the closest word the courses have, if one is close enough (``respell``), and that search
is shown when the query as typed found nothing or only weaker matches: "fractoins" finds the fractions
lessons, which the encoder's word pieces and the word match both missed, and the page says what it
searched for. A word with no close neighbour is left alone: "dinosaurs" still finds nothing. Lessons
are matched by their skills' names too, so a right word only a skill name uses ("simplificar") is
found, not "corrected".
"""
from __future__ import annotations

import dataclasses
import logging
import math
import threading
from dataclasses import asdict, dataclass, field
from typing import NamedTuple
from urllib.parse import quote

import numpy as np
from flask_babel import gettext as _

from appliance.errors import AppError, BadRequest
from appliance.languages import base_language
from appliance.learning.plan import load_plan
from appliance.learning.spelling import (
    CourseWords,
    CourseWordsCache,
    fold,
    has_word,
    only_function_words,
    other_language,
    plain_text,
    respell,
    stems,
)

log = logging.getLogger(__name__)

MAX_QUERY = 200
MARGIN_MIN_ITEMS = 20  # lessons and questions a course needs before its median score means anything
LESSON_SNIPPET = 400  # characters of lesson text next to its title (the encoder reads 128 tokens)


@dataclass
class Hit:
    kind: str            # lesson | exercise
    course_id: str
    lesson_id: str
    item_id: str
    title: str
    lesson_title: str
    score: float
    url: str

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SearchResult:
    query: str
    mode: str                       # meaning | words
    hits: list[Hit] = field(default_factory=list)
    note: str = ""                  # why the search matched words only
    searched_for: str = ""          # the query with misspelt words put right, when any was

    def to_json(self) -> dict:
        return {"query": self.query, "mode": self.mode, "note": self.note, "searched_for": self.searched_for,
                "hits": [h.to_json() for h in self.hits]}


@dataclass
class _Item:
    kind: str
    item_id: str
    lesson_id: str
    title: str
    text: str             # what is embedded
    also: str = ""        # words matched besides (a lesson's skill names), not embedded

    @property
    def words(self) -> str:
        return f"{self.text} {self.also}" if self.also else self.text


@dataclass
class _Words:
    """Each item's word stems (in the course's language) and the course's IDF, made once per course
    version: "sumamos" finds "Sumar y restar fracciones", "simplifying" finds "simplify"."""

    items: list[set[str]]
    idf: dict[str, float]
    unseen_idf: float
    course: CourseWords  # what a misspelt query word may become, and which forms are no misspelling
    language: str | None = None

    @classmethod
    def of(cls, items: list[_Item], language: str | None) -> _Words:
        course = CourseWords.of((it.words for it in items), language)
        sets = [stems(it.words, course.stem) for it in items]
        df: dict[str, int] = {}
        for s in sets:
            for w in s:
                df[w] = df.get(w, 0) + 1
        n = len(sets)
        return cls(sets, {w: math.log((n + 1) / (c + 1)) + 1.0 for w, c in df.items()}, math.log(n + 1) + 1.0,
                   course, language)

    def weight(self, word: str) -> float:
        if word in self.idf:
            return self.idf[word]
        prefixed = [v for w, v in self.idf.items() if len(word) >= 4 and w.startswith(word)]
        return max(prefixed) if prefixed else self.unseen_idf

    def match(self, query: str) -> np.ndarray:
        """Per item: the IDF-weighted share of the query's words it contains (0..1), by their stems."""
        words = stems(query, self.course.stem)
        if not words or not self.items:
            return np.zeros(len(self.items), np.float32)
        weights = {w: self.weight(w) for w in words}
        total = sum(weights.values())
        return np.array([sum(v for w, v in weights.items() if has_word(w, have)) / total for have in self.items],
                        np.float32)


def url_of(course_id: str, lesson_id: str, exercise_id: str | None = None) -> str:
    url = f"/learn/{quote(course_id, safe='')}/{quote(lesson_id, safe='')}"
    return url + (f"#ex-{quote(exercise_id, safe='')}" if exercise_id else "")


def course_version(conn, course_id: str) -> str:
    """The course's version as the index knows it: a re-import indexes it again."""
    row = conn.execute("SELECT bundle_sha256 || ':' || imported_at FROM courses WHERE id = ?", (course_id,)).fetchone()
    return row[0] if row else ""


def _lesson_skill_names(conn, course_id: str) -> dict[str, list[str]]:
    """Lesson id -> the names of the skills it teaches (``CoursePlan.skill_lessons``: those it declares
    and those its questions practise). "Simplificar fracciones" is a skill of the Spanish course whose
    lesson and questions only say "forma más simple"."""
    plan = load_plan(conn, course_id)
    names: dict[str, list[str]] = {}
    for skill_id, skill in plan.skills.items():
        for lesson_id in plan.skill_lessons.get(skill_id, ()):
            names.setdefault(lesson_id, []).append(skill.name)
    return names


class CourseItems(NamedTuple):
    version: str
    items: list[_Item]
    titles: dict[str, str]  # lesson id -> title
    language: str


def course_items(conn, course_id: str) -> CourseItems:
    """The course's version, items to index, lesson titles and language. A lesson is embedded by its title and the start
    of its text, and matched by the names of its skills too (embedded, they pushed "sum of two fractions
    with the same denominator" from the adding lesson to the comparing one)."""
    lessons = {r["id"]: dict(r) for r in conn.execute("SELECT id, title, body FROM lessons WHERE course_id = ?", (course_id,))}
    skills = _lesson_skill_names(conn, course_id)
    items = [_Item("lesson", lid, lid, le["title"], f"{le['title']}. {plain_text(le['body'])[:LESSON_SNIPPET]}",
                   ". ".join(skills.get(lid, []))) for lid, le in lessons.items()]
    items += [_Item("exercise", r["id"], r["lesson_id"], r["prompt"], r["prompt"]) for r in conn.execute(
        "SELECT id, lesson_id, prompt FROM exercises WHERE course_id = ? ORDER BY position", (course_id,))]
    row = conn.execute("SELECT language FROM courses WHERE id = ?", (course_id,)).fetchone()
    return CourseItems(course_version(conn, course_id), items, {k: v["title"] for k, v in lessons.items()},
                       row[0] if row else "")


class SearchIndex:
    def __init__(self, db, embedder, settings):
        self.db, self.embedder, self.settings = db, embedder, settings
        self._matrices: dict[str, tuple] = {}  # course -> (version key, items, matrix, lesson titles)
        self._lock = threading.Lock()
        self._build_locks: dict[str, threading.Lock] = {}
        self._other_words = CourseWordsCache()  # other courses' words: no misspellings

    def search(self, query: str, course_ids: list[str], k: int | None = None) -> SearchResult:
        query = " ".join((query or "").split())
        if not query:
            raise BadRequest(_("Type something to search for."))
        if sum(ch.isalnum() for ch in query) < 2:
            # "a" matched eight questions at random: a letter says nothing about what the child wants.
            raise BadRequest(_("Type a whole word to search for."))
        if only_function_words(query):
            raise BadRequest(_("Type a word that says what you are looking for."))  # "la", "de", "the"
        if len(query) > MAX_QUERY:
            raise BadRequest(_("A search can be at most %(num)s characters.", num=MAX_QUERY))
        k = k or self.settings.search_results
        ok, why = self.embedder.available()
        if ok:
            try:
                found = self._by_meaning(query, course_ids, k)
                return self._respelt(found, lambda text: self._by_meaning(text, course_ids, k),
                                     self._words_of(course_ids), self._known_elsewhere(course_ids))
            except AppError as exc:  # the model went away mid-search: words still find things
                why = exc.message
                log.warning("search by meaning failed, matching words: %s", why)
        with self.db.read() as conn:
            courses = {cid: course_items(conn, cid) for cid in course_ids}
        words = {cid: _Words.of(c.items, c.language) for cid, c in courses.items()}
        found = self._by_words(query, courses, words, k, why)
        return self._respelt(found, lambda text: self._by_words(text, courses, words, k, why), list(words.values()),
                             self._known_elsewhere(course_ids))

    @staticmethod
    def _respelt(found: SearchResult, search, courses: list[_Words], known_elsewhere=lambda word: False
                 ) -> SearchResult:
        """The search again with misspelt words put right, when any is; its results when the query as
        typed found nothing, or only weaker matches ("¿Cuántos tersios hay?" found two word problems).
        Only by the words of courses in the query's language, when it reads as one: "same" is no
        misspelling of "Sam", nor "fractions" of "fracciones". A word another course on the box uses
        (``known_elsewhere``) is no misspelling either: "adding fractions" is English, not «adding fracciones»."""
        courses = [c for c in courses if not other_language(found.query, c.language, least_words=1, least_hits=1)]
        vocabulary = {k: v for c in courses for k, v in c.course.vocabulary.items()}
        text = respell(found.query, vocabulary,
                       lambda word: any(c.course.knows(word) for c in courses) or known_elsewhere(word))
        if not text:
            return found
        again = search(text)
        if not again.hits or (found.hits and again.hits[0].score <= found.hits[0].score):
            return found
        return dataclasses.replace(again, query=found.query, searched_for=text)

    def _known_elsewhere(self, course_ids: list[str]):
        """word -> it is a word (or a form of one) of another course on this box, of another language.
        Looked up only when a query has a word its courses do not know (most searches have none)."""
        words: list[CourseWords] | None = None

        def other_courses() -> list[CourseWords]:
            with self.db.read() as conn:
                languages = {r[0]: r[1] for r in conn.execute("SELECT id, language FROM courses")}
                searched = {base_language(languages.get(cid)) for cid in course_ids}
                return [self._other_words.get(conn, cid, course_version(conn, cid)) for cid, lang in languages.items()
                        if cid not in course_ids and base_language(lang) not in searched]

        def known(word: str) -> bool:
            nonlocal words
            if words is None:
                words = other_courses()
            return any(w.knows(word) or "".join(fold(word)) in w.vocabulary for w in words)

        return known

    def _words_of(self, course_ids: list[str]) -> list[_Words]:
        """The words of the courses' indexed items (their matrices are loaded by now)."""
        with self._lock:
            cached = [self._matrices.get(cid) for cid in course_ids]
        return [c[4] for c in cached if c is not None]

    # -- by meaning ---------------------------------------------------------------------------
    def _by_meaning(self, query: str, course_ids: list[str], k: int) -> SearchResult:
        q = self.embedder.embed([query])
        hits = []
        weight = float(self.settings.search_word_weight)
        for cid in course_ids:
            items, M, titles, words = self._matrix(cid, q.identity)
            if not len(items):
                continue
            cosine = M @ q.vectors[0]
            scores = cosine + weight * words.match(query) if weight > 0 else cosine
            # Shown only when close in meaning (or the words make up for it), and clearly closer than
            # the course as a whole: the encoder finds some likeness between anything and anything. A
            # handful of items has no "as a whole" to speak of (all of them may be the answer).
            bar = self.settings.search_min_similarity
            if len(items) >= MARGIN_MIN_ITEMS:
                bar = max(bar, float(np.median(scores)) + self.settings.search_min_margin)
            seen = set()
            for i in np.argsort(-scores):
                if scores[i] < bar or len(seen) == k:
                    break
                # Two questions with the same words in one lesson look like one result listed twice.
                same = (items[i].kind, items[i].lesson_id, items[i].title)
                if same not in seen:
                    seen.add(same)
                    hits.append(self._hit(cid, items[i], float(scores[i]), titles))
        hits.sort(key=lambda h: -h.score)
        return SearchResult(query, "meaning", hits[:k])

    def _hit(self, course_id: str, it: _Item, score: float, titles: dict[str, str]) -> Hit:
        return Hit(it.kind, course_id, it.lesson_id, it.item_id, it.title, titles.get(it.lesson_id, ""),
                   round(score, 4), url_of(course_id, it.lesson_id, it.item_id if it.kind == "exercise" else None))

    def _matrix(self, course_id: str, ident: str):
        with self.db.read() as conn:
            key = (course_version(conn, course_id), ident)
        with self._lock:
            cached = self._matrices.get(course_id)
            lock = self._build_locks.setdefault(course_id, threading.Lock())
        if cached is None or cached[0] != key:
            with lock:  # one thread indexes, the others wait for its result
                with self._lock:
                    cached = self._matrices.get(course_id)
                if cached is None or cached[0] != key:
                    with self.db.read() as conn:
                        version, items, titles, language = course_items(conn, course_id)
                    items, M = self._load_or_build(course_id, version, ident, items)
                    cached = ((version, ident), items, M, titles, _Words.of(items, language))
                    with self._lock:
                        self._matrices[course_id] = cached
        return cached[1], cached[2], cached[3], cached[4]

    def _load_or_build(self, course_id: str, version: str, ident: str, items: list[_Item]):
        with self.db.read() as conn:
            rows = conn.execute("SELECT kind, item_id, vector FROM search_vectors WHERE course_id = ? AND model = ?"
                                " AND bundle_sha256 = ?", (course_id, ident, version)).fetchall()
        stored = {(r["kind"], r["item_id"]): np.frombuffer(r["vector"], dtype="<f4") for r in rows}
        if items and all((it.kind, it.item_id) in stored for it in items):
            return items, np.stack([stored[(it.kind, it.item_id)] for it in items])
        emb = self.embedder.embed([it.text for it in items], background=True) if items else None
        if emb is not None and emb.identity != ident:
            raise AppError("the embedding model changed while indexing; search again")
        M = emb.vectors if emb is not None else np.zeros((0, 1), np.float32)

        def write(conn):
            conn.execute("DELETE FROM search_vectors WHERE course_id = ?", (course_id,))
            conn.executemany(
                "INSERT INTO search_vectors (course_id, model, bundle_sha256, kind, item_id, lesson_id, title, vector)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(course_id, ident, version, it.kind, it.item_id, it.lesson_id, it.title,
                  M[i].astype("<f4").tobytes()) for i, it in enumerate(items)])

        self.db.write(write)
        log.info("indexed %d lessons and exercises of %s for search on %s", len(items), course_id, ident)
        return items, M

    def index_course(self, course_id: str) -> int:
        """Build (or load) the course's vectors now; returns how many items it has."""
        ident = self.embedder.identity()
        if ident is None:
            raise AppError(self.embedder.available()[1])
        return len(self._matrix(course_id, ident)[0])

    # -- by words -----------------------------------------------------------------------------
    def _by_words(self, query: str, courses: dict[str, CourseItems], words: dict[str, _Words], k: int,
                  why: str) -> SearchResult:
        """``courses``: course id -> ``course_items`` of it; ``words``: its ``_Words``."""
        hits = []
        for cid, course in courses.items():
            asked = stems(query, words[cid].course.stem)
            for it, have in zip(course.items, words[cid].items, strict=True):
                found = sum(1 for w in asked if has_word(w, have))
                if found:
                    hits.append(self._hit(cid, it, found / len(asked), course.titles))
        hits.sort(key=lambda h: (-h.score, h.kind != "lesson"))
        return SearchResult(query, "words", hits[:k], why)
