"""The JSON API under ``/api/v1``.

Every endpoint is declared once with ``@operation(...)``: that registers the Flask route, its roles
(``requires``) and its documentation, and ``/api/v1/openapi.json`` is generated from the app's route
table plus these declarations, so the document cannot drift from the code. Routes under /api/v1 that
other modules declare (``/api/v1/health``) are documented from their docstring and roles.

Errors are JSON (``appliance.web.errors``): ``{"error": message, "code": machine_code}``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from flask import Blueprint, current_app, jsonify, request

from appliance.errors import BadRequest, NotFound
from appliance.learning.progress import record_attempt
from appliance.people import classes as cls_mod
from appliance.web import device, imports
from appliance.web.mastery import refresh as refresh_mastery
from appliance.web.openapi import build_document
from appliance.web.security import current_user, requires
from appliance.web.teacher.reports import class_grid, course_for

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@dataclass
class Operation:
    endpoint: str
    summary: str
    roles: tuple[str, ...]
    request: dict | None = None          # JSON Schema of the body (application/json)
    response: dict = field(default_factory=lambda: {"type": "object"})
    status: int = 200
    upload: str | None = None            # multipart field name, for file uploads
    tags: tuple[str, ...] = ()


# The registry is part of the blueprint, not a module global of its own: one blueprint, one registry.
bp.operations = {}


def operation(rule: str, method: str, *, roles: tuple[str, ...], summary: str, request_schema: dict | None = None,
              response: dict | None = None, status: int = 200, upload: str | None = None, tags: tuple[str, ...] = ()):
    def wrap(view):
        view = requires(*roles)(view)
        endpoint = f"{bp.name}.{view.__name__}"
        bp.add_url_rule(rule, view_func=view, methods=[method])
        bp.operations[endpoint] = Operation(endpoint, summary, roles, request_schema,
                                            response or {"type": "object"}, status, upload, tags)
        return view
    return wrap


_ERROR = {"type": "object", "required": ["error", "code"],
          "properties": {"error": {"type": "string"}, "code": {"type": "string"}, "detail": {"type": "object"}}}
_ATTEMPT_IN = {
    "type": "object", "required": ["attempt_uid", "course_id", "exercise_id", "answer"],
    "properties": {
        "attempt_uid": {"type": "string", "pattern": "^[A-Za-z0-9-]{8,64}$",
                        "description": "Made by the client (a UUID). Sending it again returns the first result."},
        "course_id": {"type": "string"}, "exercise_id": {"type": "string"},
        "answer": {"type": "object", "description": "{choice: int} | {choices: [int]} | {value: str} | {text: str}"},
        "duration_ms": {"type": ["integer", "null"], "minimum": 0},
    },
}
_ATTEMPT_OUT = {
    "type": "object", "required": ["attempt_uid", "correct", "score", "feedback", "mastery", "replayed"],
    "properties": {
        "attempt_uid": {"type": "string"},
        "correct": {"type": ["boolean", "null"], "description": "null when the student is not told the grade yet: "
                    "the model was unsure of it (review) and the teacher reads the answer first."},
        "score": {"type": ["number", "null"]},
        "review": {"type": "boolean", "description": "The model's grade is unsure: no grade, worked answer or mastery "
                   "is given until the teacher reads it."},
        "feedback": {"type": "string", "enum": ["correct", "partly", "incorrect", "pending"]},
        "graded_by": {"type": "string"}, "explanation": {"type": "string"},
        "mastery": {"type": "object", "additionalProperties": {"type": "number"}},
        "lesson_status": {"type": "string"},
        "lesson_mastered": {"type": "boolean", "description": "Every skill of the lesson is mastered now (not in a replay)."},
        "replayed": {"type": "boolean"},
        "next": {"type": ["object", "null"], "description": "What the learner model suggests next, when one is active."},
    },
}
_JOB = {"type": "object", "properties": {"id": {"type": "string"}, "state": {"type": "string"}, "stage": {"type": "string"},
                                         "percent": {"type": "number"}, "error": {"type": ["string", "null"]},
                                         "result": {"type": ["object", "null"]}}}


@operation("/openapi.json", "GET", roles=("anonymous",), summary="This API's OpenAPI 3.1 document.", tags=("meta",))
def openapi():
    return jsonify(build_document(current_app, bp.operations, error_schema=_ERROR))


@operation("/me", "GET", roles=("student", "teacher", "admin"), summary="The signed-in account.", tags=("people",),
           response={"type": "object", "properties": {"uid": {"type": "string"}, "role": {"type": "string"},
                                                      "display_name": {"type": "string"}, "username": {"type": ["string", "null"]}}})
def me():
    u = current_user()
    return jsonify({"uid": u["uid"], "role": u["role"], "display_name": u["display_name"], "username": u["username"],
                    "language": u["language"]})


@operation("/attempts", "POST", roles=("student",), summary="Submit one answer; idempotent on attempt_uid.",
           request_schema=_ATTEMPT_IN, response=_ATTEMPT_OUT, tags=("learning",))
def create_attempt():
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("Send the answer as JSON (Content-Type: application/json).")
    result = record_attempt(current_app.extensions["ce"], current_user(), body)
    return jsonify(result), (200 if result.get("replayed") else 201)


@operation("/courses", "GET", roles=("student", "teacher", "admin"), summary="Installed courses with their lessons.",
           tags=("content",), response={"type": "array", "items": {"type": "object"}})
def courses():
    with current_app.extensions["ce"].db.read() as conn:
        out = [dict(r) for r in conn.execute("SELECT id, title, version, language, description FROM courses ORDER BY title")]
        for c in out:
            c["lessons"] = [dict(r) for r in conn.execute(
                "SELECT id, title, position FROM lessons WHERE course_id = ? ORDER BY position", (c["id"],))]
    return jsonify(out)


@operation("/me/progress", "GET", roles=("student",), summary="The student's mastery per skill and finished lessons.",
           tags=("learning",))
def my_progress():
    u = current_user()
    with current_app.extensions["ce"].db.read() as conn:
        mastery = refresh_mastery(conn, [dict(r) for r in conn.execute(
            "SELECT course_id, skill_id, p_mastery, successes, failures FROM mastery WHERE student_id = ?", (u["id"],))],
            u["id"])
        lessons = [dict(r) for r in conn.execute(
            "SELECT course_id, lesson_id, status FROM lesson_progress WHERE student_id = ?", (u["id"],))]
    return jsonify({"mastery": mastery, "lessons": lessons})


@operation("/classes", "GET", roles=("teacher", "admin"), summary="Classes the caller may manage.", tags=("people",),
           response={"type": "array", "items": {"type": "object"}})
def classes():
    with current_app.extensions["ce"].db.read() as conn:
        rows = cls_mod.classes_for(conn, current_user())
    return jsonify([{k: r[k] for k in ("id", "name", "uses_pin", "language", "size")} for r in rows])


@operation("/classes/<int:class_id>/progress", "GET", roles=("teacher", "admin"),
           summary="Students x skills mastery grid of a class for one course (?course=ID).", tags=("learning",))
def class_progress(class_id: int):
    services = current_app.extensions["ce"]
    course_id = request.args.get("course")
    with services.db.read() as conn:
        cls = cls_mod.get_class(conn, class_id, current_user())
        if not course_id:
            # As the teacher's grid page: the course the class works in, else one in its language.
            course = course_for(conn, None, class_id, cls.get("language") or "")
            if course is None:
                raise NotFound("No courses are installed.")
            course_id = course["id"]
        grid = class_grid(conn, services, class_id, course_id)
    rows = [{"student_uid": r["student"]["uid"], "display_name": r["student"]["display_name"],
             "lessons_done": r["lessons_done"], "skills": {c["skill"]: {"p": c["p"], "level": c["level"],
                                                                         "attempts": c["attempts"]} for c in r["cells"]}}
            for r in grid["rows"]]
    return jsonify({"class": {"id": cls["id"], "name": cls["name"]}, "course_id": course_id,
                    "skills": grid["skills"], "students": rows})


@operation("/status", "GET", roles=("admin",), summary="Device status: version, uptime, disk, database, caches, parts.",
           tags=("admin",))
def status():
    return jsonify(device.device_status(current_app.extensions["ce"]))


@operation("/imports", "POST", roles=("admin",), summary="Upload a course bundle (.zip) and start importing it.",
           upload="bundle", status=202, response=_JOB, tags=("content",))
def create_import():
    services = current_app.extensions["ce"]
    job_id = imports.start_import(services, request.files.get("bundle"), force=request.form.get("force") in ("on", "true", "1"))
    return jsonify(imports.job_status(services, job_id)), 202


@operation("/imports/<job_id>", "GET", roles=("admin",), summary="Progress of a course import.", response=_JOB,
           tags=("content",))
def get_import(job_id: str):
    return jsonify(imports.job_status(current_app.extensions["ce"], job_id))
