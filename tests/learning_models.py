"""The default models for the learning tests, built once per test session (the MiniLM pair takes ~40 s),
and a ``Services`` wired like a serving process (content, inference engine, learning hooks).

Shared by tests/learning and tests/web (a plain module: ``conftest`` names are ambiguous across dirs).
"""
from __future__ import annotations

from pathlib import Path

from lms_fixtures import lms_config

from appliance.bootstrap import attach_components
from appliance.services import Services

_BUILT: dict[str, Path] = {}


def built_models(tmp_path_factory) -> Path:
    """A model repository with learner, minilm (int8) and minilm-fp32, built from the PyPI packages."""
    if "root" not in _BUILT:
        from appliance.inference.builders import build_default_models

        root = tmp_path_factory.getbasetemp() / "learning-models"
        build_default_models(root)
        _BUILT["root"] = root
    return _BUILT["root"]


def learning_config(data_dir, repo: Path | None, **env):
    # No watcher thread: the tests swap nothing, and a repository that does not exist means "no models".
    base = {"inference__repository": str(repo) if repo else str(Path(data_dir) / "no-models"),
            "inference__watch_interval_s": "0", "inference__warmup_runs": "1"}
    base.update(env)
    return lms_config(data_dir, **base)


def learning_services(data_dir, repo: Path | None, **env) -> Services:
    services = Services.open(learning_config(data_dir, repo, **env))
    attach_components(services)
    return services
