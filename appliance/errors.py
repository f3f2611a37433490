"""One error vocabulary for the whole appliance.

Every failure a person or a client can act on is an ``AppError``: it carries the HTTP status, a stable
machine code for the JSON API and a message written for a teacher or an administrator. The web layer
renders it as JSON under ``/api`` and ``/v2`` and as a friendly page elsewhere (see
``appliance.web.errors``); the CLI prints the message and exits non-zero.
"""
from __future__ import annotations


class AppError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, detail: dict | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail or {}

    def to_json(self) -> dict:
        body = {"error": self.message, "code": self.code}
        if self.detail:
            body["detail"] = self.detail
        return body


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"


class Forbidden(AppError):
    status = 403
    code = "forbidden"


class FormExpired(Forbidden):
    """A form sent with a CSRF token the session no longer has (signed out meanwhile, an old tab)."""
    code = "form_expired"


class NotFound(AppError):
    status = 404
    code = "not_found"


class Conflict(AppError):
    status = 409
    code = "conflict"


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"


class TooManyRequests(AppError):
    status = 429
    code = "too_many_requests"


class Unavailable(AppError):
    status = 503
    code = "unavailable"


class ConfigError(AppError):
    """A configuration problem; the message names the key and where it came from."""

    status = 500
    code = "config_error"


class IntegrityError(AppError):
    """Content or a model failed a hash or signature check: never used, never half-applied."""

    status = 422
    code = "integrity_error"


class ImportRejected(BadRequest):
    """A course bundle was refused; nothing of it became visible."""

    code = "import_rejected"
