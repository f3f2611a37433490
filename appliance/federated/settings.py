"""The ``[federated]`` section: local training and model updates."""
from __future__ import annotations

from appliance.config import section, setting


@section("federated")
class FederatedSettings:
    """Federated learning on the box."""

    clip_norm: float = setting(5.0, "L2 norm bound applied to every update before it leaves the box.")
    activation_margin: float = setting(0.005, "A new global model is activated only if its holdout AUC is at most this much below the current one.")
