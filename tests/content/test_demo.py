"""The generated Fractions course: big enough, every kind, answers computed, deterministic."""
import hashlib
import json
import re
from collections import Counter
from fractions import Fraction

import pytest
from content_bundles import rows

from appliance.content import demo, install_demo_if_empty
from appliance.content.bundle import load_manifest
from appliance.content.demo.__main__ import main as demo_main

KINDS = {"single_choice", "multiple_choice", "numeric", "short_text", "free_text"}


@pytest.fixture(scope="module")
def built():
    return {lang: demo.build(lang) for lang in ("en", "es")}


def test_demo_is_large_enough_and_valid(built):
    manifest, blobs = built["en"]
    d = load_manifest(manifest).data
    assert len(d["lessons"]) >= 6 and len(d["exercises"]) >= 60 and len(d["skills"]) >= 8
    assert set(Counter(e["kind"] for e in d["exercises"])) == KINDS
    assert any(s["prerequisites"] for s in d["skills"])
    assert {s for e in d["exercises"] for s in e["skills"]} == {s["id"] for s in d["skills"]}
    difficulties = {e["difficulty"] for e in d["exercises"]}
    assert min(difficulties) < 0.3 and max(difficulties) > 0.6
    for e in d["exercises"]:
        assert e["spec"]["hints"] and e["spec"]["explanation"], e["id"]
    for lesson in d["lessons"]:
        assert any(b["type"] == "image" for b in lesson["blocks"]), lesson["id"]
    mimes = Counter(a["mime"] for a in d["assets"].values())
    assert mimes["image/svg+xml"] >= 6 and mimes["audio/wav"] == 1
    for a in d["assets"].values():
        assert hashlib.sha256(blobs[a["sha256"]]).hexdigest() == a["sha256"]
        if a["mime"] == "image/svg+xml":
            assert blobs[a["sha256"]].startswith(b"<svg ") and b"<script" not in blobs[a["sha256"]]
    wav = blobs[d["assets"]["whole-half-quarter-notes.wav"]["sha256"]]
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"


def test_no_two_questions_read_the_same(built):
    """Next up names a question by its prompt: two that read the same were two cards a child could not
    tell apart (compare-07/08 and simplify-06/07 did)."""
    for lang, (manifest, _blobs) in built.items():
        prompts = Counter(e["prompt"] for e in load_manifest(manifest).data["exercises"])
        assert [p for p, n in prompts.items() if n > 1] == [], lang


def test_generation_is_deterministic(built):
    again = demo.build("en")
    assert again == built["en"]


def test_spanish_course_shares_ids_numbers_and_pictures(built):
    en = json.loads(built["en"][0])
    es = load_manifest(built["es"][0]).data
    assert (es["id"], es["language"], es["title"]) == ("fractions-es", "es", "Fracciones")
    assert [e["id"] for e in es["exercises"]] == [e["id"] for e in en["exercises"]]
    assert [e["spec"].get("answer") for e in es["exercises"]] == [e["spec"].get("answer") for e in en["exercises"]]
    assert es["exercises"][0]["prompt"] != en["exercises"][0]["prompt"]
    assert built["es"][1] == built["en"][1]  # the same drawings: stored once on the box


def test_spanish_fractions_in_words_accept_the_ordinal_form(built):
    """ "Tres cuartas partes" is as common as "tres cuartos" (the English course takes "three fourths")."""
    from appliance.learning.grading import grade

    es = {e["id"]: e for e in load_manifest(built["es"][0]).data["exercises"]}
    three_quarters = next(e for e in es.values() if e["kind"] == "short_text" and "3/4 con palabras" in e["prompt"])
    for text in ("tres cuartos", "Tres cuartas partes", "las tres cuartas partes"):
        assert grade(three_quarters, {"text": text}).correct, text
    assert not grade(three_quarters, {"text": "tres cuartas"}).correct


def _frac(text: str) -> Fraction:
    text = text.strip()
    if " " in text:
        whole, part = text.split()
        return int(whole) + Fraction(part)
    return Fraction(text)


def test_answers_agree_with_an_independent_check(built):
    """Re-derive answers from the prompts with a second, simpler method."""
    ex = {e["id"]: e for e in json.loads(built["en"][0])["exercises"]}
    checked = 0
    for e in ex.values():
        p, spec = e["prompt"], e["spec"]
        if m := re.fullmatch(r"(\d+)/(\d+) ([+−]) (\d+)/(\d+) = \?.*", p):
            a, b = Fraction(int(m[1]), int(m[2])), Fraction(int(m[4]), int(m[5]))
            want = a + b if m[3] == "+" else a - b
            assert abs(spec["answer"] - float(want)) <= spec["tolerance"] + 1e-12, e["id"]
        elif m := re.fullmatch(r"What is (\d+)/(\d+) of (\d+)\?", p):
            want = Fraction(int(m[1]), int(m[2])) * int(m[3])
            got = spec["answer"] if e["kind"] == "numeric" else float(spec["choices"][spec["answer"]])
            assert got == float(want), e["id"]
        elif m := re.fullmatch(r"Write (\d+)/(\d+) in simplest form\.", p):
            f = Fraction(int(m[1]), int(m[2]))
            assert spec["answers"] == [f"{f.numerator}/{f.denominator}"], e["id"]
        elif m := re.fullmatch(r"Which is bigger: (\S+) or (\S+)\?", p):
            assert _frac(spec["choices"][spec["answer"]]) == max(_frac(m[1]), _frac(m[2])), e["id"]
        elif m := re.fullmatch(r"Which mixed number is equal to (\S+)\?", p):
            assert _frac(spec["choices"][spec["answer"]]) == _frac(m[1]), e["id"]
        elif m := re.fullmatch(r"Write (\S+) as a decimal\.", p):
            assert spec["answer"] == float(_frac(m[1])), e["id"]
        elif e["kind"] == "multiple_choice" and (m := re.fullmatch(r"Select everything that is equal to (\S+)\.", p)):
            right = {i for i, c in enumerate(spec["choices"]) if Fraction(c) == Fraction(m[1])}
            assert right == set(spec["answer"]), e["id"]
        else:
            continue
        checked += 1
    assert checked >= 25


def test_demo_cli_writes_identical_bytes(tmp_path, capsys):
    assert demo_main([str(tmp_path / "a.zip")]) == 0
    assert demo_main([str(tmp_path / "b.zip")]) == 0
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert demo_main([str(tmp_path / "all"), "--lang", "all"]) == 0
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["fractions-es.zip", "fractions.zip"]
    assert "sha256" in capsys.readouterr().out


def test_install_demo_if_empty(tmp_path):
    from content_bundles import make_cfg as make_config

    from appliance.services import Services

    services = Services.open(make_config(tmp_path / "data", content__install_demo="true"))
    try:
        results = install_demo_if_empty(services)
        assert sorted(r.course_id for r in results) == ["fractions", "fractions-es"]
        assert rows(services, "SELECT count(*) FROM exercises") == [(2 * results[0].exercises,)]
        # Both languages use the same drawings: each stored once.
        assert rows(services, "SELECT count(*) FROM blobs") == [(results[0].assets,)]
        assert install_demo_if_empty(services) == []  # only when the box has no course
    finally:
        services.close()
    off = Services.open(make_config(tmp_path / "data2"))
    try:
        assert install_demo_if_empty(off) == []
    finally:
        off.close()
