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

import struct
import sys
from dataclasses import dataclass

import numpy as np

from appliance import jsonsafe
from appliance.errors import BadRequest
from appliance.inference.tensors import NUMPY_OF, check_tensor_head, datatype_of

HEADER = "Inference-Header-Content-Length"


def head_length(header_value: str, body_length: int) -> int:
    """The JSON part's length from the header, checked against the body."""
    try:
        n = int(header_value)
    except ValueError:
        raise BadRequest(f"{HEADER} must be a byte count") from None
    if n < 0 or n > body_length:
        raise BadRequest(f"{HEADER} is {n} but the body has {body_length} bytes")
    return n


def load_json(raw: bytes, what: str):
    """``raw`` parsed as JSON, or a 400 naming ``what`` (nested too deep too: ``jsonsafe``)."""
    try:
        return jsonsafe.loads(raw)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BadRequest(f"{what} is not valid JSON") from None


def split_body(body: bytes, n: int) -> tuple[dict, memoryview]:
    """(the first ``n`` bytes as a JSON object, the binary rest)."""
    head = load_json(bytes(body[:n]), "the JSON part of the request")
    if not isinstance(head, dict):
        raise BadRequest("The request body must be a JSON object.")
    return head, memoryview(body)[n:]


def decode_binary_tensor(obj: dict, blob: memoryview, max_elements: int) -> np.ndarray:
    """A tensor from its JSON description (name, datatype, shape) and its raw bytes."""
    name, datatype, shape, count = check_tensor_head(obj, max_elements)
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
    if datatype == "BOOL" and count and np.frombuffer(blob, dtype=np.uint8).max() > 1:
        raise BadRequest(f"input {name!r}: BOOL bytes must be 0 or 1")
    arr = np.frombuffer(blob, dtype=wire).reshape(shape)
    return arr if wire == native else arr.astype(native)  # a copy only on big-endian hosts


def little_endian_bytes(array: np.ndarray) -> bytes:
    """A numeric array's bytes as the wire wants them: row-major, little-endian."""
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        array = array.astype(array.dtype.newbyteorder("<"))
    return array.tobytes()  # row-major whatever the array's own layout


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
        data = little_endian_bytes(array)
    return {"name": name, "datatype": datatype, "shape": list(array.shape),
            "parameters": {"binary_data_size": len(data)}}, data


# -- Heads seen before ----------------------------------------------------------------------------
# A client sends the same JSON head, byte for byte, with every request of one shape: only the tensor
# bytes after it change. Parsing and checking that head again is most of what a small model's
# request costs in this layer, so a head that passed once is kept as a plan that slices the next
# body directly. Only all-binary, numeric heads without an "id" are kept (the others vary by request).


@dataclass(frozen=True)
class PlannedInput:
    name: str
    wire: np.dtype  # little-endian, as sent
    native: np.dtype
    shape: tuple[int, ...]
    count: int


@dataclass(frozen=True)
class HeadPlan:
    inputs: tuple[PlannedInput, ...]
    outputs: dict[str, bool] | None  # requested outputs: {name: binary?}, or None for all
    binary_default: bool
    data_bytes: int  # what must follow the head

    def decode(self, rest: memoryview) -> dict[str, np.ndarray]:
        arrays, offset = {}, 0
        for i in self.inputs:
            arr = np.frombuffer(rest, i.wire, i.count, offset).reshape(i.shape)
            arrays[i.name] = arr if i.wire == i.native else arr.astype(i.native)
            offset += i.count * i.wire.itemsize
        return arrays


def plan_for(head: dict, arrays: dict[str, np.ndarray], outputs, binary_default: bool) -> HeadPlan | None:
    """A plan for a head the full parser has just accepted (with the arrays it decoded), or None
    when the head is not the kind that repeats."""
    if head.get("id") is not None:
        return None
    planned, total = [], 0
    for item in head["inputs"]:
        size = (item.get("parameters") or {}).get("binary_data_size")
        arr = arrays[item["name"]]
        if size is None or arr.dtype == object:
            return None
        wire = arr.dtype.newbyteorder("<")
        planned.append(PlannedInput(item["name"], wire, arr.dtype, tuple(arr.shape), arr.size))
        total += size
    return HeadPlan(tuple(planned), outputs, binary_default, total)


class BoundedCache:
    """A dict for the plans and answer heads above. Bounded: a client that varies its heads (a new
    shape every time) only empties it now and then; it never grows without end."""

    def __init__(self, limit: int = 256):
        self.limit = limit
        self._items: dict = {}

    def get(self, key):
        return self._items.get(key)

    def put(self, key, value) -> None:
        if len(self._items) >= self.limit:
            self._items = {}
        self._items[key] = value
