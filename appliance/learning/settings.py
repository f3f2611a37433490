"""The ``[learning]`` section: learner model, recommendations and grading."""
from __future__ import annotations

from appliance.config import section, setting


@section("learning")
class LearningSettings:
    """Personalisation on the box."""

    target_success: float = setting(0.75, "Predicted success the recommender aims for (desirable difficulty).")
    mastery_threshold: float = setting(0.85, "Predicted success above which a skill counts as mastered.")
