"""The box's downlink handler with the federated model policy in it.

``sync.handlers.InstallHandler`` imports a model from the hub into the repository but never activates
it. For the federated model this handler adds two things around that import:
- before: pin the currently serving version in ``ACTIVE``. A repository without an ACTIVE file serves
  its highest version, and ``g...`` versions sort above locally built numeric ones, so without the pin
  the import itself would switch the model on, before anyone judged it;
- after: ``activation.consider`` verifies, judges and activates or keeps the version as a candidate.
Other models pass through unchanged.
"""
from __future__ import annotations

import logging
from pathlib import Path

from appliance.sync.handlers import InstallHandler

log = logging.getLogger(__name__)


class FederatedInstallHandler(InstallHandler):
    def on_model(self, name: str, version: str, path: Path) -> None:
        cfg = self.services.cfg
        if name != cfg.federated.model or not cfg.federated.enabled:
            super().on_model(name, version, path)
            return
        from appliance.federated.activation import consider, serving_repository

        serving = serving_repository(cfg)
        current = serving.active_version(name)
        if current is not None and not (serving.root / name / "ACTIVE").exists():
            serving.set_active(name, current)  # pin: importing must not change what is served
        super().on_model(name, version, path)
        consider(self.services, version)
