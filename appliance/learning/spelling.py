"""Children misspell: words put right to the nearest word their course uses.

Search and free-text grading both read what a child typed through the course's own words. The
encoder's word pieces carry little meaning for a misspelt word ("devided" is "dev", "##ided"): "it tels
how meny equel parts the hole is devided in to" scored 0.29 against the references of "what does the
denominator tell you?", and "fractoins" found nothing. ``respell`` replaces each word of 4+ letters
the course lacks by its closest course word when one is close enough (difflib ratio ``SPELLING_CUTOFF``),
written as the course writes it, and leaves the rest as typed.

Another form of a course word is no misspelling: words are also compared by their Snowball stems
("restamos" is a form of "restar", not a misspelling of "estamos"), which search uses to match words
too. There is no dictionary here (the box knows the words of its courses, not of a language), so a
right word the course does not use can be "corrected" still ("contamos" -> "cortamos", "altogether" ->
"together"): search shows the respelt search only when it finds more, and grading reads the answer
both ways and lets the teacher decide when the two readings disagree (``semantic.SemanticGrader``).
"""
from __future__ import annotations

import difflib
import html
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from appliance.jsonsafe import loads
from appliance.languages import base_language, without_accents

SPELLING_CUTOFF = 0.8  # difflib ratio: a letter left out or added (4+ letters), changed or two swapped (5+): "devide"
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"\w+", re.UNICODE)
# Snowball's algorithms by the language codes courses carry.
_SNOWBALL = {"ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "cs": "czech", "da": "danish",
             "nl": "dutch", "en": "english", "eo": "esperanto", "et": "estonian", "fi": "finnish", "fr": "french",
             "de": "german", "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
             "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
             "nn": "norwegian", "fa": "persian", "pl": "polish", "pt": "portuguese", "ro": "romanian",
             "ru": "russian", "sr": "serbian", "st": "sesotho", "es": "spanish", "sv": "swedish", "ta": "tamil",
             "tr": "turkish", "yi": "yiddish"}
_stemmers = threading.local()  # a Snowball stemmer keeps the word it works on: one per thread


def plain_text(body: str) -> str:
    """A lesson's sanitised HTML as text."""
    return " ".join(html.unescape(_TAG.sub(" ", body or "")).split())


def fold(text: str) -> list[str]:
    """The words of ``text``, case and accents ignored."""
    return _WORD.findall(without_accents(text))


def stemmer(language: str | None) -> Callable[[str], str]:
    """Word -> its stem in ``language``, folded like ``fold`` ("Sumamos" and "sumar" -> "sum"). Word
    forms, not misspellings: a child searches "sumamos fracciones" for the lesson "Sumar y restar
    fracciones", or "simplifying" for "simplify". A language Snowball has no algorithm for is left
    unstemmed (only folded)."""
    name = _SNOWBALL.get(base_language(language))
    if name is None:
        return lambda word: "".join(fold(word))

    def stem(word: str) -> str:
        # Looked up at each call: the function is kept with a course's words and called by any thread.
        own = _stemmers.__dict__
        if name not in own:
            import snowballstemmer  # on the first search or grade, not in every process

            own[name] = snowballstemmer.stemmer(name)
        return "".join(fold(own[name].stemWord(word.casefold())))

    return stem


def stems(text: str, stem: Callable[[str], str]) -> set[str]:
    """The stems of ``text``'s words."""
    return {stem(w) for w in _WORD.findall(text)}


def has_word(word: str, have) -> bool:
    """``word`` (folded) is one of ``have``. A word of 4+ letters also matches as a prefix: "sumar" finds
    "suma", "fraction" finds "fractions"."""
    return word in have or (len(word) >= 4 and any(h.startswith(word) for h in have))


def vocabulary_of(texts) -> dict[str, str]:
    """Folded word -> the word as the course writes it (lower case, accents kept): what a misspelt
    word is put right to, and shown as."""
    out: dict[str, str] = {}
    for text in texts:
        for word in _WORD.findall(text):
            out.setdefault("".join(fold(word)), word.casefold())
    return out


def respell(text: str, vocabulary: dict[str, str], known: Callable[[str], bool] | None = None) -> str:
    """``text`` with each word of 4+ letters that ``vocabulary`` lacks (nor a word starting with it, nor
    one ``known`` says is another form of a course word: "restamos" is not put "right" to "estamos")
    replaced by its closest word there, if one is within ``SPELLING_CUTOFF``; the other words stay as
    typed ("¿Cuántos tersios hay?" -> "¿Cuántos tercios hay?"), in the case it was typed in. "" when
    nothing changed."""
    have = vocabulary.keys()
    choices: list[str] | None = None
    changed = False

    def fix(match: re.Match) -> str:
        nonlocal choices, changed
        word = "".join(fold(match.group(0)))
        if len(word) < 4 or not word.isalpha() or has_word(word, have) or (known and known(match.group(0))):
            return match.group(0)
        choices = choices if choices is not None else sorted(have)  # sorted: ties break the same way
        near = difflib.get_close_matches(word, choices, n=1, cutoff=SPELLING_CUTOFF)
        if not near:
            return match.group(0)
        changed = True
        return _cased_like(match.group(0), vocabulary[near[0]])

    fixed = _WORD.sub(fix, text)
    return fixed if changed else ""


def changed_words(text: str, respelt: str) -> list[tuple[str, bool]]:
    """``respelt`` (``respell`` of ``text``) in pieces, each marked True where a word was put right, so a
    page can show which ("it <mark>tells</mark> how meny…"). ``respell`` replaces words one for one and
    keeps everything between them, so the two texts' words line up."""
    typed = _WORD.findall(text)
    out: list[tuple[str, bool]] = []
    at, i = 0, 0
    for m in _WORD.finditer(respelt):
        if m.start() > at:
            out.append((respelt[at:m.start()], False))
        out.append((m.group(0), i >= len(typed) or typed[i] != m.group(0)))
        at, i = m.end(), i + 1
    if at < len(respelt):
        out.append((respelt[at:], False))
    return out


def _cased_like(typed: str, word: str) -> str:
    """``word`` (as the course writes it, lower case) in the case the child typed: "Bothe" -> "Both"."""
    if typed.isupper() and len(typed) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if typed[:1].isupper() else word


@dataclass(frozen=True)
class CourseWords:
    """A course's words as written (what a misspelt word is put right to) and their stems (which
    forms of them are no misspelling), in its language."""

    vocabulary: dict[str, str]
    stems: frozenset[str]
    stem: Callable[[str], str]

    @classmethod
    def of(cls, texts, language: str | None) -> CourseWords:
        texts, stem = list(texts), stemmer(language)
        return cls(vocabulary_of(texts), frozenset(s for t in texts for s in stems(t, stem)), stem)

    def knows(self, word: str) -> bool:
        """``word`` is a form of one of the course's words ("restamos" of "restar"). A word one letter
        longer than its stem is not taken for a form: Snowball cuts "bothe" to "both" too."""
        stem = self.stem(word)
        return stem in self.stems and len("".join(fold(word))) - len(stem) >= 2

    def respell(self, text: str) -> str:
        return respell(text, self.vocabulary, self.knows)


class CourseWordsCache:
    """``course_words`` of each course, made once per course version (the grader's second reading and
    search's test of a word another course uses each keep one, per database)."""

    def __init__(self):
        self._words: dict[str, tuple[str, CourseWords]] = {}  # course -> (version, its words)
        self._lock = threading.Lock()

    def get(self, conn, course_id: str, version: str) -> CourseWords:
        with self._lock:
            cached = self._words.get(course_id)
        if cached is None or cached[0] != version:
            cached = (version, course_words(conn, course_id))
            with self._lock:
                self._words[course_id] = cached
        return cached[1]


def course_words(conn, course_id: str) -> CourseWords:
    """The words a course uses anywhere a student reads or a grader compares: lesson titles and text,
    question prompts, choices and accepted answers, reference answers and the author's wrong answers."""
    texts: list[str] = []
    for title, body in conn.execute("SELECT title, body FROM lessons WHERE course_id = ?", (course_id,)):
        texts += [title or "", plain_text(body)]
    for prompt, spec in conn.execute("SELECT prompt, spec FROM exercises WHERE course_id = ?", (course_id,)):
        texts.append(prompt or "")
        spec = loads(spec) if isinstance(spec, str) else spec
        if isinstance(spec, dict):
            for key in ("references", "wrong_answers", "choices", "answers"):
                values = spec.get(key)
                if isinstance(values, list):
                    texts += [v for v in values if isinstance(v, str)]
    row = conn.execute("SELECT language FROM courses WHERE id = ?", (course_id,)).fetchone()
    return CourseWords.of(texts, row[0] if row else None)


# Short words that give away the language an answer is written in, for the languages the encoder meets
# in the demo courses (others: no guess). The English encoder scores a right answer written in the other
# language like nonsense ("Los tercios son trozos más grandes que los cuartos." 0.16 against the English
# references of "why is 1/3 bigger than 1/4?", graded wrong with confidence 0.97), so such a grade is
# no judgement of the answer: the teacher reads it first. No word here means the same in both lists.
FUNCTION_WORDS = {
    "en": frozenset("the an is are was were of in into to and because so it its they you how many much what when "
                    "there than more same that this with by for on one".split()),
    "es": frozenset("el la los las un una es son de del en y porque que se al lo como cómo cuántas cuantas cuántos "
                    "cuantos hay más mas menos mismo misma por para con cada tiene".split()),
}
_LETTERS = re.compile(r"[^\W\d_]+")


def answer_language(text: str, least_words: int = 4, least_hits: int = 2) -> str | None:
    """'en' or 'es' when the text clearly reads as one of them (``least_words`` words or more, at least
    ``least_hits`` of its short words and more than twice as many as of the other language), else None.
    An answer needs four words ("no sé", "I don't know": too short to tell, and a non-answer in any
    language); a search query, one short word ("same", "which fraction is bigger")."""
    words = _LETTERS.findall(text.casefold())
    if len(words) < least_words:
        return None
    hits = {lang: sum(w in fw for w in words) for lang, fw in FUNCTION_WORDS.items()}
    best = max(hits, key=hits.get)
    rest = max(v for lang, v in hits.items() if lang != best)
    return best if hits[best] >= least_hits and hits[best] > 2 * rest else None


def other_language(text: str, course_language: str | None, **least) -> bool:
    """``text`` reads as a language other than the course's (both known to ``answer_language``): its
    words are not misspellings of the course's, and "respelling" them makes nonsense ("it tells how many
    equal parts..." became «it ellas how many equal partes...» on a Spanish course)."""
    course = base_language(course_language)
    said = answer_language(text, **least)
    return said is not None and course in FUNCTION_WORDS and said != course


def only_function_words(text: str) -> bool:
    """Every word of ``text`` is a short (three letters or fewer) function word of some language
    (``FUNCTION_WORDS``) and it has no digit: a search for "la" or "de" matched questions at random.
    ("same" or "more" is a search: "same denominator".)"""
    words = _LETTERS.findall(text.casefold())
    every = frozenset().union(*FUNCTION_WORDS.values())
    return (bool(words) and not any(ch.isdigit() for ch in text)
            and all(w in every and len(w) <= 3 for w in words))
