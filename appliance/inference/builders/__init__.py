"""Build the default models into a Triton-style repository, from PyPI packages only (no torch).

- "learner": the Best-LR knowledge-tracing model, trained on simulated classrooms;
- "minilm": all-MiniLM-L6-v2 sentence embeddings, int8 (what the box serves);
- "minilm-fp32": the same encoder in float32 (reference for calibration and benchmarks).

`build_default_models(repo)` is what `make install`, the first start and `classroom-edge models
build` call. It is safe to repeat: a model whose newest build has the same sha256, is served the
same way (``SERVING_KEYS``) and came from the same builder version is not written again. Versions are imported through
`Repository.import_version`, so each appears whole or not at all; nothing is activated here (without an ACTIVE file the highest version is the active one, so a new build serves unless a version from elsewhere was being served, which is then pinned).
The model.json written here is described in MODEL_JSON.md.
"""
from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from appliance.errors import AppError, BadRequest, Unavailable
from appliance.inference.manifest import sha256_file
from appliance.inference.own_key import own_private_key, own_public_key
from appliance.inference.signing import signed_by_one_of

log = logging.getLogger(__name__)

MODELS = ("learner", "minilm", "minilm-fp32")
# Raised when a builder starts writing a different model or model.json, so that boxes built by an
# older one rebuild that model at their next start (``stale_default_models``). learner 2: its
# manifest says "dynamic_batching": false. learner 3, minilm 2, minilm-fp32 2: signed with the box's
# own key (``own_key``), so a box that turns on inference.trusted_keys keeps serving its defaults.
# minilm 3: 7-bit weights on an x86 CPU without VNNI (``quantize.reduce_range_needed``); the manifest
# says which.
BUILDER_VERSIONS = {"learner": 3, "minilm": 3, "minilm-fp32": 2}
BUILDERS_PREFIX = "appliance.inference.builders"


def _runtime_versions() -> dict:
    import onnx
    import onnxruntime

    return {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__, "numpy": np.__version__}


def _manifest(name: str, model_file: Path, inputs: list, outputs: list, **extra) -> dict:
    return {"name": name, "backend": "onnxruntime", "file": model_file.name,
            "sha256": sha256_file(model_file), "inputs": inputs, "outputs": outputs, **extra}


# model.json keys that change how a version is served. A build that changes one of them is a new
# version even when the model bytes are the same: otherwise a box built before the learner's
# "dynamic_batching": false would keep batching it after every upgrade.
SERVING_KEYS = ("inputs", "outputs", "max_batch_size", "dynamic_batching", "max_queue_delay_ms", "batch_padding")


def _builder_version(meta: dict) -> int | None:
    """Which version of our builders wrote this manifest; None for anything else, including a version
    an admin derived from a default build (``models quantize`` keeps the provenance it started from)."""
    provenance = meta.get("provenance")
    if not isinstance(provenance, dict) or not str(provenance.get("builder", "")).startswith(BUILDERS_PREFIX):
        return None
    if "quantized_from" in provenance:
        return None
    version = provenance.get("builder_version")
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _read_builder_version(repo, name: str, version: str) -> int | None:
    try:
        return _builder_version(repo.version(name, version).meta)
    except AppError as exc:  # an unreadable manifest is the engine's to report; it never counts as ours
        log.warning("cannot tell which builder wrote %s version %s: %s", name, version, exc.message)
        return None


def stale_default_models(repo) -> tuple[str, ...]:
    """Default models whose newest version an older builder wrote, and that no version from the
    current builder has replaced yet (so a version imported under a name, which sorts after every
    number, cannot make each start build again). A newest version from elsewhere (the hub's
    federated learner, an admin's quantized or own model) is never replaced by a default."""
    stale = []
    for name in MODELS:
        try:
            versions = repo.versions(name)
        except OSError as exc:  # an unreadable folder is the engine's to report, not a reason to stop
            log.warning("cannot list the versions of %s: %s", name, exc)
            continue
        if not versions:
            continue
        current = BUILDER_VERSIONS[name]
        newest = _read_builder_version(repo, name, versions[-1])
        if newest is None or newest >= current:
            continue  # the usual case: one manifest read per model at each start
        older = (_read_builder_version(repo, name, v) for v in versions[:-1])
        if not any(b is not None and b >= current for b in older):
            stale.append(name)
    return tuple(stale)


def _same_build(meta: dict, manifest: dict) -> bool:
    return (meta.get("sha256") == manifest["sha256"] and meta.get("files", {}) == manifest.get("files", {})
            and all(meta.get(k) == manifest.get(k) for k in SERVING_KEYS)
            and _builder_version(meta) == _builder_version(manifest))


def _older_copy(repo, name: str, version: str, manifest: dict) -> bool:
    """``version`` is one of our builds, by an older builder, of the same model file as ``manifest``."""
    built_by = _read_builder_version(repo, name, version)
    if built_by is None or built_by >= (_builder_version(manifest) or 0):
        return False
    try:
        meta = repo.version(name, version).meta
    except AppError:
        return False
    return meta.get("sha256") == manifest["sha256"] and meta.get("files", {}) == manifest.get("files", {})


def _signed_here(repo, meta: dict) -> bool:
    """Signed by this repository's own key, as every build of the current builders is."""
    own = own_public_key(repo.root)
    return signed_by_one_of(meta, [own] if own else [])


def _publish(repo, staging: Path, manifest: dict) -> str:
    """Write model.json and import the version, unless some version already is this model, served
    the same way (not only the newest: after a ``models quantize`` or a hub version, building again
    must not add another copy of the default)."""
    name = manifest["name"]
    damaged = None
    for version in reversed(repo.versions(name)):
        try:
            mv = repo.version(name, version)
        except AppError:  # an unreadable manifest is the engine's to report, not a reason to stop
            continue
        if not _same_build(mv.meta, manifest):
            continue
        if not _signed_here(repo, mv.meta):
            # A copy of our manifest someone put there unsigned (or re-signed): not a build of this
            # box, and a box that loads only signed models would refuse it. Build a signed one.
            log.warning("model %s: version %s claims this build but is not signed by this box", name, version)
            continue
        try:
            repo.verify_files(mv, manifest.get("backend") or "onnxruntime")
        except AppError as exc:  # a damaged copy of this build is no copy: build it again
            log.warning("model %s: version %s holds this build but is damaged (%s); building it again",
                        name, version, exc.message)
            damaged = damaged or version
            continue
        log.info("model %s: version %s already holds this build", name, version)
        return version
    # A new build of the default serves at once when a default was being served (a builder
    # upgrade), but never displaces a version from elsewhere that serves by being the highest.
    active = repo.active_version(name)
    pin = active is not None and active != damaged and _read_builder_version(repo, name, active) is None
    (staging / "model.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    mv = repo.import_version(staging, name, pin_current=pin, sign_key=own_private_key(repo.root))
    if damaged is not None and active == damaged and repo.active_version(name) != mv.version:
        repo.set_active(name, mv.version)  # the damaged one was served (pinned): serve its repair
    elif active is not None and repo.active_version(name) == active and _older_copy(repo, name, active, manifest):
        # ACTIVE pins an older builder's copy of these very weights (an admin served it, or an import
        # pinned it): serve the new copy, which says how to serve them now and is signed by the box.
        repo.set_active(name, mv.version)
    log.info("model %s: built version %s", name, mv.version)
    return mv.version


def build_learner(repo, work: Path, built_at: str, seed: int = 0) -> str:
    import onnx

    from appliance.inference.builders.learner import (
        INPUT,
        OUTPUT,
        check_against_numpy,
        learner_to_onnx,
    )
    from appliance.learning.learner_train import train_default

    model, metrics = train_default(seed=seed)
    proto = learner_to_onnx(model)
    rows = np.random.default_rng(seed).random((64, model.spec.n_features), dtype=np.float32)
    metrics["onnx_max_abs_diff"] = check_against_numpy(proto, model, rows)
    staging = work / "learner"
    staging.mkdir()
    onnx.save(proto, str(staging / "model.onnx"))
    f = model.spec.n_features
    manifest = _manifest(
        "learner", staging / "model.onnx",
        [{"name": INPUT, "datatype": "FP32", "shape": [-1, f]}],
        [{"name": OUTPUT, "datatype": "FP32", "shape": [-1, 1]}],
        task="knowledge-tracing", role="serving", max_batch_size=256,
        # A 7 µs run: handing it to a batching thread and back costs more than it saves.
        dynamic_batching=False,
        learner_feature_spec=model.spec.to_dict(), metrics=metrics,
        provenance={"source": {"kind": "simulator", "module": "appliance.learning.simulator", "seed": seed},
                    "builder": "appliance.inference.builders.learner", "builder_version": BUILDER_VERSIONS["learner"],
                    "built_at": built_at, "runtime": _runtime_versions()})
    return _publish(repo, staging, manifest)


def build_minilm_pair(repo, work: Path, built_at: str) -> dict[str, str]:
    import onnx

    from appliance.inference.builders import minilm
    from appliance.inference.builders.quantize import quantize_int8
    from appliance.inference.builders.tokenizer import MAX_TOKENS

    src = minilm.package_model_dir()
    positions = int(json.loads((src / "config.json").read_text(encoding="utf-8"))["max_position_embeddings"])
    source = {"package": minilm.PACKAGE, "version": minilm.package_version(),
              "weights_sha256": sha256_file(src / "model.safetensors"),
              "tokenizer_sha256": sha256_file(src / "tokenizer.json")}
    fp32_dir, int8_dir = work / "minilm-fp32", work / "minilm"
    for d in (fp32_dir, int8_dir):
        d.mkdir()
        shutil.copyfile(src / "tokenizer.json", d / "tokenizer.json")
    onnx.save(minilm.build_minilm(src), str(fp32_dir / "model.onnx"))
    int8_info = quantize_int8(fp32_dir / "model.onnx", int8_dir / "model.onnx", calibration_inputs(src))
    checks = self_check(fp32_dir, int8_dir)
    out = {}
    for name, d, quant in (("minilm-fp32", fp32_dir, None), ("minilm", int8_dir, int8_info)):
        size = (d / "model.onnx").stat().st_size
        metrics = {"size_bytes": size, **(checks if quant else {})}
        manifest = _manifest(
            name, d / "model.onnx",
            # max_shape: the position table's length; a longer input is refused by name, not by
            # ONNX Runtime's broadcast error (the box's own tokenizer stops at MAX_TOKENS).
            [{"name": n, "datatype": "INT64", "shape": [-1, -1], "max_shape": [-1, positions]} for n in minilm.INPUTS],
            [{"name": minilm.OUTPUT, "datatype": "FP32", "shape": [-1, 384]}],
            task="sentence-embedding", role="reference" if quant is None else "serving",
            files={"tokenizer.json": sha256_file(d / "tokenizer.json")},
            tokenizer={"file": "tokenizer.json", "max_tokens": MAX_TOKENS, "kind": "huggingface-tokenizers"},
            # 16, not 32: on a 2-4 core CPU a batch of 16 answers runs as fast per sentence, and
            # halving the longest batch shortens what an answer arriving behind it waits (40 students'
            # median p99 95 ms instead of 101; python -m bench.thread_split). A GPU box may raise it.
            max_batch_size=16, max_queue_delay_ms=2, batch_padding={"input_ids": 0, "attention_mask": 0},
            metrics=metrics,
            provenance={"source": source, "builder": "appliance.inference.builders.minilm",
                        "builder_version": BUILDER_VERSIONS[name], "built_at": built_at,
                        "quantization": quant, "runtime": _runtime_versions()})
        out[name] = _publish(repo, d, manifest)
    return out


def calibration_inputs(model_dir: Path) -> list[dict]:
    """Tokenized calibration sentences, one per feed (no padding skews the channel maxima)."""
    from appliance.inference.builders.smoothing import CALIBRATION_TEXTS
    from appliance.inference.builders.tokenizer import SentenceTokenizer

    tok = SentenceTokenizer(model_dir / "tokenizer.json")
    return [tok([t]) for t in CALIBRATION_TEXTS]


# Pairs whose order the encoder must get right; a broken build (wrong weights, a graph bug) fails here.
_CHECK = [("What is one half plus one quarter?", "How much is 1/2 + 1/4?", "The cat sleeps on the warm sofa."),
          ("The denominator is the bottom number of a fraction.",
           "The number under the fraction bar is called the denominator.", "Photosynthesis happens in leaves.")]


def self_check(fp32_dir: Path, int8_dir: Path) -> dict:
    """Refuse a build whose embeddings are not sensible; report int8 vs fp32 cosine."""
    import onnxruntime as ort

    from appliance.inference.builders.tokenizer import SentenceTokenizer

    tok = SentenceTokenizer(fp32_dir / "tokenizer.json")
    texts = [t for triple in _CHECK for t in triple]
    enc = tok(texts)
    outs = {}
    for key, d in (("fp32", fp32_dir), ("int8", int8_dir)):
        sess = ort.InferenceSession(str(d / "model.onnx"), providers=["CPUExecutionProvider"])
        e = sess.run(None, enc)[0]
        for i in range(0, len(texts), 3):
            close, far = float(e[i] @ e[i + 1]), float(e[i] @ e[i + 2])
            if not close > far + 0.2:
                raise RuntimeError(f"{key} MiniLM build failed its self-check: a paraphrase scored {close:.2f}, "
                                   f"an unrelated sentence {far:.2f}")
        outs[key] = e
    cos = np.sum(outs["fp32"] * outs["int8"], axis=1)
    return {"int8_vs_fp32_cosine_min": round(float(cos.min()), 4),
            "int8_vs_fp32_cosine_mean": round(float(cos.mean()), 4)}


def build_default_models(repo_dir, models: tuple[str, ...] = MODELS) -> dict[str, str]:
    """Build the default models into `repo_dir`; returns {model name: version}.

    Each model is built independently: if one cannot be built (say the MiniLM package is missing)
    the others are still published, then Unavailable names what failed and why.
    """
    from appliance.inference.repository import Repository

    unknown = set(models) - set(MODELS)
    if unknown:
        raise BadRequest(f"unknown default model(s) {sorted(unknown)}; choose from {list(MODELS)}")
    root = Path(repo_dir)
    root.mkdir(parents=True, exist_ok=True)
    repo = Repository(root)
    built_at = datetime.now(UTC).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    out: dict[str, str] = {}
    failed: dict[str, str] = {}
    steps = []
    if "learner" in models:
        steps.append(("learner", lambda work: {"learner": build_learner(repo, work, built_at)}))
    if {"minilm", "minilm-fp32"} & set(models):
        steps.append(("minilm", lambda work: build_minilm_pair(repo, work, built_at)))
    # Staging inside the repository keeps the final rename on one filesystem.
    with tempfile.TemporaryDirectory(dir=root, prefix=".build-") as tmp:
        for name, step in steps:
            try:
                out.update(step(Path(tmp)))
            except (OSError, ValueError, RuntimeError, AppError) as exc:
                log.error("default model %s could not be built: %s", name, exc)
                failed[name] = f"{type(exc).__name__}: {exc}"
    log.info("default models built in %.1f s: %s", time.perf_counter() - t0, out)
    if failed:
        raise Unavailable(f"could not build {', '.join(failed)} ({'; '.join(failed.values())}); "
                          f"built: {out or 'nothing'}", detail={"built": out, "failed": failed})
    return out
