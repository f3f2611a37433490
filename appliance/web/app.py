"""The Flask app factory. Thin on purpose: no threads, no network clients, no model loading here
(the runtime attaches those to ``Services``), so tests can build an app in milliseconds."""
from __future__ import annotations

import importlib
import logging
import os
import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask
from werkzeug.routing import IntegerConverter

from appliance.services import Services
from appliance.web import errors, security
from appliance.web.ids import ROW_ID_MAX

log = logging.getLogger(__name__)

# (module, attribute) of every blueprint. Listed explicitly: the route table is reviewed in one place.
BLUEPRINTS = (
    "appliance.web.health",
    "appliance.web.auth",
    "appliance.web.student",
    "appliance.web.teacher",
    "appliance.web.admin",
    "appliance.web.api",
    "appliance.web.setup",
    "appliance.web.learning_views",
    "appliance.content.serving",
    "appliance.inference.http",
)


class RowIdConverter(IntegerConverter):
    """``<int:...>`` in every route: a number SQLite can hold (a row id), else no such page (404).
    Werkzeug's own takes any size, and /teach/classes/100000000000000000000 reached the database as
    an int SQLite cannot bind (OverflowError, a 500)."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", ROW_ID_MAX)
        super().__init__(url_map, *args, **kwargs)


def create_app(services: Services) -> Flask:
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.url_map.converters["int"] = RowIdConverter  # before any route is added
    cfg = services.cfg
    app.config.update(
        SECRET_KEY=cfg.web.secret_key or _persistent_secret(services.data_dir),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cfg.web.secure_cookies,
        SESSION_COOKIE_NAME="ce_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=cfg.web.max_upload_mb * 1024 * 1024,
        JSON_SORT_KEYS=False,
    )
    app.extensions["ce"] = services
    app.before_request(security.enforce_roles)
    errors.install(app)
    for mod_name in BLUEPRINTS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:
                continue  # part not built in this checkout
            raise
        init = getattr(mod, "init_app", None)
        if init is not None:
            init(app)
        app.register_blueprint(mod.bp)
    return app


def _persistent_secret(data_dir: Path) -> str:
    """A signing key made once per box and kept with its data, never a built-in default."""
    path = Path(data_dir) / "secret_key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    tmp = path.with_suffix(f".tmp-{secrets.token_hex(8)}")
    # Created 0600 (never readable under a loose umask, not even for a moment).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)
    try:
        os.link(tmp, path)  # atomic create-if-absent: two workers starting at once agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
