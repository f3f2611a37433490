"""The bench-only routes of ``bench.inference`` and ``bench.learner_breakdown`` still work against the
product code they call (they use private helpers of ``appliance.inference.http``: a changed signature
broke ``make bench`` unnoticed once). One request each through the Flask app; no load, no timing."""
from __future__ import annotations

import numpy as np
import pytest
from learning_models import built_models, learning_services

from appliance.web.app import create_app


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return built_models(tmp_path_factory)


@pytest.fixture
def services(tmp_path, models):
    s = learning_services(tmp_path / "data", models)
    yield s
    s.close()


def _learner_body(services) -> tuple[bytes, dict]:
    from bench.inference import _binary_body, _learner_rows

    loaded = services.get("inference").loaded("learner")
    rows = _learner_rows(loaded.mv.meta, 1)
    return _binary_body([(loaded.backend.inputs[0].name, "FP32", rows.astype(np.float32))])


def test_the_same_answer_route_of_bench_inference_answers(services):
    from bench.inference import SAME_ANSWER_ROUTE, _add_same_answer_route

    app = create_app(services)
    _add_same_answer_route(app, services)
    body, headers = _learner_body(services)
    client = app.test_client()
    real = client.post("/v2/models/learner/infer", data=body, headers=headers)
    same = client.post(f"{SAME_ANSWER_ROUTE}/learner/infer", data=body, headers=headers)
    assert real.status_code == 200 and same.status_code == 200
    assert len(same.data) == len(real.data)  # the same answer bytes, without running the model


def test_every_step_of_the_learner_breakdown_answers(services):
    from bench._bare_server import STEPS, wrap

    app = wrap(create_app(services), services)
    body, headers = _learner_body(services)
    client = app.test_client()
    assert client.post("/v2/models/learner/infer", data=body, headers=headers).status_code == 200  # stores the plan
    for step in STEPS:
        assert client.post(f"/bare/{step}", data=body, headers=headers).status_code == 200, step
    for route in ("/flask/same", "/flask/ort"):
        assert client.post(route, data=body, headers=headers).status_code == 200, route
