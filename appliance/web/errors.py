"""One error handler: JSON for machines (/api, /v2, /metrics), a page a person can act on elsewhere."""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

from flask import jsonify, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext as _
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
        return render_template("error.html", status=status, message=body["error"], code=body.get("code", ""),
                               detail=body.get("detail") or {}, back=_same_site_referrer()), status
    except Exception:  # noqa: BLE001 - the error page itself must never fail
        return f"<!doctype html><title>{status}</title><p>{body['error']}</p>", status, {"Content-Type": "text/html"}


def _same_site_referrer() -> str:
    """The page the request came from, when it is one of ours (the expired form's "Back to the form")."""
    ref = urlsplit(request.referrer or "")
    if ref.netloc and ref.netloc != request.host:
        return ""
    return (ref.path + ("?" + ref.query if ref.query else "")) if ref.path.startswith("/") else ""


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
        # Werkzeug's own descriptions are English and written for developers.
        message = {404: _("There is nothing at this address. Check it, or go back to the start page."),
                   405: _("This address cannot be opened like that. Go back and use the page's buttons.")}.get(
            exc.code or 500, exc.description or exc.name)
        return _render(exc.code or 500, {"error": str(message), "code": exc.name.lower().replace(" ", "_")})

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error on %s", request.path)
        return _render(500, {"error": _("Something went wrong on the box. It has been logged."), "code": "internal_error"})
