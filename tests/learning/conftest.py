"""Fixtures shared by the learning tests: the default models (built once per run) and services over
the demo courses with those models."""
from __future__ import annotations

import pytest
from learning_models import built_models, learning_services

from appliance.content import install_demo_if_empty


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return built_models(tmp_path_factory)


@pytest.fixture
def demo_svc(tmp_path, models):
    """Services with both demo courses (English and Spanish) installed and the models loaded."""
    s = learning_services(tmp_path / "data", models, content__install_demo="true")
    install_demo_if_empty(s)
    yield s
    s.close()
