"""Tensor types and shapes as the Open Inference Protocol names them, and the checks on them.

One vocabulary for every layer: the repository's ``model.json``, the backends (ONNX Runtime and
TensorRT type names are translated here) and the HTTP API all speak OIP datatypes (``FP32``,
``INT64``, ``BYTES``...). Validation lives here too, so a bad tensor is refused with a message that
names the input before it reaches a backend (where it would surface as an opaque native error).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from appliance.errors import BadRequest

# OIP datatype -> numpy dtype. BYTES travel inside the appliance as numpy object arrays of ``str``
# (ONNX string tensors; ONNX Runtime takes str and would stringify ``bytes`` as "b'...'").
NUMPY_OF = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}

# ONNX Runtime's type strings (``NodeArg.type``) -> OIP datatype.
ORT_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


_DATATYPE_OF = {dt: name for name, dt in NUMPY_OF.items() if name != "BYTES"}


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype of a numpy array (object and string arrays are BYTES)."""
    name = _DATATYPE_OF.get(array.dtype)
    if name is not None:
        return name
    if array.dtype.kind in ("O", "S", "U"):
        return "BYTES"
    raise BadRequest(f"unsupported tensor type {array.dtype}")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model. ``shape`` uses -1 for a dimension of any size."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    # model.json only (not the protocol's metadata): the longest input a model can take where its
    # graph cannot say so, -1 = no limit on that axis (MiniLM's position table: 512 tokens; past it,
    # ONNX Runtime's own broadcast error was all the client read).
    max_shape: tuple[int, ...] | None = None

    @classmethod
    def from_json(cls, obj: dict, where: str) -> TensorSpec:
        try:
            name, datatype, shape = obj["name"], obj["datatype"], obj["shape"]
        except (KeyError, TypeError):
            raise BadRequest(f"{where}: each tensor needs name, datatype and shape") from None
        if not isinstance(datatype, str) or datatype not in NUMPY_OF:
            raise BadRequest(f"{where}: tensor {name!r} has unknown datatype {datatype!r}")
        if not _dims(shape):
            raise BadRequest(f"{where}: tensor {name!r} shape must be a list of integers (-1 = any size)")
        most = obj.get("max_shape")
        if most is not None and not (_dims(most) and len(most) == len(shape)):
            raise BadRequest(f"{where}: tensor {name!r} max_shape must be a list of integers (-1 = no limit), "
                             "one per axis of its shape")
        return cls(str(name), datatype, tuple(shape), None if most is None else tuple(most))

    def to_json(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}

    def check(self, array: np.ndarray) -> None:
        """Refuse an array whose type or shape this tensor cannot take, naming what was wrong."""
        got = datatype_of(array)
        if got != self.datatype:
            raise BadRequest(f"input {self.name!r} must be {self.datatype}, not {got}")
        if len(array.shape) != len(self.shape):
            raise BadRequest(f"input {self.name!r} must have shape {list(self.shape)}, got {list(array.shape)}")
        for want, have in zip(self.shape, array.shape):
            if want != -1 and want != have:
                raise BadRequest(f"input {self.name!r} must have shape {list(self.shape)}, got {list(array.shape)}")


def check_limits(declared: list[TensorSpec], inputs: dict[str, np.ndarray]) -> None:
    """Refuse an input longer than model.json's ``max_shape`` for it, naming the limit."""
    for spec in declared:
        array = inputs.get(spec.name)
        if spec.max_shape is None or array is None:
            continue
        for axis, (most, have) in enumerate(zip(spec.max_shape, array.shape)):
            if most >= 0 and have > most:
                raise BadRequest(f"input {spec.name!r} takes at most {most} along axis {axis}, got {have}")


def _dims(value) -> bool:
    """A shape as model.json writes it: a list of integers, -1 for any size (or no limit)."""
    return isinstance(value, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in value)


def check_inputs(specs: list[TensorSpec], inputs: dict[str, np.ndarray]) -> None:
    """Exactly the declared inputs, each with an acceptable type and shape."""
    wanted = {s.name for s in specs}
    missing = sorted(wanted - inputs.keys())
    extra = sorted(inputs.keys() - wanted)
    if missing:
        raise BadRequest(f"missing input(s): {', '.join(missing)}")
    if extra:
        raise BadRequest(f"unknown input(s): {', '.join(extra)} (this model takes {', '.join(sorted(wanted))})")
    for spec in specs:
        spec.check(inputs[spec.name])


def as_text_array(values) -> np.ndarray:
    """An object array of ``str`` (what ONNX Runtime wants for string tensors) from str or UTF-8 bytes."""
    arr = np.asarray(values, dtype=object)
    flat = []
    for v in arr.reshape(-1):
        if isinstance(v, bytes):
            try:
                v = v.decode("utf-8")
            except UnicodeDecodeError:
                raise BadRequest("BYTES tensors must hold UTF-8 text") from None
        if not isinstance(v, str):
            raise BadRequest("BYTES tensors must hold strings")
        try:
            v.encode("utf-8")  # a lone surrogate ("\ud800" in JSON) is no text ONNX Runtime can take
        except UnicodeEncodeError:
            raise BadRequest("BYTES tensors must hold valid Unicode text (no lone surrogates)") from None
        flat.append(v)
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return out.reshape(arr.shape)


def _all_ints(data) -> bool:
    """Every value of (nested) JSON ``data`` is an integer (not a bool, not a float)."""
    stack = [data]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif not isinstance(v, int) or isinstance(v, bool):
            return False
    return True


def _kind_ok(datatype: str, kind: str) -> bool:
    if datatype == "BOOL":
        return kind == "b"
    if datatype.startswith(("INT", "UINT")):
        return kind in "iu"  # 1.5 silently truncated to 1 would be a wrong answer, not an error
    return kind in "iuf"  # FP types take integers too


def parameters_of(obj: dict, what: str) -> dict:
    """The ``parameters`` object of a request, tensor or output ({} when absent), or a 400 naming
    ``what`` when a client sent something else there."""
    params = obj.get("parameters")
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise BadRequest(f"{what}: 'parameters' must be an object")
    return params


MAX_DIMS = 32      # numpy's own limit before 2.0; no model here has more than 4
MAX_DIM = 2**31 - 1


def check_tensor_head(obj: dict, max_elements: int | None) -> tuple[str, str, list[int], int]:
    """(name, datatype, shape, element count) of a request tensor's description, JSON or binary, or a
    BadRequest naming what is wrong."""
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest("each input needs a name")
    datatype, shape = obj.get("datatype"), obj.get("shape")
    if not isinstance(datatype, str) or datatype not in NUMPY_OF:
        raise BadRequest(f"input {name!r}: unknown datatype {datatype!r} (use one of {', '.join(NUMPY_OF)})")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise BadRequest(f"input {name!r}: shape must be a list of non-negative integers")
    if len(shape) > MAX_DIMS:
        raise BadRequest(f"input {name!r}: at most {MAX_DIMS} dimensions, not {len(shape)}")
    # Each dimension on its own too: [0, 2**70] holds no element, but numpy cannot make that shape.
    largest = max_elements if max_elements is not None else MAX_DIM
    if any(d > largest for d in shape):
        raise BadRequest(f"input {name!r}: a dimension of {max(shape)} is more than the {largest} elements accepted")
    count = math.prod(shape)
    if max_elements is not None and count > max_elements:
        raise BadRequest(f"input {name!r} has {count} elements; at most {max_elements} are accepted")
    return name, datatype, shape, count


def decode_json_tensor(obj: dict, max_elements: int | None = None) -> np.ndarray:
    """An OIP JSON tensor (``name``, ``shape``, ``datatype``, ``data`` flat or nested) as a numpy array.

    Every way it can be wrong is a BadRequest naming the tensor: unknown datatype, bad shape, data
    that does not fit the shape, values of the wrong kind, integers out of range.
    """
    if not isinstance(obj, dict):
        raise BadRequest("each input must be an object with name, shape, datatype and data")
    name, datatype, shape, count = check_tensor_head(obj, max_elements)
    if parameters_of(obj, f"input {name!r}").get("binary_data_size") is not None:
        raise BadRequest(f"input {name!r}: the binary tensor extension is not supported; send the data as JSON")
    data = obj.get("data")
    if data is None:
        raise BadRequest(f"input {name!r} has no data")
    if not isinstance(data, list):
        data = [data]
    try:
        if datatype == "BYTES":
            arr = as_text_array(np.asarray(data, dtype=object))
        else:
            raw = np.asarray(data)
            target = NUMPY_OF[datatype]
            if target.kind in "iu" and raw.dtype.kind == "f" and _all_ints(data):
                # [2**64 - 1, 0] is UINT64, but numpy reads a list past INT64 as float64 (and rounds it).
                raw = np.asarray(data, dtype=object)
            if raw.size and not _kind_ok(datatype, "i" if raw.dtype == object else raw.dtype.kind):
                raise BadRequest(f"input {name!r}: data must be {datatype} values")
            if target.kind in "iu" and raw.size:
                info = np.iinfo(target)
                if raw.min() < info.min or raw.max() > info.max:
                    raise BadRequest(f"input {name!r}: a value does not fit in {datatype}")
            with np.errstate(over="raise", invalid="raise"):
                arr = raw.astype(target, copy=False)
            if target.kind == "f" and arr.size and not np.all(np.isfinite(arr)):
                # NaN or inf would come back as bare NaN, which is not JSON; no model here wants them.
                raise BadRequest(f"input {name!r}: values must be finite {datatype} numbers")
    except FloatingPointError:
        raise BadRequest(f"input {name!r}: a value does not fit in {datatype}") from None
    except (ValueError, TypeError, OverflowError):
        raise BadRequest(f"input {name!r}: data is not a regular array of {datatype} values") from None
    if arr.size != count:
        raise BadRequest(f"input {name!r}: {arr.size} values do not fill shape {shape} ({count} needed)")
    return arr.reshape(shape)


def encode_json_tensor(name: str, array: np.ndarray) -> dict:
    array = np.asarray(array)
    datatype = datatype_of(array)
    flat = array.reshape(-1)
    if datatype == "BYTES":
        data = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat]
    else:
        if flat.dtype.kind == "f" and flat.size and not np.isfinite(flat).all():
            # Python would write NaN and Infinity bare, which JSON parsers (JavaScript's, Go's) refuse
            # along with the whole answer; the binary form carries them.
            raise BadRequest(f"output {name!r} holds NaN or infinite values, which JSON cannot carry; ask for it "
                             "as binary data (the output's parameters: {\"binary_data\": true})")
        data = flat.tolist()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}
