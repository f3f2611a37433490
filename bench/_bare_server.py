"""``python -m bench._bare_server web ...``: the real ``classroom-edge`` command, with bench-only WSGI
routes in front of the Flask app, for ``bench.learner_breakdown``. Never part of the product.

Each route under ``/bare/`` does one more step of a learner inference than the one before, without
Flask: the difference between two of them, under load in the same server, is what that step costs.
Everything else falls through to the unchanged app, so the same server also answers the real
``/v2`` routes for comparison. Requests must carry the learner's binary tensors, as tritonclient
sends them; the first real ``/v2`` inference with that head stores the plan these routes reuse.
"""
from __future__ import annotations

import json

STEPS = ("live", "read", "decode", "numpy", "ort", "infer")
_JSON = [("Content-Type", "application/json"), ("X-Content-Type-Options", "nosniff")]
_OCTETS = [("Content-Type", "application/octet-stream"), ("X-Content-Type-Options", "nosniff")]


def _answer(start_response, status: str, headers: list, body: bytes) -> list[bytes]:
    start_response(status, [*headers, ("Content-Length", str(len(body)))])
    return [body]


def _learner_math(engine, model: str):
    """The learner's own arithmetic in numpy (weights read back from its ONNX file): what the same
    work costs when it holds the GIL and skips ONNX Runtime's per-run set-up."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    loaded = engine.loaded(model)
    graph = onnx.load(str(loaded.mv.path / loaded.mv.meta.get("file", "model.onnx"))).graph
    params = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    weights, bias = params["W"], params["b"]

    def run(features):
        return (1.0 / (1.0 + np.exp(-(features @ weights + bias)))).astype(np.float32)

    return run


def wrap(app, services, model: str = "learner"):
    from appliance.inference import http as oip

    flask_wsgi = app.wsgi_app
    engine = services.get("inference")
    limit = engine.settings.max_request_elements
    math = {}
    answer_heads = {}  # (version, dtype, shape) -> head bytes: written once, as the real route does

    def bare(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/bare/"):
            return flask_wsgi(environ, start_response)
        step = path[len("/bare/"):]
        if step == "live":
            return _answer(start_response, "200 OK", _JSON, b'{"live":true}\n')
        if step not in STEPS:
            return _answer(start_response, "404 Not Found", _JSON, b'{"error":"no such step"}\n')
        raw = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        n = int(environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH") or 0)
        if step == "read":
            return _answer(start_response, "200 OK", _OCTETS, raw[:n])
        plan = oip._HEAD_PLANS.get((limit, raw[:n]))
        if plan is None or len(raw) - n != plan.data_bytes:
            return _answer(start_response, "409 Conflict", _JSON, b'{"error":"no stored plan for this head"}\n')
        arrays = plan.decode(memoryview(raw)[n:])
        if step == "decode":
            return _answer(start_response, "200 OK", _OCTETS, raw[:n])
        if step == "numpy":
            if "run" not in math:
                math["run"] = _learner_math(engine, model)
            out = math["run"](arrays["features"])
        elif step == "ort":
            out = next(iter(engine.loaded(model).backend.infer(arrays).values()))
        else:  # the engine's whole run (version lookup, input check, metrics) and the real answer
            answered, outputs = engine.run(model, arrays)
            (name, out), = outputs.items()
            key = (answered, out.dtype.str, out.shape)
            head = answer_heads.get(key)
            if head is None:
                head = answer_heads[key] = json.dumps(
                    {"model_name": model, "model_version": answered, "outputs": [oip.encode_binary_tensor(name, out)[0]]},
                    separators=(",", ":")).encode()
            return _answer(start_response, "200 OK", [*_OCTETS, (oip.HEADER, str(len(head)))],
                           head + oip.little_endian_bytes(out))
        return _answer(start_response, "200 OK", _OCTETS, out.tobytes())

    app.wsgi_app = bare
    _add_flask_routes(app, engine, model, limit)
    return app


def _add_flask_routes(app, engine, model: str, limit: int) -> None:
    """Two bench-only Flask routes, so the same load compares Flask's own POST handling with the
    leanest inference a Flask route could do: ``/flask/same`` reads the body and sends the learner's
    answer bytes; ``/flask/ort`` also decodes with the stored plan and runs the backend (no engine
    bookkeeping, no metrics)."""
    import numpy as np

    from appliance.inference import http as oip
    from appliance.web.security import csrf_exempt, requires

    heads = {}

    def answer(out):
        key = (out.dtype.str, out.shape)
        head = heads.get(key)
        if head is None:
            name = engine.loaded(model).backend.outputs[0].name
            head = heads[key] = json.dumps({"model_name": model, "model_version": engine.loaded(model).version,
                                            "outputs": [oip.encode_binary_tensor(name, out)[0]]},
                                           separators=(",", ":")).encode()
        return oip._octets(head, out.tobytes())

    same_out = np.zeros((1, 1), dtype=np.float32)

    def same():
        oip._request_body(oip.max_body_bytes(limit))  # as the real route reads it
        return answer(same_out)

    def ort():
        from flask import Response, request
        raw = oip._request_body(oip.max_body_bytes(limit))
        n = int(request.environ["HTTP_INFERENCE_HEADER_CONTENT_LENGTH"])
        plan = oip._HEAD_PLANS.get((limit, raw[:n]))
        if plan is None or len(raw) - n != plan.data_bytes:  # as the bare routes: no plan stored yet
            return Response('{"error":"no stored plan for this head"}\n', status=409, content_type="application/json")
        arrays = plan.decode(memoryview(raw)[n:])
        return answer(next(iter(engine.loaded(model).backend.infer(arrays).values())))

    for rule, fn in (("/flask/same", same), ("/flask/ort", ort)):
        app.add_url_rule(rule, f"bench_{fn.__name__}", csrf_exempt(requires("anonymous")(fn)), methods=["POST"])


def main() -> int:
    import appliance.web.app as web_app
    from appliance.cli.main import main as appliance_main

    real_create_app = web_app.create_app

    def create_app(services):
        return wrap(real_create_app(services), services)

    # serve.py imports create_app from this module when it builds each worker's app.
    web_app.create_app = create_app
    return appliance_main()


if __name__ == "__main__":
    raise SystemExit(main())
