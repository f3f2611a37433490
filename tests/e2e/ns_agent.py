"""A small Python process that runs inside a test namespace and does what the test asks.

Protocol: one JSON object per line on stdin, ``{"id": N, "op": NAME, "args": {...}}``; one answer per
line on stdout, ``{"id": N, "ok": true, "result": ...}`` or ``{"id": N, "ok": false, "error": "..."}``.
``op`` is a built-in (``ping``, ``exit``, ``http_get``, ``serve_http``, ``stop_http``) or
``module:function`` from ``tests/e2e`` (e.g. ``mdns_ops:advertise``), called as
``function(state, **args)``; ``Agent.call`` keeps ``timeout`` for itself, so ops name their own waits
``wait_s``. ``state`` is a dict that lives as long as the agent; ops that start something put a
callable in ``state["cleanup"]``, and those run (newest first) on ``exit`` or end of input.
Logs and anything printed go to stderr, which the test keeps in a file.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import threading
import traceback
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

log = logging.getLogger("ns_agent")


def op_ping(state):
    return {"pid": os.getpid()}


def op_http_get(state, url, wait_s=5.0):
    """GET ``url`` without any proxy; status and body (text)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=wait_s) as resp:
            return {"status": resp.status, "body": resp.read().decode("utf-8", "replace")}
    except urllib.error.HTTPError as exc:
        return {"status": exc.code, "body": exc.read().decode("utf-8", "replace")}
    except OSError as exc:
        return {"status": None, "error": str(exc)}


def op_serve_http(state, port=0, body="hello", host="0.0.0.0"):
    """A tiny threaded HTTP server: ``body`` on every path, JSON ``{"status": "ok"}`` on /api/v1/health."""
    page = body.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.startswith("/api/v1/health"):
                data, ctype = b'{"status": "ok"}', "application/json"
            else:
                data, ctype = page, "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):
            log.info("http %s", fmt % args)

    server = ThreadingHTTPServer((host, port), Handler)
    thread = threading.Thread(target=server.serve_forever, name="http", kwargs={"poll_interval": 0.2})
    thread.start()

    def stop():
        server.shutdown()
        server.server_close()
        thread.join(5)

    state["http"] = stop
    state.setdefault("cleanup", []).append(lambda: op_stop_http(state))
    return {"port": server.server_address[1]}


def op_stop_http(state):
    stop = state.pop("http", None)
    if stop:
        stop()
    return {"stopped": stop is not None}


BUILTINS = {"ping": op_ping, "http_get": op_http_get, "serve_http": op_serve_http, "stop_http": op_stop_http}


def resolve(op: str):
    if op in BUILTINS:
        return BUILTINS[op]
    module, _, func = op.partition(":")
    if not func:
        raise ValueError(f"unknown op {op!r}")
    return getattr(importlib.import_module(module), func)


def cleanup(state) -> None:
    for fn in reversed(state.pop("cleanup", [])):
        try:
            fn()
        except Exception:
            log.exception("cleanup step failed")


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    proto = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    state: dict = {}
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            req = json.loads(line)
            if req.get("op") == "exit":
                break
            try:
                result = resolve(req["op"])(state, **req.get("args", {}))
                reply = {"id": req.get("id"), "ok": True, "result": result}
            except Exception as exc:  # noqa: BLE001 - reported to the test, which decides
                log.error("op %s failed:\n%s", req.get("op"), traceback.format_exc())
                reply = {"id": req.get("id"), "ok": False, "error": f"{type(exc).__name__}: {exc}"}
            proto.write(json.dumps(reply) + "\n")
    finally:
        cleanup(state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
