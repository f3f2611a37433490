"""The binary tensor data extension of the inference protocol (as Triton and its clients speak it).

A request may carry tensors as raw bytes after its JSON: the header ``Inference-Header-Content-Length``
says how long the JSON part is, and each binary input names its byte count in
``parameters.binary_data_size``; blobs follow in the order of those inputs. Numbers are little-endian,
row-major; a BYTES element is a 4-byte little-endian length and its bytes. Outputs come back binary
when the request asks (``parameters.binary_data_output`` or per output ``parameters.binary_data``).

Why: JSON text for a learner row of 1,416 floats is ~6 KB to parse per request; the same row as bytes
is one ``np.frombuffer``. ``tritonclient`` sends binary by default, so standard clients get the fast
path without asking.
"""
from __future__ import annotations

import json
import math
import struct

import numpy as np

from appliance.errors import BadRequest
from appliance.inference.tensors import NUMPY_OF, datatype_of

HEADER = "Inference-Header-Content-Length"


def split_body(body: bytes, header_length: str) -> tuple[dict, memoryview]:
    """(the JSON part as a dict, the binary rest)."""
    try:
        n = int(header_length)
    except ValueError:
        raise BadRequest(f"{HEADER} must be a byte count") from None
    if n < 0 or n > len(body):
        raise BadRequest(f"{HEADER} is {n} but the body has {len(body)} bytes")
    try:
        head = json.loads(bytes(body[:n]))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadRequest("the JSON part of the request is not valid JSON") from None
    if not isinstance(head, dict):
        raise BadRequest("The request body must be a JSON object.")
    return head, memoryview(body)[n:]


def decode_binary_tensor(obj: dict, blob: memoryview, max_elements: int) -> np.ndarray:
    """A tensor from its JSON description (name, datatype, shape) and its raw bytes."""
    name, datatype, shape = obj.get("name"), obj.get("datatype"), obj.get("shape")
    if datatype not in NUMPY_OF:
        raise BadRequest(f"input {name!r}: unknown datatype {datatype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers")
    count = math.prod(shape)
    if count > max_elements:
        raise BadRequest(f"input {name!r} has {count} elements; at most {max_elements} are accepted")
    if datatype == "BYTES":
        items, pos, raw = [], 0, bytes(blob)
        while pos < len(raw):
            if pos + 4 > len(raw):
                raise BadRequest(f"input {name!r}: truncated BYTES element")
            (size,) = struct.unpack_from("<I", raw, pos)
            pos += 4
            if pos + size > len(raw):
                raise BadRequest(f"input {name!r}: truncated BYTES element")
            try:
                items.append(raw[pos:pos + size].decode("utf-8"))
            except UnicodeDecodeError:
                raise BadRequest(f"input {name!r}: BYTES tensors must hold UTF-8 text") from None
            pos += size
        if len(items) != count:
            raise BadRequest(f"input {name!r}: {len(items)} values do not fill shape {shape} ({count} needed)")
        arr = np.empty(count, dtype=object)
        arr[:] = items
        return arr.reshape(shape)
    native = NUMPY_OF[datatype]
    wire = native.newbyteorder("<")
    if len(blob) != count * wire.itemsize:
        raise BadRequest(f"input {name!r}: {len(blob)} bytes do not fill shape {shape} as {datatype}")
    arr = np.frombuffer(blob, dtype=wire).reshape(shape)
    return arr if wire == native else arr.astype(native)  # a copy only on big-endian hosts


def encode_binary_tensor(name: str, array: np.ndarray) -> tuple[dict, bytes]:
    """(the output's JSON description with binary_data_size, its bytes)."""
    array = np.asarray(array)
    datatype = datatype_of(array)
    if datatype == "BYTES":
        parts = []
        for v in array.reshape(-1):
            b = v if isinstance(v, bytes) else str(v).encode("utf-8")
            parts += [struct.pack("<I", len(b)), b]
        data = b"".join(parts)
    else:
        data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return {"name": name, "datatype": datatype, "shape": list(array.shape),
            "parameters": {"binary_data_size": len(data)}}, data
