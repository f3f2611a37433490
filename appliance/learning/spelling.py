"""Children misspell: words put right to the nearest word their course uses.

Search and free-text grading both read what a child typed through the course's own words. The
encoder's word pieces carry little meaning for a misspelt word ("devided" is "dev", "##ided"): "it tels
how meny equel parts the hole is devided in to" scored 0.29 against the references of "what does the
denominator tell you?", and "fractoins" found nothing. ``respell`` replaces each word of 4+ letters
the course lacks by its closest course word when one is close enough (difflib ratio ``SPELLING_CUTOFF``),
written as the course writes it, and leaves the rest as typed.

There is no dictionary here (the box knows the words of its courses, not of a language), so a right
word the course does not use can be "corrected" too ("contamos" -> "cortamos", "altogether" ->
"together"): search shows the respelt search only when it finds more, and grading reads the answer
both ways and lets the teacher decide when the two readings disagree (``semantic.SemanticGrader``).
"""
from __future__ import annotations

import difflib
import html
import re
import unicodedata

from appliance.jsonsafe import loads

SPELLING_CUTOFF = 0.8  # difflib ratio: a letter left out or added (4+ letters), changed or two swapped (5+): "devide"
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"\w+", re.UNICODE)


def plain_text(body: str) -> str:
    """A lesson's sanitised HTML as text."""
    return " ".join(html.unescape(_TAG.sub(" ", body or "")).split())


def fold(text: str) -> list[str]:
    """The words of ``text``, case and accents ignored."""
    s = unicodedata.normalize("NFKD", text.casefold())
    return _WORD.findall("".join(ch for ch in s if not unicodedata.combining(ch)))


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


def respell(text: str, vocabulary: dict[str, str]) -> str:
    """``text`` with each word of 4+ letters that ``vocabulary`` lacks (nor a word starting with it)
    replaced by its closest word there, if one is within ``SPELLING_CUTOFF``; the other words stay as
    typed ("¿Cuántos tersios hay?" -> "¿Cuántos tercios hay?"), in the case it was typed in. "" when
    nothing changed."""
    have = vocabulary.keys()
    choices: list[str] | None = None
    changed = False

    def fix(match: re.Match) -> str:
        nonlocal choices, changed
        word = "".join(fold(match.group(0)))
        if len(word) < 4 or not word.isalpha() or has_word(word, have):
            return match.group(0)
        choices = choices if choices is not None else sorted(have)  # sorted: ties break the same way
        near = difflib.get_close_matches(word, choices, n=1, cutoff=SPELLING_CUTOFF)
        if not near:
            return match.group(0)
        changed = True
        return _cased_like(match.group(0), vocabulary[near[0]])

    fixed = _WORD.sub(fix, text)
    return fixed if changed else ""


def _cased_like(typed: str, word: str) -> str:
    """``word`` (as the course writes it, lower case) in the case the child typed: "Bothe" -> "Both"."""
    if typed.isupper() and len(typed) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if typed[:1].isupper() else word


def course_vocabulary(conn, course_id: str) -> dict[str, str]:
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
    return vocabulary_of(texts)
