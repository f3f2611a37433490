"""The course bundle format: what a valid ``course.json`` is.

Structure is checked against ``schema/course.schema.json`` (the documented contract that course
authors and the hub read); the rules JSON Schema cannot express are checked here: unique ids,
references between skills, lessons, exercises and assets, prerequisite cycles, answer indices inside
the choices, regular expressions that compile. Every failure is an ``ImportRejected`` whose message
names the place in the manifest, so an author can fix the bundle without reading our code.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources

from appliance import jsonsafe
from appliance.errors import ImportRejected

MANIFEST = "course.json"
SIGNATURE = "course.json.sig"
ASSET_DIR = "assets"
SCHEMA_VERSIONS = frozenset({1})
MEDIA_BLOCKS = ("video", "audio", "pdf")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


@functools.lru_cache(maxsize=1)
def schema() -> dict:
    text = resources.files("appliance.content").joinpath("schema/course.schema.json").read_text("utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=1)
def _validator():
    import jsonschema  # imported lazily: only imports need it

    return jsonschema.Draft202012Validator(schema())


def asset_member(sha256: str) -> str:
    """Where the bytes of an asset live inside a bundle."""
    return f"{ASSET_DIR}/{sha256}"


def is_asset_member(name: str) -> bool:
    head, _, tail = name.partition("/")
    return head == ASSET_DIR and bool(_SHA_RE.match(tail))


def parse_version(text: str) -> tuple[int, ...]:
    """``"1.10.2"`` -> ``(1, 10, 2)``, padded so ``1.0`` equals ``1.0.0``."""
    parts = tuple(int(p) for p in text.split("."))
    return parts + (0,) * (4 - len(parts))


@dataclass(frozen=True)
class Manifest:
    """A validated ``course.json``: the parsed document and its exact bytes (what a signature covers)."""

    data: dict
    raw: bytes

    @property
    def course_id(self) -> str:
        return self.data["id"]

    @property
    def version(self) -> str:
        return self.data["version"]

    @property
    def assets(self) -> dict[str, dict]:
        return self.data["assets"]

    def unique_blobs(self) -> dict[str, int]:
        """sha256 -> size of every distinct asset (two names may share one file)."""
        return {a["sha256"]: a["size"] for a in self.assets.values()}


def load_manifest(raw: bytes) -> Manifest:
    """Parse and fully validate manifest bytes; raise ``ImportRejected`` saying what is wrong."""
    try:
        data = jsonsafe.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ImportRejected(f"{MANIFEST} is not UTF-8 text.") from None
    except json.JSONDecodeError as exc:
        raise ImportRejected(f"{MANIFEST} is not valid JSON: {exc.msg} at line {exc.lineno}.") from None
    if not isinstance(data, dict):
        raise ImportRejected(f"{MANIFEST} must hold a JSON object.")
    version = data.get("schema_version")
    if version not in SCHEMA_VERSIONS:
        known = ", ".join(str(v) for v in sorted(SCHEMA_VERSIONS))
        raise ImportRejected(
            f"{MANIFEST} has schema_version {version!r}, which this box does not understand "
            f"(it reads version {known}). Update the appliance or export the course for this version."
        )
    _check_schema(data)
    check_semantics(data)
    return Manifest(data, raw)


def _check_schema(data: dict) -> None:
    from jsonschema.exceptions import best_match

    errors = list(_validator().iter_errors(data))
    if not errors:
        return
    # best_match descends into oneOf/anyOf to the most specific reason ("alt is required", not
    # "is not valid under any of the given schemas").
    err = best_match(errors)
    where = _path(err.absolute_path) or "the top level"
    more = f" ({len(errors) - 1} more problems)" if len(errors) > 1 else ""
    raise ImportRejected(f"{MANIFEST}: at {where}: {err.message}{more}")


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _unique(items: list[dict], what: str) -> set[str]:
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item["id"] in seen:
            raise ImportRejected(f"{MANIFEST}: {what}[{i}] repeats the id '{item['id']}'; ids must be unique.")
        seen.add(item["id"])
    return seen


def check_semantics(data: dict) -> None:
    """Cross-references and rules beyond the JSON Schema (the schema must already have passed)."""
    skills = _unique(data["skills"], "skills")
    lessons = _unique(data["lessons"], "lessons")
    _unique(data["exercises"], "exercises")
    assets = data["assets"]
    _check_language(data["language"])

    prereqs = {s["id"]: s.get("prerequisites", []) for s in data["skills"]}
    for sid, reqs in prereqs.items():
        for r in reqs:
            if r not in skills:
                raise ImportRejected(f"{MANIFEST}: skill '{sid}' lists an unknown prerequisite '{r}'.")
    cycle = find_cycle(prereqs)
    if cycle:
        raise ImportRejected(f"{MANIFEST}: skill prerequisites form a cycle: {' -> '.join(cycle)}.")

    for lesson in data["lessons"]:
        for s in lesson.get("skills", []):
            if s not in skills:
                raise ImportRejected(f"{MANIFEST}: lesson '{lesson['id']}' names an unknown skill '{s}'.")
        for j, block in enumerate(lesson["blocks"]):
            if block["type"] != "text" and block["asset"] not in assets:
                raise ImportRejected(
                    f"{MANIFEST}: lesson '{lesson['id']}' block {j} uses asset '{block['asset']}', "
                    "which is not listed in assets."
                )

    for ex in data["exercises"]:
        if ex["lesson"] not in lessons:
            raise ImportRejected(f"{MANIFEST}: exercise '{ex['id']}' belongs to an unknown lesson '{ex['lesson']}'.")
        for s in ex["skills"]:
            if s not in skills:
                raise ImportRejected(f"{MANIFEST}: exercise '{ex['id']}' is tagged with an unknown skill '{s}'.")
        _check_spec(ex)


def _check_spec(ex: dict) -> None:
    kind, spec, eid = ex["kind"], ex["spec"], ex["id"]
    where = f"{MANIFEST}: exercise '{eid}'"
    if kind == "single_choice":
        if spec["answer"] >= len(spec["choices"]):
            raise ImportRejected(f"{where}: answer {spec['answer']} is not one of its {len(spec['choices'])} choices.")
    elif kind == "multiple_choice":
        bad = [a for a in spec["answer"] if a >= len(spec["choices"])]
        if bad:
            raise ImportRejected(f"{where}: answers {bad} are not among its {len(spec['choices'])} choices.")
    elif kind == "short_text":
        if not spec.get("answers") and not spec.get("patterns"):
            raise ImportRejected(f"{where}: a short_text exercise needs at least one answer or pattern.")
        for p in spec.get("patterns", []):
            try:
                re.compile(p)
            except re.error as exc:
                raise ImportRejected(f"{where}: pattern {p!r} is not a valid regular expression ({exc}).") from None
    elif kind == "free_text":
        # A text that is both a reference and a wrong answer would calibrate the grader against itself.
        same = {" ".join(t.split()).casefold() for t in spec["references"]} & \
            {" ".join(t.split()).casefold() for t in spec.get("wrong_answers", [])}
        if same:
            raise ImportRejected(f"{where}: {sorted(same)[0]!r} is both a reference and a wrong answer.")
    if kind in ("single_choice", "multiple_choice") and len(set(spec["choices"])) != len(spec["choices"]):
        raise ImportRejected(f"{where}: two choices have the same text.")


def _check_language(tag: str) -> None:
    """The schema checks the tag's shape; here its language must be one (Unicode CLDR, as Babel has
    it): "xx-Bogus" was installed and shown as "xx-Bogus" to everyone."""
    from babel import Locale, UnknownLocaleError

    try:
        Locale.parse(tag.split("-")[0])
    except (UnknownLocaleError, ValueError):
        raise ImportRejected(f"{MANIFEST}: '{tag}' is not a language tag this box knows (en, es, pt-BR...).") from None


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """A cycle in ``node -> prerequisites`` as a path that ends where it starts, or None."""
    WHITE, GREY, BLACK = 0, 1, 2
    colour = dict.fromkeys(graph, WHITE)
    for root in sorted(graph):
        if colour[root] != WHITE:
            continue
        # Iterative DFS: a deep prerequisite chain must not hit Python's recursion limit.
        stack = [(root, iter(graph[root]))]
        path = [root]
        colour[root] = GREY
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = BLACK
                stack.pop()
                path.pop()
            elif colour.get(child) == GREY:
                return path[path.index(child):] + [child]
            elif colour.get(child) == WHITE:
                colour[child] = GREY
                stack.append((child, iter(graph[child])))
                path.append(child)
    return None
