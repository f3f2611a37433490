"""The ``[logging]`` section."""
from __future__ import annotations

from appliance.config import section, setting


@section("logging")
class LoggingSettings:
    """Logging; under systemd records go to journald with structured fields."""

    level: str = setting("INFO", "Log level.", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
