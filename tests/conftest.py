"""Shared fixtures (Flask-tutorial style: cfg, services, app, client) and the CI skip guard.

Under CI=true a skipped test fails the run, unless it is marked ``gpu`` (CI has no GPU): tests that need
root or a namespace must really run there, so nothing is skipped silently.
"""
from __future__ import annotations

import os
import threading

import pytest
from config_helpers import make_config

from appliance.services import Services

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs an NVIDIA GPU; may skip anywhere")
    config.addinivalue_line("markers", "slow: takes more than a few seconds")
    config.addinivalue_line("markers", "root: needs root (namespaces, nspawn); skips outside CI only")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and item.get_closest_marker("gpu") is None and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true (not allowed): {report.longrepr}"


@pytest.fixture(autouse=True)
def fail_on_thread_exceptions():
    """A swallowed exception in a background thread fails the test (STYLE.md 9)."""
    seen = []
    previous = threading.excepthook
    threading.excepthook = lambda args: seen.append(args)
    yield
    threading.excepthook = previous
    if seen:
        args = seen[0]
        raise AssertionError(f"exception in thread {args.thread.name if args.thread else '?'}: {args.exc_value!r}")


@pytest.fixture
def cfg(tmp_path):
    return make_config(tmp_path / "data")


@pytest.fixture
def services(cfg):
    s = Services.open(cfg)
    yield s
    s.close()


@pytest.fixture
def app(services):
    from appliance.web.app import create_app

    app = create_app(services)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def box_zone():
    """Set the box's time zone for one test (TZ, as systemd or the image would), put back after."""
    import time

    before = os.environ.get("TZ")

    def set_zone(name: str) -> None:
        os.environ["TZ"] = name
        time.tzset()

    yield set_zone
    if before is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = before
    time.tzset()
