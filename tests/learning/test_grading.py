"""Rule grading for every exercise kind (formats agreed in TEAM.md)."""
from __future__ import annotations

from fractions import Fraction

import pytest

from appliance.errors import BadRequest
from appliance.learning.grading import grade, parse_number


def ex(kind, **spec):
    return {"kind": kind, "spec": spec}


def test_single_choice():
    e = ex("single_choice", choices=["a", "b", "c"], answer=2)
    assert grade(e, {"choice": 2}).correct
    g = grade(e, {"choice": 0})
    assert not g.correct and g.score == 0 and g.feedback == "incorrect"
    for bad in ({"choice": 3}, {"choice": -1}, {"choice": "2"}, {"choice": True}, {}):
        with pytest.raises(BadRequest):
            grade(e, bad)


def test_multiple_choice_exact_set_and_partial_credit():
    e = ex("multiple_choice", choices=["a", "b", "c", "d"], answer=[0, 2])
    assert grade(e, {"choices": [2, 0]}).correct
    assert grade(e, {"choices": [0, 0, 2]}).correct  # duplicates are the same set
    half = grade(e, {"choices": [0]})
    assert not half.correct and half.score == 0.5 and half.feedback == "partly"
    everything = grade(e, {"choices": [0, 1, 2, 3]})
    assert everything.score == 0 and not everything.correct  # ticking everything earns nothing
    with pytest.raises(BadRequest):
        grade(e, {"choices": [9]})
    with pytest.raises(BadRequest):
        grade(e, {"choices": "0,2"})


@pytest.mark.parametrize("text, value", [
    ("0.75", Fraction(3, 4)), ("3/4", Fraction(3, 4)), ("1 1/2", Fraction(3, 2)), ("-1 1/2", Fraction(-3, 2)),
    ("0,5", Fraction(1, 2)), (" 6 / 8 ", Fraction(3, 4)), (".5", Fraction(1, 2)), ("2", Fraction(2)),
    ("\u22121/4", Fraction(-1, 4)), ("１/２", Fraction(1, 2)),
])
def test_parse_number_accepts_what_children_write(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["three quarters", "1/0", "1//2", "1,000.5", "", "1 2", "1/2/3"])
def test_parse_number_refuses_the_rest(text):
    with pytest.raises(BadRequest):
        parse_number(text)


def test_numeric_with_tolerance_is_exact_arithmetic():
    e = ex("numeric", answer=0.75, tolerance=0)
    assert grade(e, {"value": "3/4"}).correct and grade(e, {"value": "6/8"}).correct
    assert grade(e, {"value": 0.75}).correct
    assert not grade(e, {"value": "0.7"}).correct
    third = ex("numeric", answer=0.3333, tolerance=0.001)
    assert grade(third, {"value": "1/3"}).correct
    assert not grade(third, {"value": "0.33"}).correct
    mixed = ex("numeric", answer=1.5, tolerance=0)
    assert grade(mixed, {"value": "1 1/2"}).correct and grade(mixed, {"value": "3/2"}).correct
    with pytest.raises(BadRequest):
        grade(e, {"value": "  "})


def test_short_text_answers_patterns_and_case():
    e = ex("short_text", answers=["denominator"], patterns=[r"denom\w*"], case_sensitive=False)
    assert grade(e, {"text": "  Denominator. "}).correct
    assert grade(e, {"text": "denom"}).correct
    assert not grade(e, {"text": "numerator"}).correct
    strict = ex("short_text", answers=["NaCl"], patterns=[], case_sensitive=True)
    assert grade(strict, {"text": "NaCl"}).correct and not grade(strict, {"text": "nacl"}).correct
    accents = ex("short_text", answers=["mitad"], patterns=[], case_sensitive=False)
    assert grade(accents, {"text": "¡Mitad!"}).correct
    with pytest.raises(BadRequest):
        grade(e, {"text": "x" * 5000})


def test_free_text_needs_a_model_and_uses_it_when_given():
    e = ex("free_text", references=["Both are one half."], threshold=None)
    pending = grade(e, {"text": "they are both a half"})
    assert pending.needs_model and pending.graded_by == "pending" and not pending.correct
    calls = []

    def semantic(text, refs):
        calls.append((text, refs))
        return 0.82

    g = grade(e, {"text": "they are both a half"}, semantic=semantic)
    assert g.correct and g.graded_by == "model" and 0 < g.confidence <= 1
    assert calls == [("they are both a half", ["Both are one half."])]
    strict = ex("free_text", references=["x"], threshold=0.9)
    low = grade(strict, {"text": "y"}, semantic=lambda t, r: 0.85)
    assert not low.correct and low.score == 0.85 and low.confidence < 0.5  # near the threshold: unsure


def test_spec_as_json_text_and_unknown_kind():
    assert grade({"kind": "single_choice", "spec": '{"choices": ["a", "b"], "answer": 1}'}, {"choice": 1}).correct
    with pytest.raises(BadRequest):
        grade({"kind": "essay", "spec": {}}, {"text": "x"})
    with pytest.raises(BadRequest):
        grade(ex("single_choice", choices=["a"], answer=0), ["not", "a", "dict"])


def test_a_numeric_form_sends_back_the_question_s_own_number():
    # "Write 5/2 as a mixed number": the value alone would accept the question copied.
    mixed = {"kind": "numeric", "spec": {"answer": 2.5, "form": "mixed"}}
    for copied in ("5/2", "2.5", "2,5"):
        with pytest.raises(BadRequest, match="mixed number"):
            grade(mixed, {"value": copied})
    assert grade(mixed, {"value": "2 1/2"}).correct
    assert not grade(mixed, {"value": "2 1/3"}).correct          # the right form, a wrong value: graded
    whole = {"kind": "numeric", "spec": {"answer": 2.0, "form": "mixed"}}
    assert grade(whole, {"value": "2"}).correct                  # 6/3 as a mixed number is just 2
    decimal = {"kind": "numeric", "spec": {"answer": 0.4, "form": "decimal"}}
    with pytest.raises(BadRequest, match="decimal"):
        grade(decimal, {"value": "2/5"})
    assert grade(decimal, {"value": "0,4"}).correct and grade(decimal, {"value": "0.4"}).correct
    fraction = {"kind": "numeric", "spec": {"answer": 0.75, "form": "fraction"}}
    with pytest.raises(BadRequest, match="fraction"):
        grade(fraction, {"value": "0.75"})
    assert grade(fraction, {"value": "3/4"}).correct
    assert grade({"kind": "numeric", "spec": {"answer": 2.5}}, {"value": "5/2"}).correct  # no form: any
