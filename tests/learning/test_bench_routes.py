"""The bench-only routes of ``bench.inference`` and ``bench.learner_breakdown`` still work against the
product code they call (they use private helpers of ``appliance.inference.http``: a changed signature
broke ``make bench`` unnoticed once). One request each through the Flask app; no load, no timing."""
from __future__ import annotations

import numpy as np

from appliance.web.app import create_app


def _learner_body(services) -> tuple[bytes, dict]:
    from bench.inference import _binary_body, _learner_rows

    loaded = services.get("inference").loaded("learner")
    rows = _learner_rows(loaded.mv.meta, 1)
    return _binary_body([(loaded.backend.inputs[0].name, "FP32", rows.astype(np.float32))])


def test_the_same_answer_route_of_bench_inference_answers(demo_svc):
    from bench.inference import SAME_ANSWER_ROUTE, _add_same_answer_route

    app = create_app(demo_svc)
    _add_same_answer_route(app, demo_svc)
    body, headers = _learner_body(demo_svc)
    client = app.test_client()
    real = client.post("/v2/models/learner/infer", data=body, headers=headers)
    same = client.post(f"{SAME_ANSWER_ROUTE}/learner/infer", data=body, headers=headers)
    assert real.status_code == 200 and same.status_code == 200
    assert len(same.data) == len(real.data)  # the same answer bytes, without running the model


def test_every_step_of_the_learner_breakdown_answers(demo_svc):
    from bench._bare_server import STEPS, wrap

    app = wrap(create_app(demo_svc), demo_svc)
    body, headers = _learner_body(demo_svc)
    client = app.test_client()
    assert client.post("/v2/models/learner/infer", data=body, headers=headers).status_code == 200  # stores the plan
    for step in STEPS:
        assert client.post(f"/bare/{step}", data=body, headers=headers).status_code == 200, step
    for route in ("/flask/same", "/flask/ort"):
        assert client.post(route, data=body, headers=headers).status_code == 200, route


def test_the_benchmarks_classroom_seed_makes_a_pin_class(tmp_path):
    """bench.classroom.seed (bench.lms, bench.learning) calls the product's enrolment directly."""
    from bench.classroom import seed

    room = seed(str(tmp_path / "data"), 3, demo=False)
    assert len(room["students"]) == 3 and all(s.pin and len(s.pin) >= 4 for s in room["students"])


def test_bench_grading_counts_the_grades_reading_with_the_courses_words_changed(models, monkeypatch, tmp_path):
    # ``bench.grading`` reads its answers, grades them both ways and writes its JSON (here the
    # misspelt answers only, on the test session's models).
    import bench.common
    from bench.grading import main

    monkeypatch.setattr(bench.common, "OUT", tmp_path)
    out = main(["--quick", "--repo", str(models)])
    assert out["answers"] == out["box"]["graded"] > 5  # the misspelt answers are all labelled
    assert out["box"]["wrong_grades"] < out["as_typed_only"]["wrong_grades"]
    assert out["grades_changed_by_reading_with_the_courses_words"]
    assert all(c["box"] != c["as_typed"] for c in out["grades_changed_by_reading_with_the_courses_words"])
    assert (tmp_path / "grading.json").is_file()
