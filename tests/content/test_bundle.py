"""Manifest validation: every rule has a message that tells the author what to fix."""
import copy
import json

import pytest
from content_bundles import course, manifest_bytes, pack, rows

from appliance.content.bundle import find_cycle, load_manifest, parse_version, schema
from appliance.errors import ImportRejected


def _load(doc, files=None):
    files = files if files is not None else course()[1]
    return load_manifest(manifest_bytes(doc, files))


def _mutated(fn):
    doc, files = course()
    doc = copy.deepcopy(doc)
    fn(doc)
    return doc, files


def test_the_small_course_is_valid():
    doc, files = course()
    m = _load(doc, files)
    assert m.course_id == "mini" and m.version == "1.0.0" and len(m.unique_blobs()) == 2


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_unknown_schema_version(version):
    doc, _ = _mutated(lambda d: d.update(schema_version=version))
    with pytest.raises(ImportRejected, match=f"schema_version {version!r}.*does not understand"):
        _load(doc)


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["exercises"][0].update(skills=["nope"]), "exercise 'e1' is tagged with an unknown skill 'nope'"),
    (lambda d: d["exercises"][0].update(lesson="l9"), "exercise 'e1' belongs to an unknown lesson 'l9'"),
    (lambda d: d["skills"][1].update(prerequisites=["zzz"]), "unknown prerequisite 'zzz'"),
    (lambda d: d["skills"][0].update(prerequisites=["b"]), r"cycle: a -> b -> a"),
    (lambda d: d["skills"].__setitem__(0, {"id": "a", "name": "A", "prerequisites": ["a"]}), r"cycle: a -> a"),
    (lambda d: d["exercises"][0]["spec"].update(answer=5), "answer 5 is not one of its 2 choices"),
    (lambda d: d["exercises"][2]["spec"].update(patterns=["(unclosed"]), "not a valid regular expression"),
    (lambda d: d["exercises"][2].update(spec={"answers": [], "patterns": []}), "at least one answer or pattern"),
    (lambda d: d["exercises"][0]["spec"].update(choices=["x", "x"]), "two choices have the same text"),
    (lambda d: d["exercises"].append(dict(d["exercises"][0])), "repeats the id 'e1'"),
    (lambda d: d["exercises"][2].update(kind="free_text", spec={"references": ["Hello there."],
                                                               "wrong_answers": ["Bye.", "hello  THERE."]}),
     "'hello there.' is both a reference and a wrong answer"),
    (lambda d: d["exercises"][2].update(kind="free_text", spec={"references": ["Hi."], "wrong_answers": [""]}),
     "wrong_answers.*should be non-empty|is too short"),
    (lambda d: d["lessons"][0]["blocks"].append({"type": "image", "asset": "ghost.png", "alt": "?"}),
     "uses asset 'ghost.png', which is not listed"),
    (lambda d: d["lessons"][0]["blocks"][1].pop("alt"), "'alt' is a required property"),
    (lambda d: d["exercises"][1].update(kind="essay"), "'essay' is not one of"),
    (lambda d: d["exercises"][1]["spec"].update(tolerance=-1), "less than the minimum of 0"),
    (lambda d: d.update(id="Bad Id!"), "at id"),
    (lambda d: d.update(version="1.0-beta"), "at version"),
    (lambda d: d.update(extra_field=1), "Additional properties"),
    (lambda d: d.update(language="xx-Bogus"), "'xx-Bogus' is not a language tag this box knows"),
])
def test_semantic_and_schema_errors_name_the_problem(mutate, message):
    doc, _ = _mutated(mutate)
    with pytest.raises(ImportRejected, match=message):
        _load(doc)


def test_free_text_wrong_answers_are_accepted():
    doc, _ = _mutated(lambda d: d["exercises"][2].update(
        kind="free_text", spec={"references": ["Hello there."], "wrong_answers": ["Goodbye."], "threshold": None}))
    assert _load(doc).course_id == "mini"


def test_dangerous_asset_types_and_names_are_refused():
    doc, files = course()
    bad = {"page.html": {"sha256": "0" * 64, "size": 1, "mime": "text/html"}}
    with pytest.raises(ImportRejected, match="text/html"):
        _load(dict(doc, assets=bad), files)
    bad = {"../x.svg": {"sha256": "0" * 64, "size": 1, "mime": "image/svg+xml"}}
    with pytest.raises(ImportRejected, match="does not match"):
        _load(dict(doc, assets=bad), files)


def test_not_json_and_not_utf8():
    with pytest.raises(ImportRejected, match="not valid JSON"):
        load_manifest(b"{nope")
    with pytest.raises(ImportRejected, match="not valid JSON: nested too deeply"):  # RecursionError was a traceback
        load_manifest(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(ImportRejected, match="not UTF-8"):
        load_manifest(b"\xff\xfe{}")
    with pytest.raises(ImportRejected, match="JSON object"):
        load_manifest(b"[1, 2]")


def test_cycle_rejected_by_import_too(importer, content, tmp_path):
    doc, files = _mutated(lambda d: d["skills"][0].update(prerequisites=["b"]))
    with pytest.raises(ImportRejected, match="cycle"):
        importer.run(pack(tmp_path / "c.zip", doc, files))
    assert rows(content, "SELECT count(*) FROM courses") == [(0,)]


def test_find_cycle_handles_long_chains_without_recursion():
    chain = {f"s{i}": [f"s{i + 1}"] for i in range(5000)}
    chain["s5000"] = []
    assert find_cycle(chain) is None
    chain["s5000"] = ["s0"]
    cycle = find_cycle(chain)
    assert cycle[0] == cycle[-1] and len(cycle) == 5002


def test_versions_compare_numerically():
    assert parse_version("1.10") > parse_version("1.9.9")
    assert parse_version("1.0") == parse_version("1.0.0")


def test_every_schema_property_is_documented():
    """The JSON Schema is the authors' reference: every property carries a description."""
    undocumented = []

    def walk(node, path):
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                target = sub
                if "$ref" in sub and "description" not in sub:
                    target = schema()["$defs"][sub["$ref"].split("/")[-1]]
                if "description" not in sub and "description" not in target and "const" not in sub and "enum" not in sub:
                    undocumented.append(f"{path}.{key}")
            for key, sub in node.items():
                walk(sub, f"{path}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{path}[{i}]")

    walk(schema(), "$")
    assert undocumented == []
    assert json.dumps(schema())  # loads from the installed package data
