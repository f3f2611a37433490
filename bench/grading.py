"""Free-text grading on children's answers: how many grades are wrong, and how many of those the
teacher is not asked to read.

    python -m bench.grading [--quick] [--repo DIR]

The answers in bench/data/children_answers.json (the demo courses' free-text questions, each answer
labelled right, wrong or half; halves are the teacher's call and not counted) are graded as a box
grades them (``SemanticGrader.judge``: as typed and, when a word is misspelt, again with the course's
words), side by side as typed only, and as a box grades them when each question has only its first
reference answer and no wrong answers (``one_reference``). A wrong grade whose confidence is below
``learning.review_below_confidence`` is on the teacher's list; a "sure" wrong grade is not, and is the
figure to keep low. ``--repo`` reuses a model repository instead of building the default models
(about a minute).
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from bench.common import emit

DATA = Path(__file__).resolve().parent / "data" / "children_answers.json"


def _services(data_dir: str, repo: str):
    from appliance.bootstrap import attach_components
    from appliance.config import load_config
    from appliance.content import install_demo_if_empty
    from appliance.services import Services

    env = {"CLASSROOM_EDGE_STORAGE__DATA_DIR": data_dir, "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "true",
           "CLASSROOM_EDGE_INFERENCE__REPOSITORY": repo, "CLASSROOM_EDGE_INFERENCE__WATCH_INTERVAL_S": "0"}
    services = Services.open(load_config(env=env))
    install_demo_if_empty(services)
    attach_components(services)
    return services


def _exercises(services) -> dict[tuple[str, str], dict]:
    with services.db.read() as conn:
        return {(r["course_id"], r["id"]): {**dict(r), "spec": json.loads(r["spec"])}
                for r in conn.execute("SELECT * FROM exercises WHERE kind = 'free_text'")}


def _tally(graded: list[tuple[dict, object]], below: float) -> dict:
    counted = [(a, j) for a, j in graded if a["expected"] != "half"]
    wrong = [(a, j) for a, j in counted if j.correct != (a["expected"] == "right")]
    sure_wrong = [(a, j) for a, j in wrong if j.confidence >= below]
    kinds = sorted({a["kind"] for a, _j in counted})
    return {
        "graded": len(counted),
        "wrong_grades": len(wrong),
        "sure_wrong_grades": len(sure_wrong),
        "sent_to_teacher": sum(1 for _a, j in graded if j.confidence < below),
        "wrong_by_kind": {k: sum(1 for a, _j in wrong if a["kind"] == k) for k in kinds},
        "sure_wrong": [{"answer": a["answer"], "expected": a["expected"], "similarity": j.similarity,
                        "threshold": j.threshold, "confidence": j.confidence} for a, j in sure_wrong],
    }


def _cut_to_one_reference(services) -> None:
    """Each free-text question with its first reference only and no wrong answers, as an author in a
    hurry writes it (the grader then has one way of saying a right answer to go by)."""
    def write(conn):
        for r in conn.execute("SELECT course_id, id, spec FROM exercises WHERE kind = 'free_text'").fetchall():
            spec = json.loads(r["spec"])
            spec["references"] = spec["references"][:1]
            spec.pop("wrong_answers", None)
            conn.execute("UPDATE exercises SET spec = ? WHERE course_id = ? AND id = ?",
                         (json.dumps(spec), r["course_id"], r["id"]))

    services.db.write(write)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="the misspelt answers only")
    ap.add_argument("--repo", help="a model repository with learner and minilm (default: build one)")
    args = ap.parse_args(argv)
    answers = json.loads(DATA.read_text())["answers"]
    if args.quick:
        answers = [a for a in answers if a["kind"] == "typos"]
    work = tempfile.mkdtemp(prefix="ce-bench-grading-")
    try:
        repo = args.repo
        if not repo:
            from appliance.inference.builders import build_default_models

            repo = str(Path(work) / "models")
            build_default_models(Path(repo), ("minilm",))
        services = _services(str(Path(work) / "data"), repo)
        try:
            grader = services.get("semantic")
            if grader is None or not grader.available()[0]:
                raise RuntimeError("the embedding model is not serving")
            exercises = _exercises(services)
            below = services.cfg.learning.review_below_confidence
            as_box = [(a, grader.judge(exercises[(a["course"], a["exercise"])], a["answer"])) for a in answers]
            as_typed = [(a, grader.judge(exercises[(a["course"], a["exercise"])], a["answer"], reread=False)) for a in answers]
            _cut_to_one_reference(services)
            exercises = _exercises(services)
            one_ref = [(a, grader.judge(exercises[(a["course"], a["exercise"])], a["answer"])) for a in answers]
        finally:
            services.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    box, typed = _tally(as_box, below), _tally(as_typed, below)
    changed = [{"answer": a["answer"], "expected": a["expected"], "as_typed": t.correct, "box": j.correct,
                "confidence": j.confidence}
               for (a, j), (_a, t) in zip(as_box, as_typed, strict=True) if j.correct != t.correct]
    return emit("grading", {
        "answers": len(answers),
        "review_below_confidence": below,
        "box": box,
        "as_typed_only": typed,
        "one_reference": _tally(one_ref, below),
        "grades_changed_by_reading_with_the_courses_words": changed,
    })


if __name__ == "__main__":
    main()
