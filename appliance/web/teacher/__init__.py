"""Teacher pages: classes and rosters (``roster``), and what the class has learned (``reports``).

Admins may open every class; a teacher only their own (others answer 404, so class ids do not leak).
"""
from flask import Blueprint

bp = Blueprint("teacher", __name__, url_prefix="/teach")

# The view modules add their routes to ``bp``; imported here so registering ``bp`` brings them all.
from appliance.web.teacher import model, reports, roster  # noqa: E402,F401 (views need bp first)
