"""The demo course generator: "Fractions" for ages 9-11, in English (``fractions``) and Spanish
(``fractions-es``), built from one source.

Everything is computed: pictures are drawn as SVG by ``svg``, the sound by ``sound``, exercises and
their answers by ``exercises`` (``fractions.Fraction``), and the bundle is written deterministically,
so the same code always yields the same bytes and the same sha256. Run
``python -m appliance.content.demo OUT`` (or ``classroom-edge content demo``).
"""
from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction as F
from pathlib import Path

from appliance.content.demo import exercises, sound, svg
from appliance.content.demo.text import LANGUAGES, Lang

VERSION = "1.3.0"  # 1.1.0: wrong_answers on free-text exercises; 1.2.0: "tres cuartas partes" and the like; 1.3.0: numeric "form", Spanish decimal commas

PREREQUISITES = {
    "fraction-basics": [],
    "compare-fractions": ["fraction-basics"],
    "equivalent-fractions": ["fraction-basics"],
    "simplify-fractions": ["equivalent-fractions"],
    "add-like-denominators": ["fraction-basics"],
    "fraction-of-number": ["fraction-basics"],
    "mixed-numbers": ["add-like-denominators", "equivalent-fractions"],
    "decimals-fractions": ["simplify-fractions"],
    "word-problems": ["add-like-denominators", "fraction-of-number"],
}

LESSON_SKILLS = {
    "what-is-a-fraction": ["fraction-basics"],
    "comparing-fractions": ["compare-fractions"],
    "equivalent-fractions": ["equivalent-fractions", "simplify-fractions"],
    "adding-fractions": ["add-like-denominators"],
    "fraction-of-a-number": ["fraction-of-number"],
    "mixed-numbers": ["mixed-numbers"],
    "decimals-and-fractions": ["decimals-fractions"],
    "word-problems": ["word-problems"],
}


def media() -> dict[str, tuple[bytes, str]]:
    """Every asset by name: (bytes, mime). Language-neutral, so both courses share the blobs."""
    s = "image/svg+xml"
    return {
        "pies-half-quarter-three-quarters.svg": (svg.pies([(1, 2), (1, 4), (3, 4)]), s),
        "bar-2-3.svg": (svg.fraction_bar(2, 3), s),
        "whole-half-quarter-notes.wav": (sound.whole_half_quarter_wav(), "audio/wav"),
        "bars-2-5-and-4-5.svg": (svg.bars([(2, 5), (4, 5)]), s),
        "pies-1-3-and-1-4.svg": (svg.pies([(1, 3), (1, 4)]), s),
        "bars-1-2-2-4-4-8.svg": (svg.bars([(1, 2), (2, 4), (4, 8)]), s),
        "bars-6-8-and-3-4.svg": (svg.bars([(6, 8), (3, 4)]), s),
        "line-sevenths-2-plus-3.svg": (svg.number_line(7, jumps=[(F(0), F(2, 7)), (F(2, 7), F(3, 7))], points=[F(5, 7)]), s),
        "line-eighths-6-minus-2.svg": (svg.number_line(8, jumps=[(F(6, 8), F(-2, 8))], points=[F(4, 8)]), s),
        "dots-12-in-3-groups.svg": (svg.dot_groups(12, 3, 2), s),
        "mixed-1-3-4.svg": (svg.mixed_number(1, 3, 4), s),
        "line-quarters-to-2.svg": (svg.number_line(4, upto=2, points=[F(7, 4)]), s),
        "line-tenths.svg": (svg.number_line(10, decimals=True, points=[F(3, 10)]), s),
        "pizza-8-slices-3-eaten.svg": (svg.pizza(8, 3), s),
    }


def _block(spec: tuple) -> dict:
    kind = spec[0]
    if kind == "text":
        return {"type": "text", "markdown": spec[1]}
    if kind == "image":
        return {"type": "image", "asset": spec[1], "alt": spec[2]}
    block = {"type": kind, "asset": spec[1], "title": spec[2]}
    if len(spec) > 3:
        block["transcript"] = spec[3]
    return block


def build(lang_code: str = "en") -> tuple[bytes, dict[str, bytes]]:
    """``(course.json bytes, {sha256: bytes})`` of the course in one language."""
    t = Lang(lang_code)
    files = media()
    assets = {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "mime": mime}
              for name, (data, mime) in files.items()}
    doc = {
        "schema_version": 1,
        "id": t.course["id"],
        "version": VERSION,
        "title": t.course["title"],
        "language": lang_code,
        "description": t.course["description"],
        "audience": t.course["audience"],
        "skills": [{"id": sid, "name": name, "description": desc, "prerequisites": PREREQUISITES[sid]}
                   for sid, (name, desc) in t.skills.items()],
        "lessons": [{"id": lesson["id"], "title": lesson["title"], "skills": LESSON_SKILLS[lesson["id"]],
                     "blocks": [_block(b) for b in lesson["blocks"]]} for lesson in t.lessons],
        "exercises": exercises.generate(t),
        "assets": assets,
    }
    manifest = (json.dumps(doc, ensure_ascii=False, indent=1) + "\n").encode("utf-8")
    blobs = {assets[name]["sha256"]: data for name, (data, _) in files.items()}
    return manifest, blobs


def write(out: str | os.PathLike, lang_code: str = "en", sign_key: str | None = None) -> Path:
    """Write the course to ``out`` (``.zip`` or a directory); sign it with a base64 private key if given."""
    from appliance.content import signing, writer

    manifest, blobs = build(lang_code)
    sig = signing.sign(manifest, sign_key) if sign_key else None
    return writer.write_bundle(out, manifest, blobs, sig)


def write_all(out_dir: str | os.PathLike, sign_key: str | None = None, as_zip: bool = True) -> list[Path]:
    """Every language into ``out_dir`` as ``<course_id>.zip`` (or ``<course_id>/``)."""
    out = []
    for code in LANGUAGES:
        cid = Lang(code).course["id"]
        out.append(write(Path(out_dir) / (f"{cid}.zip" if as_zip else cid), code, sign_key))
    return out
