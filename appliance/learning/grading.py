"""Rule grading of exercise answers (the agreed spec formats in TEAM.md).

``grade(exercise, answer, semantic=None)`` returns a ``Grade``. Rule kinds (single/multiple choice,
numeric, short text) are graded here exactly. Free text is graded by meaning: the caller passes
``semantic(text, references) -> similarity in [0, 1]`` (the MiniLM embedding model, wired by the
learning engine); without it the grade says ``needs_model`` and the attempt waits for a teacher.

Feedback is a code (``correct``, ``partly``, ``incorrect``, ``pending``), not a sentence: the web layer
turns it into words in the learner's language.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from fractions import Fraction

from flask_babel import gettext as _

from appliance.errors import BadRequest

MAX_TEXT = 2000
DEFAULT_FREE_TEXT_THRESHOLD = 0.7
Semantic = Callable[[str, list], float]
# The free-text answers a teacher should read (alias ``a`` for attempts; one parameter, the confidence
# below which a model grade counts as unsure): the review page's list and the teachers' counts.
UNSURE_MODEL_SQL = "(a.graded_by = 'model' AND a.confidence < ?)"
NEEDS_TEACHER_SQL = f"(a.graded_by = 'pending' OR {UNSURE_MODEL_SQL})"
# The student has answered the same question again since: the student's pages, Next up and the lesson
# go by the latest answer only.
REPLACED_SQL = ("EXISTS (SELECT 1 FROM attempts later WHERE later.student_id = a.student_id"
                " AND later.course_id = a.course_id AND later.exercise_id = a.exercise_id AND later.id > a.id)")
# The student's latest answer to the question waits for the teacher (what Next up holds back).
WAITING_SQL = f"({NEEDS_TEACHER_SQL} AND NOT {REPLACED_SQL})"
# What a teacher has to check (the list, its counts, the grid): an ungraded answer only while it is the
# student's latest on its question (a replaced one counts for nothing: it is listed under "show all",
# marked, and can be graded there); an unsure model grade even when replaced, because its grade counts
# for the learner model until a teacher replaces it.
TO_CHECK_SQL = f"({UNSURE_MODEL_SQL} OR (a.graded_by = 'pending' AND NOT {REPLACED_SQL}))"


@dataclass
class Grade:
    correct: bool
    score: float              # 0..1, partial credit where the kind allows it
    feedback: str             # code: correct | partly | incorrect | pending
    graded_by: str = "rule"   # rule | model | pending (free text waiting for the model or a teacher)
    confidence: float = 1.0
    needs_model: bool = False

    def to_json(self) -> dict:
        return asdict(self)


def spec_of(exercise: dict) -> dict:
    spec = exercise["spec"]
    return json.loads(spec) if isinstance(spec, str) else spec


def grade(exercise: dict, answer: dict, semantic: Semantic | None = None) -> Grade:
    """Grade ``answer`` (the JSON the browser sent) for ``exercise`` (a row: kind, spec)."""
    if not isinstance(answer, dict):
        raise BadRequest("The answer must be a JSON object.")
    kind = exercise["kind"]
    spec = spec_of(exercise)
    try:
        fn = _GRADERS[kind]
    except KeyError:
        raise BadRequest(f"Unknown exercise kind '{kind}'.") from None
    bind = getattr(semantic, "for_exercise", None)
    if kind == "free_text" and bind is not None:
        # Per-exercise calibrated threshold and confidence (appliance.learning.semantic); None = no model.
        semantic = bind(exercise)
    return fn(spec, answer, semantic)


def _verdict(score: float) -> Grade:
    if score >= 1.0:
        return Grade(True, 1.0, "correct")
    return Grade(False, round(score, 4), "partly" if score > 0 else "incorrect")


def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{what} must be a whole number.")
    return value


def _single(spec: dict, answer: dict, _semantic) -> Grade:
    choice = _int(answer.get("choice"), "choice")
    if not 0 <= choice < len(spec["choices"]):
        raise BadRequest(_("That choice is not one of the options."))
    return _verdict(1.0 if choice == int(spec["answer"]) else 0.0)


def _multiple(spec: dict, answer: dict, _semantic) -> Grade:
    picked = answer.get("choices")
    if not isinstance(picked, list):
        raise BadRequest("choices must be a list of option numbers.")
    picked_set = {_int(c, "each choice") for c in picked}
    if any(not 0 <= c < len(spec["choices"]) for c in picked_set):
        raise BadRequest(_("A choice is not one of the options."))
    right = {int(a) for a in spec["answer"]}
    if picked_set == right:
        return _verdict(1.0)
    # Partial credit: right picks minus wrong picks, so ticking everything earns nothing.
    hits, misses = len(picked_set & right), len(picked_set - right)
    return _verdict(max(0.0, (hits - misses) / max(1, len(right))))


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_FRACTION = re.compile(r"^([+-]?)(?:(\d+)\s+)?(\d+)\s*/\s*(\d+)$")


def parse_number(text: str) -> Fraction:
    """'0.75', '3/4', '1 1/2', '-2', '0,5' (decimal comma) -> an exact Fraction; BadRequest otherwise."""
    s = unicodedata.normalize("NFKC", str(text)).strip().replace("\u2212", "-").replace("\u2044", "/")
    if "," in s and "." not in s and s.count(",") == 1:
        s = s.replace(",", ".")  # Spanish and many other locales write 0,5
    if _NUMBER.match(s):
        return Fraction(s)
    m = _FRACTION.match(s)
    if m:
        sign, whole, num, den = m.groups()
        if int(den) == 0:
            raise BadRequest(_("A fraction cannot have 0 at the bottom."))
        value = int(whole or 0) + Fraction(int(num), int(den))
        return -value if sign == "-" else value
    raise BadRequest(_("Please write a number, like 0.75, 3/4 or 1 1/2."))


def written_form(text: str) -> str:
    """How a number is written: 'whole' (3), 'decimal' (0.75, 0,75), 'fraction' (3/4, 5/2) or 'mixed'
    (1 1/2). ``text`` already parsed with ``parse_number``."""
    s = unicodedata.normalize("NFKC", str(text)).strip().replace("\u2044", "/")
    if "/" in s:
        m = _FRACTION.match(s)
        return "mixed" if m and m.group(2) else "fraction"
    return "decimal" if ("." in s or "," in s) else "whole"


# What each ``form`` of a numeric exercise accepts. A whole number is always accepted: "write 6/3 as a
# mixed number" is answered "2".
FORMS = {"decimal": ("decimal", "whole"), "fraction": ("fraction", "whole"), "mixed": ("mixed", "whole")}


def form_words(form: str) -> str:
    """How to write an answer in ``form``, said under the question and when another form is sent back.
    The examples are numbers no demo question asks for: "like 2 1/2" under "write 5/2 as a mixed
    number" was the answer."""
    return {
        "decimal": _("Write a decimal number, like 0.35."),
        "fraction": _("Write a fraction, like 5/7."),
        "mixed": _("Write a mixed number: the whole number, a space, then the fraction, like 3 1/7."),
    }[form]


def _form_refusal(form: str) -> BadRequest:
    return BadRequest(form_words(form))


def _numeric(spec: dict, answer: dict, _semantic) -> Grade:
    raw = answer.get("value")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise BadRequest(_("Please write a number."))
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise BadRequest("value must be text such as '3/4'.")
    value = parse_number(str(raw))
    form = spec.get("form")
    if form in FORMS and written_form(str(raw)) not in FORMS[form]:
        # "Write 5/2 as a mixed number" answered "5/2" has the right value and none of the skill: it is
        # not graded (a child copying the question's number got the lesson done), the child writes it again.
        raise _form_refusal(form)
    target = Fraction(str(spec["answer"]))
    tolerance = Fraction(str(spec.get("tolerance", 0) or 0))
    # Exact arithmetic: 1/3 against 0.3333 with tolerance 0.001 is decided without float noise.
    return _verdict(1.0 if abs(value - target) <= tolerance else 0.0)


def normalise_text(text: str, case_sensitive: bool) -> str:
    s = unicodedata.normalize("NFC", text)
    s = " ".join(s.split()).strip(" .!?¡¿")
    return s if case_sensitive else s.casefold()


def _text(answer: dict) -> str:
    text = answer.get("text")
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(_("Please write an answer."))
    if len(text) > MAX_TEXT:
        raise BadRequest(_("Answers can be at most %(n)s characters.", n=MAX_TEXT))
    return text


def _short(spec: dict, answer: dict, _semantic) -> Grade:
    case = bool(spec.get("case_sensitive", False))
    given = normalise_text(_text(answer), case)
    if any(given == normalise_text(a, case) for a in spec.get("answers", [])):
        return _verdict(1.0)
    flags = 0 if case else re.IGNORECASE
    for pattern in spec.get("patterns", []):
        if re.fullmatch(pattern, given, flags) or re.fullmatch(pattern, " ".join(_text(answer).split()), flags):
            return _verdict(1.0)
    return _verdict(0.0)


def _free(spec: dict, answer: dict, semantic: Semantic | None) -> Grade:
    text = _text(answer)
    if semantic is None:
        return Grade(False, 0.0, "pending", graded_by="pending", confidence=0.0, needs_model=True)
    judge = getattr(semantic, "judge", None)
    if judge is not None:
        j = judge(text)
        similarity, threshold, confidence, correct = j.similarity, j.threshold, j.confidence, j.correct
    else:
        similarity = float(semantic(text, list(spec.get("references", []))))
        threshold = spec.get("threshold")
        threshold = DEFAULT_FREE_TEXT_THRESHOLD if threshold is None else float(threshold)
        # Far from the threshold = sure; near it = a teacher should look (confidence drives the review list).
        confidence = min(1.0, abs(similarity - threshold) / max(threshold, 1 - threshold) * 2)
        correct = similarity >= threshold
    return Grade(correct, round(similarity, 4) if not correct else 1.0, "correct" if correct else "incorrect",
                 graded_by="model", confidence=round(confidence, 4))


# The one field of an answer each kind reads. Anything else a client sends is dropped before the
# answer is stored and sent to the hub: it is never graded, and it could be any JSON at all.
ANSWER_FIELD = {"single_choice": "choice", "multiple_choice": "choices", "numeric": "value",
                "short_text": "text", "free_text": "text"}


def answer_as_graded(kind: str, answer: dict) -> dict:
    """``answer`` with only the field ``kind`` grades (``ANSWER_FIELD``)."""
    field = ANSWER_FIELD.get(kind)
    return {field: answer[field]} if field in answer else {}


_GRADERS = {
    "single_choice": _single,
    "multiple_choice": _multiple,
    "numeric": _numeric,
    "short_text": _short,
    "free_text": _free,
}
