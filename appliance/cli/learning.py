"""``classroom-edge learning prepare | status | next``.

``prepare`` does ahead of time what the web workers otherwise do on first use: calibrate every
free-text exercise on the serving embedding model and index every course for search (both stored in
the database, so every worker reads them). Run it after importing a course or changing a model; the
first student then waits for nothing. ``status`` prints the learning part's status; ``next`` prints a
student's recommendation (to check what the LMS would say, and why).
"""
from __future__ import annotations

import json
import time

from appliance.cli.common import config_from_args


def register(sub) -> None:
    p = sub.add_parser("learning", help="learner model, free-text calibration, search index")
    lsub = p.add_subparsers(dest="learning_command", metavar="ACTION", required=True)

    def add(name, helptext, func):
        c = lsub.add_parser(name, help=helptext)
        c.add_argument("--config", dest="sub_config", help="config file")
        c.add_argument("--data-dir", help="override [storage] data_dir")
        c.set_defaults(func=func)
        return c

    c = add("prepare", "calibrate free-text grading and build the search index for every course", _prepare)
    c.add_argument("--course", action="append", help="only this course (repeatable)")
    add("status", "which models the learning features use, or why they fall back (JSON)", _status)
    c = add("next", "what the LMS recommends to a student next, and why (JSON)", _next)
    c.add_argument("student", help="the student's uid")
    c.add_argument("course")


def _services(args):
    from appliance.bootstrap import attach_components
    from appliance.services import Services

    cfg = config_from_args(args, storage={"data_dir": args.data_dir}, inference={"watch_interval_s": 0})
    services = Services.open(cfg)
    attach_components(services)
    return services


def _prepare(args) -> int:
    from appliance.errors import Unavailable

    services = _services(args)
    try:
        ok, why = services.get("semantic").available()
        if not ok:
            raise Unavailable(f"nothing to prepare: {why}")
        with services.db.read() as conn:
            courses = args.course or [r[0] for r in conn.execute("SELECT id FROM courses ORDER BY id")]
        out = {}
        for course in courses:
            t0 = time.perf_counter()
            cals = services.get("semantic").calibrate_course(course)
            items = services.get("search").index_course(course)
            out[course] = {"free_text_calibrated": {k: v.threshold for k, v in sorted(cals.items())},
                           "search_items": items, "seconds": round(time.perf_counter() - t0, 2)}
        print(json.dumps(out, indent=2))
        return 0
    finally:
        services.close()


def _status(args) -> int:
    services = _services(args)
    try:
        status = {p.name: p for p in services.statuses()}["learning"]
        print(json.dumps(status.to_json(), indent=2))
        return 0 if status.state == "ok" else 1
    finally:
        services.close()


def _next(args) -> int:
    from appliance.errors import NotFound

    services = _services(args)
    try:
        with services.db.read() as conn:
            row = conn.execute("SELECT * FROM users WHERE uid = ? AND role = 'student'", (args.student,)).fetchone()
        if row is None:
            raise NotFound(f"no student with uid {args.student!r}")
        print(json.dumps(services.get("learner").next_up(dict(row), args.course), indent=2, ensure_ascii=False))
        return 0
    finally:
        services.close()
