"""Open Inference Protocol v2 over HTTP: the happy paths, and every malformed request is a 4xx with
{"error": ...}, never a 500."""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
from inference_models import (
    affine_model,
    echo_model,
    lookup_model,
    seqsum_model,
    write_version,
)
from json_fuzz import replaced, replacements

from appliance.config import load_config
from appliance.errors import BadRequest
from appliance.services import Services


@pytest.fixture
def served(tmp_path, repo):
    write_version(repo, "affine", "1", affine_model(1.0))
    write_version(repo, "affine", "2", affine_model(2.0))
    write_version(repo, "echo", "1", echo_model())
    write_version(repo, "lookup", "1", lookup_model())
    write_version(repo, "seq", "1", seqsum_model(), batch_padding={"input_ids": 0, "attention_mask": 0})

    def make(**env):
        env = {"STORAGE__DATA_DIR": tmp_path / "data", "CONTENT__INSTALL_DEMO": "false", "INFERENCE__REPOSITORY": repo,
               "INFERENCE__WATCH_INTERVAL_S": 0, "INFERENCE__MODELS": "", **env}
        cfg = load_config(env={f"CLASSROOM_EDGE_{k}": str(v) for k, v in env.items()})
        services = Services.open(cfg)
        from appliance.inference.engine import attach
        from appliance.web.app import create_app

        attach(services)
        app = create_app(services)
        app.config["TESTING"] = True
        made.append(services)
        return app.test_client(), services

    made = []
    yield make
    for s in made:
        s.close()


def tensor(name, datatype, shape, data):
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


def test_health_server_and_model_metadata(served):
    client, _ = served()
    assert client.get("/v2/health/live").get_json() == {"live": True}
    r = client.get("/v2/health/ready")
    assert r.status_code == 200 and r.get_json() == {"ready": True}
    meta = client.get("/v2").get_json()
    assert meta["name"] == "classroom-edge" and meta["extensions"] == ["binary_tensor_data"]
    meta = client.get("/v2/models/affine").get_json()
    # Only the version infer takes (version 1 is on disk, to roll back to): the protocol's meaning.
    assert meta["versions"] == ["2"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]
    assert meta["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 4]}]
    assert client.get("/v2/models/affine/versions/1").get_json()["name"] == "affine"
    assert client.get("/v2/models/affine/ready").get_json()["ready"] is True
    assert client.get("/v2/models/affine/versions/2/ready").status_code == 200
    r = client.get("/v2/models/affine/versions/1/ready")
    assert r.status_code == 400 and r.get_json()["ready"] is False  # on disk, not the active one


def test_infer_fp32_nested_and_flat(served):
    client, _ = served()
    body = {"id": "r1", "inputs": [tensor("x", "FP32", [2, 4], [[1, 2, 3, 4], [5, 6, 7, 8]])]}
    r = client.post("/v2/models/affine/infer", json=body)
    assert r.status_code == 200, r.get_json()
    out = r.get_json()
    assert out["model_name"] == "affine" and out["model_version"] == "2" and out["id"] == "r1"
    (y,) = out["outputs"]
    assert y["name"] == "y" and y["datatype"] == "FP32" and y["shape"] == [2, 4]
    assert y["data"] == [float(2 * v + 2) for v in range(1, 9)]
    flat = {"inputs": [tensor("x", "FP32", [1, 4], [0.5, 0.5, 0.5, 0.5])], "outputs": [{"name": "y"}]}
    r = client.post("/v2/models/affine/versions/2/infer", json=flat)
    assert r.get_json()["outputs"][0]["data"] == [3.0] * 4


def test_infer_int64_and_bytes(served):
    client, _ = served()
    r = client.post("/v2/models/seq/infer", json={"inputs": [
        tensor("input_ids", "INT64", [2, 3], [1, 2, 3, 4, 5, 0]),
        tensor("attention_mask", "INT64", [2, 3], [1, 1, 1, 1, 1, 0])]})
    assert r.status_code == 200
    assert r.get_json()["outputs"][0] == {"name": "total", "datatype": "INT64", "shape": [2], "data": [6, 9]}
    r = client.post("/v2/models/echo/infer", json={"inputs": [tensor("text", "BYTES", [2], ["hello", "élève"])]})
    assert r.status_code == 200
    assert r.get_json()["outputs"][0] == {"name": "echo", "datatype": "BYTES", "shape": [2], "data": ["hello", "élève"]}


BAD_REQUESTS = [
    ("/v2/models/nope/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])]}, "unknown model"),
    ("/v2/models/..%2Fetc/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])]}, "no such inference endpoint"),
    ("/v2/models/a%20b/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])]}, "not valid"),
    ("/v2/models/affine/versions/9/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])]}, "serves version 2"),
    ("/v2/models/affine/infer", "not json at all", "the request body is not valid JSON"),
    ("/v2/models/affine/infer", [1, 2], "JSON object"),
    ("/v2/models/affine/infer", {}, "non-empty list"),
    ("/v2/models/affine/infer", {"inputs": "x"}, "non-empty list"),
    ("/v2/models/affine/infer", {"inputs": [42]}, "must be an object"),
    ("/v2/models/affine/infer", {"inputs": [{"name": "x"}]}, "unknown datatype"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP99", [1, 4], [1, 2, 3, 4])]}, "unknown datatype"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", "1x4", [1, 2, 3, 4])]}, "shape must be"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, -4], [1, 2, 3, 4])]}, "shape must be"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3])]}, "do not fill shape"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [2, 2], [1, 2, 3, 4])]}, "must have shape"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], ["a", "b", "c", "d"])]}, "FP32 values"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [2, 2], [[1, 2], [3]])]}, "regular array"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1e300, 2, 3, 4])]}, "does not fit in FP32"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "INT64", [1, 4], [1, 2, 3, 4])]}, "must be FP32"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], None)]}, "no data"),
    ("/v2/models/affine/infer", {"inputs": [tensor("z", "FP32", [1, 4], [1, 2, 3, 4])]}, "missing input"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])] * 2}, "given twice"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4]), tensor("w", "FP32", [1], [1])]}, "unknown input"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])], "outputs": [{"name": "q"}]}, "unknown output"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])], "outputs": "y"}, "list of objects"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])], "id": 7}, "'id' must be"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [0, 4], [])]}, "at least 1 row"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1000, 1000, 4], [0])]}, "at most"),
    ("/v2/models/affine/infer", {"inputs": [{**tensor("x", "FP32", [1, 4], [0]), "parameters": {"binary_data_size": 16}}]}, "binary"),
    ("/v2/models/seq/infer", {"inputs": [tensor("input_ids", "INT64", [1, 1], [1.5]), tensor("attention_mask", "INT64", [1, 1], [1])]}, "INT64 values"),
    ("/v2/models/seq/infer", {"inputs": [tensor("input_ids", "INT64", [1, 1], [2**70]), tensor("attention_mask", "INT64", [1, 1], [1])]}, "does not fit in INT64"),
    # found in review: each was a 500
    ("/v2/models/echo/infer", {"inputs": [tensor("text", "BYTES", [1], ["\ud800"])]}, "no lone surrogates"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [0, 2**70], [])]}, "a dimension of"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [0, 4611686018427387904], [])]}, "a dimension of"),
    ("/v2/models/echo/infer", {"inputs": [tensor("text", "BYTES", [0, 2**62], [])]}, "a dimension of"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1] * 65, [1])]}, "at most 32 dimensions"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [3e38, 1, 1, 1])]}, "NaN or infinite"),
    # found in review: read as false, or ignored
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])], "outputs": [{"name": "y"}, {"name": "y"}]}, "asked for twice"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])], "parameters": {"binary_data_output": "true"}},
     "'binary_data_output' must be true or false"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])],
                                 "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]}, "'binary_data' must be true or false"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])],
                                 "outputs": [{"name": "y", "parameters": {"classification": 2}}]}, "classification extension"),
    ("/v2/models/echo/infer", {"inputs": [tensor("text", "BYTES", [2], ["a", 3])]}, "strings"),
    ("/v2/models/lookup/infer", {"inputs": [tensor("ids", "INT64", [1], [99])]}, "could not run on this input"),
    # 'parameters' that are not objects, on an input, on an output and on the request
    ("/v2/models/affine/infer", {"inputs": [{**tensor("x", "FP32", [1, 4], [1, 2, 3, 4]), "parameters": ["a"]}]}, "'parameters' must be an object"),
    ("/v2/models/affine/infer", {"inputs": [{**tensor("x", "FP32", [1, 4], [1, 2, 3, 4]), "parameters": "binary"}]}, "'parameters' must be an object"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])],
                                 "outputs": [{"name": "y", "parameters": 1}]}, "output 'y': 'parameters' must be an object"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])], "parameters": [1]}, "'parameters' must be an object"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])], "parameters": []}, "the request: 'parameters' must be an object"),
    ("/v2/models/affine/infer", {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])], "parameters": 0}, "the request: 'parameters' must be an object"),
]


@pytest.mark.parametrize("url, body, message", BAD_REQUESTS)
def test_bad_requests_are_400_with_a_reason(served, url, body, message):
    client, _ = served()
    if isinstance(body, str):
        r = client.post(url, data=body, content_type="application/json")
    else:
        r = client.post(url, json=body)
    assert r.status_code == 400, (r.status_code, r.get_data(as_text=True))
    assert message in r.get_json()["error"]


@pytest.mark.parametrize("url", ["/v2/models/nope", "/v2/models/affine/versions/9", "/v2/models/nope/ready",
                                 "/v2/models/a%20b", "/v2/models/affine/versions/..%2F1/ready"])
def test_bad_metadata_requests_are_400(served, url):
    client, _ = served()
    r = client.get(url)
    assert r.status_code == 400 and "error" in r.get_json()


def test_a_bad_row_in_a_shared_batch_does_not_fail_the_others(served):
    """Many clients at once, one of them sending an id outside the table: only that one fails."""
    from concurrent.futures import ThreadPoolExecutor

    client, _ = served()

    def call(i):
        ids = [99] if i == 13 else [i % 5]
        return i, client.post("/v2/models/lookup/infer", json={"inputs": [tensor("ids", "INT64", [1], ids)]})

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(40)))
    for i, r in results:
        if i == 13:
            assert r.status_code == 400
        else:
            assert r.status_code == 200, r.get_json()
            assert r.get_json()["outputs"][0]["data"] == [float(2 * (i % 5)), float(2 * (i % 5) + 1)]


def test_no_engine_in_this_process_is_503_not_500(client):
    assert client.get("/v2/health/live").status_code == 200
    r = client.get("/v2/health/ready")
    assert r.status_code == 400 and r.get_json() == {"ready": False}
    r = client.post("/v2/models/affine/infer", json={"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])]})
    assert r.status_code == 503 and "not running" in r.get_json()["error"]


def test_closed_infer_needs_a_token(served):
    import secrets

    from appliance.store import now_iso
    from appliance.web.security import hash_token

    client, services = served(INFERENCE__OPEN_INFER="false")
    body = {"inputs": [tensor("x", "FP32", [1, 4], [1, 2, 3, 4])]}
    r = client.post("/v2/models/affine/infer", json=body)
    assert r.status_code == 401
    assert client.get("/v2/models/affine").status_code == 200, "metadata stays open"
    token = secrets.token_urlsafe(16)

    def add(conn):
        uid = conn.execute("INSERT INTO users (role, display_name, uid, created_at) VALUES ('student', 'S', 'u-1', ?)",
                           (now_iso(),)).lastrowid
        conn.execute("INSERT INTO api_tokens (user_id, name, token_hash, created_at) VALUES (?, 'lab', ?, ?)",
                     (uid, hash_token(token), now_iso()))

    services.db.write(add)
    r = client.post("/v2/models/affine/infer", json=body, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    r = client.post("/v2/models/affine/infer", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401


def test_admin_model_endpoints_need_admin(served):
    client, _ = served()
    assert client.get("/api/v1/models").status_code == 401
    assert client.post("/api/v1/models/affine/rollback").status_code in (401, 403)


def test_every_inference_route_declares_a_role(served):
    from appliance.web.security import undeclared_endpoints

    client, _ = served()
    assert not [e for e in undeclared_endpoints(client.application) if e.startswith("inference.")]


def _binary_request(head: dict, blobs: list[bytes]):
    """The wire format tritonclient writes: JSON, then the raw tensors, JSON length in a header."""
    js = json.dumps(head).encode()
    return js + b"".join(blobs), {"Inference-Header-Content-Length": str(len(js))}


def _split_response(r):
    n = int(r.headers["Inference-Header-Content-Length"])
    return json.loads(r.data[:n]), r.data[n:]


def test_binary_tensors_in_and_out(served):
    client, _ = served()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    body, headers = _binary_request({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4],
                                                 "parameters": {"binary_data_size": x.nbytes}}],
                                     "parameters": {"binary_data_output": True}}, [x.tobytes()])
    r = client.post("/v2/models/affine/infer", data=body, headers=headers, content_type="application/octet-stream")
    assert r.status_code == 200, r.data[:300]
    head, rest = _split_response(r)
    (y,) = head["outputs"]
    assert y["parameters"]["binary_data_size"] == len(rest) == 32 and "data" not in y
    assert np.array_equal(np.frombuffer(rest, np.float32).reshape(2, 4), x * 2 + 2)

    texts = ["a", "élève", ""]
    blob = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    body, headers = _binary_request({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3],
                                                 "parameters": {"binary_data_size": len(blob)}}]}, [blob])
    r = client.post("/v2/models/echo/infer", data=body, headers=headers)
    assert r.status_code == 200 and r.get_json()["outputs"][0]["data"] == texts  # JSON out unless asked

    ids = np.array([[3, 4, 5]], np.int64)
    mask = np.array([[1, 1, 0]], np.int64)
    body, headers = _binary_request({"inputs": [
        {"name": "input_ids", "datatype": "INT64", "shape": [1, 3], "parameters": {"binary_data_size": 24}},
        {"name": "attention_mask", "datatype": "INT64", "shape": [1, 3], "data": [1, 1, 0]}],
        "outputs": [{"name": "total", "parameters": {"binary_data": True}}]}, [ids.tobytes()])
    r = client.post("/v2/models/seq/infer", data=body, headers=headers)
    head, rest = _split_response(r)
    assert np.frombuffer(rest, np.int64).tolist() == [7] and mask.sum() == 2


def test_repeated_binary_heads_are_planned_once_and_still_checked(served):
    """A client repeats its JSON head byte for byte; the server keeps a plan for it. The plan must
    give the same answers, answer heads must follow the output shapes, and a body that does not
    fit a known head still gets the full parser's precise 400."""
    from appliance.inference import http as oip

    client, _ = served()
    head = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 4], "parameters": {"binary_data_size": 32}}],
            "parameters": {"binary_data_output": True}}
    for k in range(3):
        x = np.full((2, 4), k, np.float32)
        body, headers = _binary_request(head, [x.tobytes()])
        r = client.post("/v2/models/affine/infer", data=body, headers=headers)
        answer, rest = _split_response(r)
        assert answer["outputs"][0]["shape"] == [2, 4] and answer["model_version"] == "2"
        assert np.array_equal(np.frombuffer(rest, np.float32).reshape(2, 4), x * 2 + 2)
    js = json.dumps(head).encode()
    assert any(key[1] == js for key in oip._HEAD_PLANS._items)
    # The same head with a wrong body is not served from the plan.
    body, headers = _binary_request(head, [b"\0" * 36])
    r = client.post("/v2/models/affine/infer", data=body, headers=headers)
    assert r.status_code == 400 and "belong to no input" in r.get_json()["error"]
    # Another shape gets its own answer head.
    head3 = {**head, "inputs": [{**head["inputs"][0], "shape": [3, 4], "parameters": {"binary_data_size": 48}}]}
    body, headers = _binary_request(head3, [np.ones((3, 4), np.float32).tobytes()])
    answer, rest = _split_response(client.post("/v2/models/affine/infer", data=body, headers=headers))
    assert answer["outputs"][0]["shape"] == [3, 4] and len(rest) == 48
    # A head too big to keep (here a large "parameters" object) is parsed every time, never kept.
    big = {**head, "parameters": {**head["parameters"], "note": "x" * (oip.PLANNED_HEAD_MAX_BYTES + 1)}}
    body, headers = _binary_request(big, [np.ones((2, 4), np.float32).tobytes()])
    assert client.post("/v2/models/affine/infer", data=body, headers=headers).status_code == 200
    assert not any(len(key[1]) > oip.PLANNED_HEAD_MAX_BYTES for key in oip._HEAD_PLANS._items)
    # A head with an id is answered with that id, every time (never from a plan).
    for rid in ("a", "b"):
        body, headers = _binary_request({**head, "id": rid}, [np.ones((2, 4), np.float32).tobytes()])
        answer, _ = _split_response(client.post("/v2/models/affine/infer", data=body, headers=headers))
        assert answer["id"] == rid


def test_output_bytes_are_row_major_little_endian_whatever_the_array():
    from appliance.inference.binary import little_endian_bytes

    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert little_endian_bytes(a) == np.asarray(a, "<f4").tobytes()
    assert little_endian_bytes(a.T) == np.ascontiguousarray(a.T, "<f4").tobytes()  # a view, not C-ordered
    assert little_endian_bytes(a.astype(">f4")) == np.asarray(a, "<f4").tobytes()  # big-endian in, little out
    assert little_endian_bytes(np.array([1, -2], np.int64)) == b"\x01" + b"\0" * 7 + b"\xfe" + b"\xff" * 7


def test_bounded_cache_empties_instead_of_growing():
    from appliance.inference.binary import BoundedCache

    cache = BoundedCache(limit=3)
    for i in range(10):
        cache.put(i, str(i))
    assert len(cache._items) <= 3 and cache.get(9) == "9" and cache.get(0) is None


@pytest.mark.parametrize("head, blobs, header, message", [
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]},
     [b"\0" * 12], None, "does not fit the body"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 12}}]},
     [b"\0" * 12], None, "do not fill shape"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]},
     [b"\0" * 20], None, "belong to no input"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]},
     [b"\0" * 16], "99999", "but the body has"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]},
     [b"\0" * 16], "many", "byte count"),
    ({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 6}}]},
     [struct.pack("<I", 9) + b"ab"], None, "truncated"),
    ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": -1}}]},
     [], None, "does not fit the body"),
    ({"inputs": [{"name": ["x"], "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]},
     [b"\0" * 16], None, "needs a name"),
    ({"inputs": [{"datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]},
     [b"\0" * 16], None, "needs a name"),
])
def test_bad_binary_requests_are_400(served, head, blobs, header, message):
    client, _ = served()
    body, headers = _binary_request(head, blobs)
    if header is not None:
        headers["Inference-Header-Content-Length"] = header
    model = "echo" if head["inputs"][0].get("name") == "text" else "affine"
    r = client.post(f"/v2/models/{model}/infer", data=body, headers=headers)
    assert r.status_code == 400 and message in r.get_json()["error"], r.get_json()


def test_binary_data_without_the_header_is_400(served):
    client, _ = served()
    r = client.post("/v2/models/affine/infer", json={"inputs": [
        {"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]})
    assert r.status_code == 400 and "needs the Inference-Header-Content-Length" in r.get_json()["error"]


def test_inference_disabled_loads_nothing_and_says_so(tmp_path, repo):
    """inference.enabled = false: no engine, no onnxruntime session; /v2 answers 503 with a reason and
    the status names the setting, while prepare() skips building the default models."""
    from appliance.bootstrap import attach_components, prepare
    from appliance.web.app import create_app

    write_version(repo, "affine", "1", affine_model(1.0))
    env = {"STORAGE__DATA_DIR": tmp_path / "data", "CONTENT__INSTALL_DEMO": "false", "INFERENCE__REPOSITORY": tmp_path / "empty",
           "INFERENCE__ENABLED": "false"}
    cfg = load_config(env={f"CLASSROOM_EDGE_{k}": str(v) for k, v in env.items()})
    services = Services.open(cfg)
    try:
        prepare(services)
        assert not (tmp_path / "empty").exists()  # nothing built
        attach_components(services)
        assert services.get("inference") is None
        status = {s.name: s for s in services.statuses()}
        assert status["inference"].state == "disabled" and "inference.enabled" in status["inference"].detail
        assert "rule estimate" in status["learning"].detail
        client = create_app(services).test_client()
        r = client.post("/v2/models/affine/infer", json={"inputs": [tensor("x", "FP32", [1, 1], [1.0])]})
        assert r.status_code == 503 and "not running" in r.get_json()["error"]
        r = client.get("/v2/health/ready")
        assert r.status_code == 400 and r.get_json() == {"ready": False}  # OIP: a 4xx means not ready
    finally:
        services.close()


def test_any_field_of_any_type_is_answered_never_a_500(served):
    """Every field of a JSON request and of a binary request's head, swapped for a value of every other
    JSON type: each is a 200 or a 400 with a reason."""
    client, _ = served()
    valid = {"id": "r1", "parameters": {"binary_data_output": False},
             "inputs": [{**tensor("x", "FP32", [1, 4], [1, 2, 3, 4]), "parameters": {}}],
             "outputs": [{"name": "y", "parameters": {"binary_data": False}}]}
    head = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}],
            "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
    blob = np.arange(4, dtype="<f4").tobytes()
    tried = 0
    for path, value in replacements(valid):
        r = client.post("/v2/models/affine/infer", json=replaced(valid, path, value))
        assert r.status_code in (200, 400), (path, value, r.status_code, r.get_data(as_text=True)[:300])
        assert r.status_code == 200 or r.get_json()["error"], (path, value)
        tried += 1
    for path, value in replacements(head):
        body, headers = _binary_request(replaced(head, path, value), [blob])
        r = client.post("/v2/models/affine/infer", data=body, headers=headers)
        assert r.status_code in (200, 400), (path, value, r.status_code, r.get_data(as_text=True)[:300])
        assert r.status_code == 200 or r.get_json()["error"], (path, value)
        tried += 1
    assert tried > 150


def test_deeply_nested_json_is_400_not_500(served):
    """A 200 KB body of nested brackets exhausts the JSON parser's stack (RecursionError): it was a 500,
    as a whole body and as a binary request's head."""
    client, _ = served()
    nested = b"[" * 100_000 + b"]" * 100_000
    r = client.post("/v2/models/affine/infer", data=nested, content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"], r.get_data(as_text=True)[:200]
    head = b'{"inputs":' + nested + b"}"
    r = client.post("/v2/models/affine/infer", data=head,
                    headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 400 and "not valid JSON" in r.get_json()["error"], r.get_data(as_text=True)[:200]


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_beyond_what_the_element_limit_allows_is_refused_unread(served, chunked):
    """The body's size is bounded by inference.max_request_elements, not by web.max_upload_mb (512 MB,
    for course bundles): a 100 MB body of zeros grew a worker by 1 GB while it was parsed."""
    from appliance.inference.http import BODY_BYTES_PER_ELEMENT, BODY_HEAD_BYTES

    client, _ = served(INFERENCE__MAX_REQUEST_ELEMENTS=1000)
    limit = 1000 * BODY_BYTES_PER_ELEMENT + BODY_HEAD_BYTES
    row = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}'
    fits = row + b" " * (limit - len(row))
    too_big = fits + b" "
    for body, status in ((fits, 200), (too_big, 413)):
        if chunked:  # no Content-Length: the server says the stream ends by itself, as gunicorn does
            r = client.post("/v2/models/affine/infer", input_stream=io.BytesIO(body), content_type="application/json",
                            environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""})
        else:
            r = client.post("/v2/models/affine/infer", data=body, content_type="application/json")
        assert r.status_code == status, r.get_data(as_text=True)[:200]
        assert status == 200 or "max_request_elements" in r.get_json()["error"]


def test_non_finite_outputs_travel_as_binary_data(served):
    """An overflow to infinity in the model: JSON cannot carry it (bare Infinity breaks JavaScript's and
    Go's parsers on the whole answer), the binary form can."""
    client, _ = served()
    body = {"inputs": [tensor("x", "FP32", [1, 4], [3e38, 1, 1, 1])], "outputs": [{"name": "y", "parameters": {"binary_data": True}}]}
    r = client.post("/v2/models/affine/infer", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    n = int(r.headers["Inference-Header-Content-Length"])
    y = np.frombuffer(r.get_data()[n:], "<f4")
    assert np.isinf(y[0]) and np.isfinite(y[1:]).all()


def test_values_the_protocol_allows_that_numpy_reads_awkwardly():
    from appliance.inference.binary import decode_binary_tensor
    from appliance.inference.tensors import decode_json_tensor

    big = decode_json_tensor(tensor("u", "UINT64", [2], [2**64 - 1, 0]))
    assert big.dtype == np.uint64 and big.tolist() == [2**64 - 1, 0]  # not rounded through float64
    empty = decode_json_tensor(tensor("i", "INT64", [1, 0], []))
    assert empty.dtype == np.int64 and empty.shape == (1, 0)
    assert decode_binary_tensor({"name": "b", "datatype": "BOOL", "shape": [2]}, memoryview(b"\x01\x00"), 10).tolist() == [True, False]
    with pytest.raises(BadRequest, match="0 or 1"):
        decode_binary_tensor({"name": "b", "datatype": "BOOL", "shape": [2]}, memoryview(b"\x02\x00"), 10)
