"""One error handler: JSON for machines (/api, /v2, /metrics), a page a person can act on elsewhere."""
from __future__ import annotations

import logging

from flask import jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from appliance import jsonsafe
from appliance.errors import AppError

log = logging.getLogger(__name__)

MACHINE_PREFIXES = ("/api/", "/v2")


def wants_json() -> bool:
    if request.path.startswith(MACHINE_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _render(status: int, body: dict):
    if wants_json():
        return jsonify(body), status
    try:
        return render_template("error.html", status=status, message=body["error"]), status
    except Exception:  # noqa: BLE001 - the error page itself must never fail
        return f"<!doctype html><title>{status}</title><p>{body['error']}</p>", status, {"Content-Type": "text/html"}


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, but a body nested too deep for the parser's stack is invalid JSON like any other
    (``jsonsafe``; ``get_json(silent=True)`` does not catch RecursionError): a 400, never a 500."""

    def loads(self, s, **kwargs):
        return jsonsafe.loads(s, **kwargs)


def install(app) -> None:
    app.json = BoundedJSONProvider(app)

    @app.errorhandler(AppError)
    def app_error(exc: AppError):
        if exc.status >= 500:
            log.error("%s: %s", request.path, exc.message)
        return _render(exc.status, exc.to_json())

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return _render(exc.code or 500, {"error": exc.description or exc.name, "code": exc.name.lower().replace(" ", "_")})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s", request.path)
        return _render(500, {"error": "Something went wrong on the box. It has been logged.", "code": "internal_error"})
