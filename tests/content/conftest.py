"""Fixtures for content tests: services with the content parts attached."""
from __future__ import annotations

import pytest

from appliance.content import attach


@pytest.fixture
def content(services):
    """Services with the content parts attached; returns the services."""
    attach(services)
    return services


@pytest.fixture
def importer(content):
    return content.get("content_importer")
