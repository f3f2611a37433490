"""The Open Inference Protocol v2 (KServe v2) over HTTP/JSON, Prometheus ``/metrics``, and the admin's
model endpoints under ``/api/v1/models``.

Who may call what: health, server and model metadata and ``/metrics`` are open (a classroom LAN
monitor needs no login and they reveal nothing personal). ``infer`` is open too while
``inference.open_infer`` is true (the default): the models take feature vectors or token ids, return
numbers, store nothing and change nothing, and standard OIP clients carry no session. A flood waits
in the web workers' thread pools like any other traffic, and a batched model's queue is bounded too
(503 when full), so it cannot starve the LMS of memory. Setting it false requires a signed-in user or an API
token of any role. Activating and rolling back versions is for admins only.

Every bad request (unknown model or version, malformed JSON, wrong datatype or shape, too many
elements) is a 400 with ``{"error": ...}``; a model that is not loaded is a 503; nothing is a 500.
"""
from __future__ import annotations

import json
import logging

import numpy as np
from flask import Blueprint, Response, current_app, jsonify, request

from appliance import __version__
from appliance.errors import BadRequest, PayloadTooLarge, Unauthorized, Unavailable
from appliance.inference.binary import (
    HEADER,
    BoundedCache,
    decode_binary_tensor,
    encode_binary_tensor,
    head_length,
    little_endian_bytes,
    load_json,
    plan_for,
    split_body,
)
from appliance.inference.manifest import check_name
from appliance.inference.tensors import decode_json_tensor, encode_json_tensor, parameters_of
from appliance.web.security import csrf_exempt, current_user, requires

log = logging.getLogger(__name__)

bp = Blueprint("inference", __name__)

PLATFORMS = {"onnxruntime": "onnxruntime_onnx", "tensorrt": "tensorrt_plan"}


def _engine(required: bool = True):
    engine = current_app.extensions["ce"].get("inference")
    if engine is None and required:
        raise Unavailable("The inference engine is not running in this process.")
    return engine


@bp.get("/v2")
@requires("anonymous")
def server_metadata():
    # The protocol extensions served here, by the names Triton gives them.
    return jsonify({"name": "classroom-edge", "version": __version__, "extensions": ["binary_tensor_data"]})


@bp.get("/v2/health/live")
@requires("anonymous")
def live():
    return jsonify({"live": True})


@bp.get("/v2/health/ready")
@requires("anonymous")
def ready():
    engine = _engine(required=False)
    ok = engine is not None and engine.ready()
    # OIP: 200 means true, a 4xx means false (Triton answers 400 as well).
    return jsonify({"ready": ok}), 200 if ok else 400


def _model_metadata(engine, name: str, version: str | None) -> dict:
    check_name("model", name)
    versions = engine.repository.versions(name)
    if not versions:
        raise BadRequest(f"unknown model {name!r}")
    loaded = engine.loaded(name)
    if version is not None:
        check_name("version", version)
        if version not in versions:
            raise BadRequest(f"model {name!r} has no version {version!r}")
    if loaded is not None and (version is None or version == loaded.version):
        backend = loaded.backend
        inputs, outputs, platform = backend.inputs, backend.outputs, PLATFORMS.get(backend.type, backend.type)
    else:
        mv = engine.repository.version(name, version or versions[-1])
        backend_type = mv.serving_backend(engine.settings)
        inputs, outputs, platform = mv.inputs, mv.outputs, PLATFORMS.get(backend_type, backend_type)
    return {
        "name": name,
        # OIP: the versions a client may name in a request. One version per model serves; the others on
        # disk are there to activate or roll back to (the admin API lists them).
        "versions": [loaded.version] if loaded is not None else [],
        "platform": platform,
        "inputs": [t.to_json() for t in inputs],
        "outputs": [t.to_json() for t in outputs],
    }


@bp.get("/v2/models/<name>")
@bp.get("/v2/models/<name>/versions/<version>")
@requires("anonymous")
def model_metadata(name: str, version: str | None = None):
    return jsonify(_model_metadata(_engine(), name, version))


@bp.get("/v2/models/<name>/ready")
@bp.get("/v2/models/<name>/versions/<version>/ready")
@requires("anonymous")
def model_ready(name: str, version: str | None = None):
    engine = _engine()
    check_name("model", name)
    if version is not None:
        check_name("version", version)
    if not engine.repository.versions(name) and engine.loaded(name) is None:
        raise BadRequest(f"unknown model {name!r}")
    loaded = engine.loaded(name)
    ok = loaded is not None and (version is None or loaded.version == version)
    return jsonify({"name": name, "ready": ok}), 200 if ok else 400


_HEAD_PLANS = BoundedCache()  # (element limit, request head bytes) -> HeadPlan
PLANNED_HEAD_MAX_BYTES = 4096  # a head carrying more (a big "parameters" object) is not kept: 256 of them could pin GBs


# Bytes an inference request may carry: max_request_elements numbers written out as JSON (a float64
# as text with its comma takes up to ~25 bytes; BYTES text gets the same room), plus its head.
# Before, only web.max_upload_mb (512 MB, sized for course bundles) applied: a 100 MB body of zeros
# took a worker from 190 MB to 1.3 GB while it was parsed, before the element limit could refuse it.
BODY_BYTES_PER_ELEMENT = 32
BODY_HEAD_BYTES = 1 << 20


def max_body_bytes(max_elements: int) -> int:
    limit = max_elements * BODY_BYTES_PER_ELEMENT + BODY_HEAD_BYTES
    app_limit = current_app.config["MAX_CONTENT_LENGTH"]
    return limit if app_limit is None else min(limit, app_limit)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit} bytes, the most an inference request "
                           "may carry (inference.max_request_elements)")


def _request_body(limit: int) -> bytes:
    """The raw request body, at most ``limit`` bytes (413 beyond). With a declared length it is read
    straight from the server's stream: werkzeug's wrapper stream and ``get_data`` cache cost more
    than the read itself on every inference. A chunked body is read through werkzeug's stream."""
    environ = request.environ
    length = environ.get("CONTENT_LENGTH")
    if length and length.isdigit():
        if int(length) > limit:
            raise _too_large(limit)  # refused before a byte of it is read
        return environ["wsgi.input"].read(int(length))
    parts, size = [], 0
    while size <= limit:
        part = request.stream.read(min(1 << 20, limit + 1 - size))
        if not part:
            break
        parts.append(part)
        size += len(part)
    if size > limit:
        raise _too_large(limit)
    return b"".join(parts)


def _parse_infer_body(max_elements: int):
    """(inputs by name, requested outputs {name: binary?} or None, request id, binary by default?)."""
    header_length = request.environ.get("HTTP_INFERENCE_HEADER_CONTENT_LENGTH")
    raw = _request_body(max_body_bytes(max_elements))
    if header_length is not None:
        n = head_length(header_length, len(raw))
        plan = _HEAD_PLANS.get((max_elements, raw[:n]))
        if plan is not None and len(raw) - n == plan.data_bytes:
            return plan.decode(memoryview(raw)[n:]), plan.outputs, None, plan.binary_default
        body, rest = split_body(raw, n)
    else:
        # Whatever the Content-Type: OIP clients do not all send application/json.
        body, rest = load_json(raw, "the request body"), None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object (Content-Type: application/json).")
    arrays, outputs, req_id, binary_default = _parse_head(body, rest, max_elements)
    if rest is not None and n <= PLANNED_HEAD_MAX_BYTES:
        plan = plan_for(body, arrays, outputs, binary_default)
        if plan is not None:
            _HEAD_PLANS.put((max_elements, bytes(raw[:n])), plan)
    return arrays, outputs, req_id, binary_default


def _parse_head(body: dict, rest: memoryview | None, max_elements: int):
    items = body.get("inputs")
    if not isinstance(items, list) or not items:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    arrays, total, offset = {}, 0, 0
    for item in items:
        size = parameters_of(item, "each input").get("binary_data_size") if isinstance(item, dict) else None
        if size is not None:
            if rest is None:
                raise BadRequest(f"binary input data needs the {HEADER} header")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0 or offset + size > len(rest):
                raise BadRequest(f"input {item.get('name')!r}: binary_data_size does not fit the body")
            arr = decode_binary_tensor(item, rest[offset:offset + size], max_elements)
            offset += size
        else:
            arr = decode_json_tensor(item, max_elements)
        if item["name"] in arrays:
            raise BadRequest(f"input {item['name']!r} is given twice")
        total += arr.size
        if total > max_elements:
            raise BadRequest(f"the request has more than {max_elements} elements")
        arrays[item["name"]] = arr
    if rest is not None and offset != len(rest):
        raise BadRequest(f"{len(rest) - offset} bytes of binary data belong to no input")
    params = parameters_of(body, "the request")
    binary_default = _flag(params, "binary_data_output", "the request", False)
    wanted = body.get("outputs")
    outputs = None
    if wanted is not None:
        if not isinstance(wanted, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in wanted):
            raise BadRequest("'outputs' must be a list of objects with a name")
        outputs = {}
        for o in wanted:
            where = f"output {o['name']!r}"
            if o["name"] in outputs:
                raise BadRequest(f"{where} is asked for twice")
            out_params = parameters_of(o, where)
            if "classification" in out_params:  # it would change what the answer means: never ignored
                raise BadRequest(f"{where}: the classification extension is not supported here")
            outputs[o["name"]] = _flag(out_params, "binary_data", where, binary_default)
    req_id = body.get("id")
    if req_id is not None and not isinstance(req_id, str):
        raise BadRequest("'id' must be a string")
    return arrays, outputs, req_id, binary_default


def _flag(params: dict, key: str, where: str, default: bool) -> bool:
    """A boolean parameter; "true" or 1 is refused rather than read as false (JSON output after all)."""
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise BadRequest(f"{where}: parameter {key!r} must be true or false")
    return value


@bp.post("/v2/models/<name>/infer")
@bp.post("/v2/models/<name>/versions/<version>/infer")
@requires("anonymous")
@csrf_exempt
def infer(name: str, version: str | None = None):
    engine = _engine()
    if not engine.settings.open_infer and current_user() is None:
        raise Unauthorized("Inference needs a signed-in user or an API token on this box (inference.open_infer is off).")
    arrays, wanted, req_id, binary_default = _parse_infer_body(engine.settings.max_request_elements)
    answered, outputs = engine.run(name, arrays, version)
    if wanted is None:
        wanted = {k: binary_default for k in outputs}
    unknown = [n for n in wanted if n not in outputs]
    if unknown:
        raise BadRequest(f"unknown output(s): {', '.join(unknown)} (this model returns {', '.join(outputs)})")
    if req_id is None and wanted and all(wanted.values()) and all(
            isinstance(outputs[k], np.ndarray) and outputs[k].dtype != object for k in wanted):
        return _binary_answer(name, answered, outputs, wanted)
    described, blobs = [], []
    for out_name, binary in wanted.items():
        if binary:
            desc, blob = encode_binary_tensor(out_name, outputs[out_name])
            described.append(desc)
            blobs.append(blob)
        else:
            described.append(encode_json_tensor(out_name, outputs[out_name]))
    body = {"model_name": name, "model_version": answered, "outputs": described}
    if req_id is not None:
        body["id"] = req_id
    if not blobs:
        return jsonify(body)
    head = json.dumps(body, separators=(",", ":")).encode()
    return _octets(head, b"".join(blobs))


_ANSWER_HEADS = BoundedCache()  # (model, version, output types and shapes) -> answer head bytes


def _binary_answer(name: str, answered: str, outputs: dict, wanted: dict) -> Response:
    """An all-binary numeric answer: its JSON head depends only on the model, version and output
    types and shapes, so each is written once and reused (like the request heads)."""
    key = (name, answered, tuple((k, outputs[k].dtype.str, outputs[k].shape) for k in wanted))
    head = _ANSWER_HEADS.get(key)
    if head is None:
        described = [encode_binary_tensor(k, outputs[k])[0] for k in wanted]
        head = json.dumps({"model_name": name, "model_version": answered, "outputs": described},
                          separators=(",", ":")).encode()
        _ANSWER_HEADS.put(key, head)
    return _octets(head, b"".join(little_endian_bytes(outputs[k]) for k in wanted))


def _octets(head: bytes, blobs: bytes) -> Response:
    response = Response(head + blobs, content_type="application/octet-stream")
    response.headers[HEADER] = str(len(head))
    return response


@bp.route("/v2/<path:rest>", methods=["GET", "POST"])
@requires("anonymous")
@csrf_exempt
def unknown_endpoint(rest: str):
    # Werkzeug decodes %2F before routing, so "models/../x/infer" lands here rather than on a model
    # route; OIP clients expect a 400 with a reason, not an HTML 404.
    raise BadRequest(f"no such inference endpoint, or a bad model name: /v2/{rest}")


@bp.get("/metrics")
@requires("anonymous")
def metrics():
    engine = _engine(required=False)
    if engine is None:
        return Response("# the inference engine is not running in this process\n", mimetype="text/plain")
    payload, content_type = engine.metrics.exposition()
    return Response(payload, content_type=content_type)


@bp.get("/api/v1/models")
@requires("teacher", "admin")
def models_status():
    """Each served model: version, backend, active providers, latency and batch figures."""
    return jsonify({"models": _engine().models_status()})


@bp.post("/api/v1/models/<name>/activate")
@requires("admin")
def activate(name: str):
    """Serve another version of a model ({"version": "N"}); every web worker follows."""
    body = request.get_json(silent=True) or {}
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, str):
        raise BadRequest("send {\"version\": \"N\"}")
    _engine().activate(name, version)
    return jsonify({"name": name, "version": version})


@bp.post("/api/v1/models/<name>/rollback")
@requires("admin")
def rollback(name: str):
    """Serve the version served before this one."""
    version = _engine().rollback(name)
    return jsonify({"name": name, "version": version})
