"""Fixtures for the inference tests: a repository directory and engines that are closed afterwards.
The tiny models themselves are in ``inference_models.py`` (a unique module name, importable by tests)."""
from __future__ import annotations

import pytest
from inference_models import Settings

from appliance.inference.engine import InferenceEngine


@pytest.fixture
def repo(tmp_path):
    r = tmp_path / "models"
    r.mkdir()
    return r


@pytest.fixture
def make_engine(repo, tmp_path):
    engines = []

    def make(**overrides):
        e = InferenceEngine(Settings(**overrides), repo, tmp_path / "cache").start()
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.close()
