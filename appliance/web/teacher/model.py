"""The class model page: what the box has learned from its classes, and "Train now".

Teachers see which version of the learner model serves their students, what the last local update
sent (its size and privacy cost), which global versions were held back and why, and can start a
training run without waiting for the nightly timer.
"""
from __future__ import annotations

from flask import current_app, redirect, render_template, url_for

from appliance.web.security import current_user, requires
from appliance.web.teacher import bp


def _services():
    return current_app.extensions["ce"]


@bp.get("/model")
@requires("teacher", "admin")
def model_page():
    services = _services()
    training = services.get("training")
    status = None
    if services.cfg.federated.enabled:
        from appliance.federated.status import federated_status

        status = federated_status(services)
    return render_template("teacher/model.html", status=status, enabled=services.cfg.federated.enabled,
                           running=bool(training and training.running), last=training.last if training else None,
                           uplink=bool(services.cfg.sync.broker_url))


@bp.post("/model/train")
@requires("teacher", "admin")
def train_now():
    training = _services().get("training")
    if training is not None and _services().cfg.federated.enabled:
        training.request(current_user()["username"] or current_user()["display_name"])
    return redirect(url_for("teacher.model_page"))
