"""Making new versions from existing ones (int8 quantization) and measuring one in-process.

Used by ``classroom-edge models quantize`` and ``models bench``. A new version is staged in a temporary
directory and imported through ``Repository.import_version``, so it appears whole and verified or not
at all; it is not activated unless asked (where the model had no ACTIVE, the served version is pinned first).
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from appliance.errors import BadRequest, IntegrityError
from appliance.inference.loaded import LoadedModel, sample_input
from appliance.inference.manifest import ModelVersion, sha256_file
from appliance.inference.own_key import own_private_key, own_public_key
from appliance.inference.repository import Repository
from appliance.inference.signing import signed_by_one_of

log = logging.getLogger(__name__)


QUANTIZABLE_OPS = ("MatMul", "Gemm", "Conv")
QUANTIZED_OPS = ("MatMulInteger", "ConvInteger", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv")


def check_quantizable(mv: ModelVersion, model_path: Path) -> None:
    """Refuse, with the reason, what dynamic int8 quantization cannot improve: a TensorRT engine, a
    graph already quantized, or one without float weights in a MatMul, Gemm or Conv (quantizing it
    would only make the file bigger)."""
    import onnx

    where = f"{mv.name} version {mv.version}"
    if not model_path.name.endswith(".onnx"):
        raise BadRequest(f"{where} is {model_path.name}, not an ONNX model: only ONNX models can be quantized")
    try:
        graph = onnx.load(str(model_path), load_external_data=False).graph
    except Exception as exc:  # noqa: BLE001 - protobuf's and onnx's own errors: what matters is why
        raise IntegrityError(f"{where}: {model_path.name} cannot be read as an ONNX model: {str(exc)[:200]}") from None
    if any(n.op_type in QUANTIZED_OPS for n in graph.node):
        raise BadRequest(f"{where} is already quantized (it has int8 operators)")
    floats = {t.name for t in graph.initializer if t.data_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)}
    if not any(n.op_type in QUANTIZABLE_OPS and any(i in floats for i in n.input) for n in graph.node):
        raise BadRequest(f"{where} has no float weights in a MatMul, Gemm or Conv: int8 would not make it "
                         "smaller or faster")


class _DropAdvice(logging.Filter):
    """onnxruntime's quantizer advises every caller, on the root logger, to pre-process the model
    (a link to an example): nothing an admin on the box can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def quiet_quantizer():
    """onnxruntime's quantizer logs on the *root* logger: an INFO line per tensor ("Quantization
    parameters for tensor ... not specified") and its pre-processing advice. Neither means anything
    to an admin, and the INFO lines flood `models build`: the root is held at WARNING, without the
    advice, for the duration of the call only."""
    root = logging.getLogger()
    level, advice = root.level, _DropAdvice()
    if level < logging.WARNING:
        root.setLevel(logging.WARNING)
    root.addFilter(advice)
    try:
        yield
    finally:
        root.removeFilter(advice)
        root.setLevel(level)


def _trusted_here(repo: Repository, mv: ModelVersion) -> bool:
    """Signed by a key this box trusts: a configured one or its own (whatever the repository's mode)."""
    own = own_public_key(repo.root)
    return signed_by_one_of(mv.meta, [*repo.configured_keys, *([own] if own else [])])


def quantize_version(repo: Repository, mv: ModelVersion, per_channel: bool = True,
                     sign_key: str | None = None, before_publish=None) -> ModelVersion:
    """Dynamic int8 quantization of weights (activations quantized at run time) into a new version,
    which does not serve until activated. ``sign_key`` signs its manifest (a box that loads only
    signed models refuses an unsigned one); without one, the copy of a version the box trusts (signed
    by a configured key or by the box itself) is signed with the box's own key, and the copy of an
    unsigned one stays unsigned, so quantizing never turns an untrusted model into a trusted one."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from appliance.inference.builders.quantize import reduce_range_needed

    if sign_key is None and _trusted_here(repo, mv):
        sign_key = own_private_key(repo.root)
    if sign_key is None and repo.trusted_keys:
        # Said before the work, not as the refusal of a temporary folder's copy after it.
        raise BadRequest(f"{mv.name} version {mv.version} is not signed by a key this box trusts, so its int8 copy "
                         "would not be either, and this box loads only signed models (inference.trusted_keys): "
                         "sign the copy with --sign-key KEY_FILE")

    src = mv.model_file("onnxruntime")
    with tempfile.TemporaryDirectory(prefix="ce-quantize-") as tmp:
        # Work on a copy: the quantizer writes scratch files next to its input, which must not be
        # the repository's version directory (read-only, or left with a partial file on a full disk).
        source = Path(tmp) / "source" / src.name
        source.parent.mkdir()
        shutil.copyfile(src, source)
        for rel in (mv.meta.get("files") or {}):  # external weights sit next to the graph
            (source.parent / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(mv.path / rel, source.parent / rel)
        if sha256_file(source) != mv.sha256:
            raise IntegrityError(f"{mv.name} version {mv.version}: {src.name} does not match its sha256")
        check_quantizable(mv, source)
        stage = Path(tmp) / "v"
        stage.mkdir()
        out = stage / "model.onnx"
        reduce_range, why = reduce_range_needed()  # 7-bit weights where this CPU's int8 products saturate
        try:
            with quiet_quantizer():
                quantize_dynamic(str(source), str(out), per_channel=per_channel, reduce_range=reduce_range,
                                 weight_type=QuantType.QInt8)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - the quantizer's own errors name no file or version
            raise IntegrityError(f"{mv.name} version {mv.version} could not be quantized: {str(exc)[:300]}") from None
        for rel in (mv.meta.get("files") or {}):
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(mv.path / rel, stage / rel)
        meta = {k: v for k, v in mv.meta.items() if k not in ("signature", "metrics", "file", "version")}
        meta.update({
            "sha256": sha256_file(out),
            # The source's metrics (AUC...) were measured on float weights; these say what int8 changed.
            "metrics": quantization_metrics(source, out),
            "provenance": {**(mv.meta.get("provenance") or {}), "quantized_from": mv.version,
                           "quantization": f"dynamic int8, {'per-channel' if per_channel else 'per-tensor'} weights"
                                           + (f", 7 bits used ({why})" if reduce_range else ""),
                           "source_sha256": mv.sha256},
        })
        (stage / "model.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        new = repo.import_version(stage, name=mv.name, sign_key=sign_key, before_publish=before_publish)
    log.info("%s: version %s is the int8 quantization of version %s (%d -> %d bytes)", mv.name, new.version,
             mv.version, src.stat().st_size, new.model_file("onnxruntime").stat().st_size)
    return new


def quantization_metrics(src: Path, quantized: Path, rows: int = 8, seed: int = 0) -> dict:
    """Size, and how far the int8 outputs are from the float ones on generated inputs (normal floats,
    zero ids, masks of ones): enough to catch a broken quantization, not a substitute for the model's own
    evaluation (the default builders measure that on real data: bench/quantization.py)."""
    import onnxruntime as ort

    try:
        sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (src, quantized)]
    except Exception as exc:  # noqa: BLE001 - e.g. ConvInteger, which the CPU provider lacks: sizes, and why
        return {**_sizes(src, quantized), "agreement": f"not measured: {str(exc)[:200]}"}
    rng = np.random.default_rng(seed)
    feed = {}
    for spec in sessions[0].get_inputs():
        shape = [rows if i == 0 and not isinstance(d, int) else (d if isinstance(d, int) and d > 0 else 16)
                 for i, d in enumerate(spec.shape)]
        if "float" in spec.type or "double" in spec.type:
            dtype = np.float16 if "float16" in spec.type else np.float64 if "double" in spec.type else np.float32
            feed[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif "int" in spec.type:
            # Zero is a valid token id and index (anything else may be out of range); a mask of zeros
            # would hide every token, so masks are ones.
            dtype = np.int32 if "int32" in spec.type else np.int64
            feed[spec.name] = (np.ones if "mask" in spec.name.lower() else np.zeros)(shape, dtype=dtype)
        else:
            return _sizes(src, quantized)  # text or bool inputs: no generic sample; sizes only
    try:
        ref, got = (s.run(None, feed) for s in sessions)
    except Exception as exc:  # noqa: BLE001 - a graph that wants other inputs: sizes only, and why
        return {**_sizes(src, quantized), "agreement": f"not measured: {str(exc)[:200]}"}
    diffs = [np.abs(np.asarray(a, float) - np.asarray(b, float)) for a, b in zip(ref, got) if np.asarray(a).dtype.kind == "f"]
    scale = max((float(np.abs(np.asarray(a, float)).max()) for a in ref if np.asarray(a).dtype.kind == "f"), default=0.0)
    out = _sizes(src, quantized)
    if diffs:
        out.update({"generated_rows": rows, "max_abs_diff": round(max(float(d.max()) for d in diffs), 6),
                    "mean_abs_diff": round(float(np.mean([d.mean() for d in diffs])), 6),
                    "max_abs_output": round(scale, 6)})
    return out


def _sizes(src: Path, quantized: Path) -> dict:
    a, b = src.stat().st_size, quantized.stat().st_size
    return {"source_bytes": a, "bytes": b, "smaller_x": round(a / b, 2) if b else None}


def bench_version(repo: Repository, mv: ModelVersion, settings, cache_dir: Path, batch: int, seconds: float,
                  dynamic: int = 16) -> dict:
    """Latency and throughput of one version on generated inputs, straight on its backend."""
    model = LoadedModel.load(repo, mv, settings, cache_dir)
    try:
        sample = {s.name: sample_input(s, batch if model.max_batch_size else 1, dynamic) for s in model.backend.inputs}
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 5:
            t0 = time.perf_counter()
            model.backend.infer(sample)
            times.append(time.perf_counter() - t0)
        lat = np.array(times)
        rows = batch if model.max_batch_size else 1
        return {
            "model": mv.name, "version": mv.version, **model.backend.describe(), "batch": rows,
            "variable_dims": dynamic, "runs": len(times),
            "p50_ms": round(float(np.percentile(lat, 50)) * 1000, 3),
            "p99_ms": round(float(np.percentile(lat, 99)) * 1000, 3),
            "rows_per_s": round(rows * len(times) / float(lat.sum()), 1),
            "file_mb": round(mv.model_file(mv.serving_backend(settings)).stat().st_size / 1e6, 2),
        }
    finally:
        model.close()

