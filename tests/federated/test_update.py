"""The update on the wire: clipping, local DP noise and its budget, int8 quantization, the codec."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from appliance.errors import BadRequest
from appliance.federated import privacy
from appliance.federated.update import (
    MAGIC,
    ModelUpdate,
    UpdateKey,
    decode,
    dequantize,
    encode,
    float32_size,
    make_update,
    new_update_id,
    quantize,
)
from appliance.learning.features import FeatureSpec

N = FeatureSpec().n_features + 1  # the real learner model's parameter count


def _key(box="school1/box1", base=3):
    return UpdateKey(box, base, new_update_id())


# -- clipping -------------------------------------------------------------------------------------
def test_clip_scales_long_vectors_to_the_bound_and_keeps_their_direction():
    v = np.random.default_rng(0).normal(size=N).astype(np.float32) * 3
    clipped, norm, was = privacy.clip_l2(v, 5.0)
    assert was and norm == pytest.approx(float(np.linalg.norm(v.astype(np.float64))), rel=1e-6)
    assert np.linalg.norm(clipped) == pytest.approx(5.0, rel=1e-5)
    cos = float(clipped @ v) / (np.linalg.norm(clipped) * np.linalg.norm(v))
    assert cos == pytest.approx(1.0, abs=1e-6)


def test_clip_leaves_short_vectors_alone_and_refuses_nan():
    v = np.full(10, 0.1, dtype=np.float32)
    clipped, _, was = privacy.clip_l2(v, 5.0)
    assert not was and np.array_equal(clipped, v)
    with pytest.raises(ValueError):
        privacy.clip_l2(np.array([1.0, np.nan], dtype=np.float32), 1.0)


def test_make_update_is_the_clipped_delta_from_the_base():
    rng = np.random.default_rng(1)
    base = rng.normal(size=N).astype(np.float32)
    trained = base + rng.normal(size=N).astype(np.float32)
    upd = make_update(_key(), "learner", base, trained, 120, 2.0, 0.0, rng)
    assert upd.clipped and upd.norm > 2.0
    assert np.linalg.norm(upd.delta) == pytest.approx(2.0, rel=1e-5)
    direction = (trained.astype(np.float64) - base) / np.linalg.norm(trained.astype(np.float64) - base)
    assert float(upd.delta @ direction) == pytest.approx(2.0, rel=1e-4)


# -- local differential privacy -------------------------------------------------------------------
def test_dp_noise_has_standard_deviation_noise_multiplier_times_clip_norm():
    rng = np.random.default_rng(2)
    zero = np.zeros(200_000, dtype=np.float32)
    noisy = privacy.gaussian_noise(zero, clip_norm=2.0, noise_multiplier=0.5, rng=rng)
    assert float(np.std(noisy)) == pytest.approx(1.0, rel=0.01)  # 0.5 * 2.0
    assert abs(float(np.mean(noisy))) < 0.01
    assert np.array_equal(privacy.gaussian_noise(zero, 2.0, 0.0, rng), zero)  # off means off


def test_privacy_budget_composes_and_is_unbounded_without_noise():
    rho = privacy.rho_per_update(1.0)
    assert rho == pytest.approx(2.0)  # sensitivity 2C, sd C: (2C)^2 / (2 C^2)
    one = privacy.epsilon_from_rho(rho, 1e-5)
    ten = privacy.epsilon_from_rho(10 * rho, 1e-5)
    assert 0 < one < ten
    assert one == pytest.approx(rho + 2 * math.sqrt(rho * math.log(1e5)))
    # The closed form is the minimum of the RDP conversion over alpha (checked on a grid).
    alphas = np.linspace(1.001, 200, 200_000)
    assert one == pytest.approx(float(np.min(alphas * rho + math.log(1e5) / (alphas - 1))), rel=1e-4)
    assert math.isinf(privacy.rho_per_update(0.0))
    summary = privacy.budget_summary([math.inf], 1e-5)
    assert summary["epsilon"] is None and "unbounded" in summary["text"]
    assert privacy.budget_summary([rho, rho], 1e-5)["epsilon"] == pytest.approx(privacy.epsilon_from_rho(2 * rho, 1e-5))


# -- quantization ---------------------------------------------------------------------------------
def test_stochastic_quantization_is_unbiased():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.01, size=300).astype(np.float32)
    x[::7] = 0.0
    runs = 4000
    acc = np.zeros(x.size, dtype=np.float64)
    for _ in range(runs):
        scales, q = quantize(x, 64, rng)
        acc += dequantize(scales, q, 64)
    mean = acc / runs
    step = float(np.max(np.abs(x))) / 127
    # Each rounding is off by less than one step; the mean of 4000 is off by ~step/(2 sqrt(4000)).
    assert float(np.max(np.abs(mean - x))) < 0.06 * step
    assert float(np.max(np.abs(mean - x))) > 0  # it is random, not round-to-nearest
    scales, q = quantize(x, 64, rng)
    assert np.all(q[::7] == 0)  # zero stays exactly zero
    assert float(np.max(np.abs(dequantize(scales, q, 64) - x))) <= step * 1.0001


def test_round_trip_keeps_the_key_and_the_values_within_one_step():
    rng = np.random.default_rng(4)
    delta = rng.normal(size=N).astype(np.float32)
    upd = ModelUpdate(_key(), "learner", 321, delta, norm=7.5, clipped=True, noise_multiplier=0.3)
    back = decode(encode(upd, 256, rng))
    assert back.key == upd.key and back.model == "learner" and back.samples == 321
    assert back.clipped and back.norm == pytest.approx(7.5) and back.noise_multiplier == pytest.approx(0.3)
    assert float(np.max(np.abs(back.delta - delta))) <= float(np.max(np.abs(delta))) / 127 * 1.001


def test_a_typical_sparse_update_is_at_most_a_quarter_of_float32():
    # A classroom moves the weights of the items and skills it practised, not the other ~1100 buckets.
    rng = np.random.default_rng(5)
    delta = np.zeros(N, dtype=np.float32)
    touched = rng.choice(N, size=250, replace=False)
    delta[touched] = rng.normal(0, 0.05, size=250)
    size = len(encode(ModelUpdate(_key(), "learner", 100, delta), 256, rng))
    assert size <= 0.25 * float32_size(N), size


def test_a_dense_update_is_about_a_quarter_of_float32():
    # Dense (e.g. DP noise everywhere): int8 is 1 byte of 4, plus the header and one scale per block.
    rng = np.random.default_rng(6)
    delta = rng.normal(size=N).astype(np.float32)
    size = len(encode(ModelUpdate(_key(), "learner", 100, delta), 256, rng))
    assert size <= 0.27 * float32_size(N), size


# -- malformed input ------------------------------------------------------------------------------
def _good() -> bytes:
    rng = np.random.default_rng(7)
    return encode(ModelUpdate(_key(), "learner", 10, rng.normal(size=50).astype(np.float32)), 16, rng)


@pytest.mark.parametrize("mangle, why", [
    (lambda b: b"XXXX" + b[4:], "bad magic"),
    (lambda b: b[:30], "too short"),
    (lambda b: b[:-3], "body length"),
    (lambda b: b + b"junk", "body length"),
    (lambda b: b[:4] + bytes([9]) + b[5:], "unsupported update format"),
])
def test_malformed_updates_are_refused_with_a_reason(mangle, why):
    with pytest.raises(BadRequest, match=why):
        decode(mangle(_good()))


def _split(data: bytes) -> tuple[bytes, bytes]:
    """(header up to the body length field, compressed body) of an encoded update."""
    pos = struct.calcsize("<4sBBIHIIff16s")
    pos += 1 + data[pos]  # box id
    pos += 1 + data[pos]  # model name
    return data[:pos], data[pos + 4:]


def test_a_compression_bomb_is_refused_without_inflating_it():
    import zstandard

    head, _ = _split(_good())
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (50 * 1024 * 1024))
    with pytest.raises(BadRequest, match="malformed"):
        decode(head + struct.pack("<I", len(bomb)) + bomb)


def test_minus_128_is_refused_because_the_range_is_symmetric():
    import zstandard

    good = _good()
    assert good.startswith(MAGIC)
    head, body = _split(good)
    raw = zstandard.ZstdDecompressor().decompress(body)
    packed = zstandard.ZstdCompressor().compress(raw[:-1] + bytes([0x80]))
    with pytest.raises(BadRequest, match="-128"):
        decode(head + struct.pack("<I", len(packed)) + packed)



def test_a_non_finite_update_is_refused_before_it_can_poison_a_buffer(monkeypatch):
    from appliance.errors import BadRequest as _BadRequest
    from appliance.federated import update as U

    key = U.UpdateKey("site/box", 1, "00000000-0000-0000-0000-000000000001")
    upd = U.ModelUpdate(key, "learner", 10, np.ones(300, dtype=np.float32))
    rng = np.random.default_rng(0)
    assert np.all(np.isfinite(U.decode(U.encode(upd, 256, rng)).delta))
    # A hostile box: the largest finite float32 scale times q=127 overflows to inf once decoded.
    monkeypatch.setattr(U, "quantize", lambda delta, block, rng: (np.full(2, 3e38, dtype=np.float32),
                                                                 np.full(300, 127, dtype=np.int8)))
    hostile = U.encode(upd, 256, rng)
    with pytest.raises(_BadRequest, match="not finite"):
        U.decode(hostile)
