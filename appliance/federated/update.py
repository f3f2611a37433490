"""A model update: delta from the base version, clipped, optionally noised, int8-quantized, compressed.

Wire format (version 1), little-endian, designed so a hub can check it before trusting any of it:

    b"CEFU" | u8 format | u8 flags | u32 n | u16 block | u32 base_version | u32 samples
    | f32 norm_before_clip | f32 noise_multiplier | 16 bytes update id (UUID)
    | u8 len + box id (UTF-8) | u8 len + model name (UTF-8) | u32 body length
    | zstd( f32 scale per block | int8 value per coordinate )

Quantization is stochastic rounding per block: scale = max|x| / 127, q = floor(x / scale + U[0, 1)),
so E[q * scale] = x exactly (unbiased) and averaging many updates cancels the rounding error instead of
accumulating it. A zero coordinate stays exactly zero, which keeps sparse updates (features a classroom
never saw) nearly free after compression. 1 byte per value plus a scale per block is ~25% of float32
before compression.
"""
from __future__ import annotations

import logging
import struct
import uuid
from dataclasses import dataclass

import numpy as np
import zstandard

from appliance.errors import BadRequest
from appliance.federated.privacy import clip_l2, gaussian_noise

log = logging.getLogger(__name__)

MAGIC = b"CEFU"
FORMAT = 1
FLAG_CLIPPED = 1
_HEAD = struct.Struct("<4sBBIHIIff16s")
MAX_VALUES = 10_000_000  # far above any learner model; refuses absurd headers before allocating


@dataclass(frozen=True)
class UpdateKey:
    """What makes an update unique: the box, the global version it started from, and its own id."""
    box: str
    base_version: int
    update_id: str

    def __str__(self) -> str:
        return f"{self.box}/v{self.base_version}/{self.update_id}"


@dataclass
class ModelUpdate:
    key: UpdateKey
    model: str
    samples: int
    delta: np.ndarray          # float32; after decoding, the dequantized values
    norm: float = 0.0          # L2 norm before clipping (what the box computed)
    clipped: bool = False
    noise_multiplier: float = 0.0


def new_update_id() -> str:
    return str(uuid.uuid4())


def make_update(key: UpdateKey, model: str, base: np.ndarray, trained: np.ndarray, samples: int,
                clip_norm: float, noise_multiplier: float, rng: np.random.Generator) -> ModelUpdate:
    """Delta of ``trained`` from ``base``, clipped to ``clip_norm``, plus local DP noise if asked."""
    base = np.asarray(base, dtype=np.float32)
    trained = np.asarray(trained, dtype=np.float32)
    if base.shape != trained.shape:
        raise ValueError(f"trained model has shape {trained.shape}, its base {base.shape}")
    # Subtract in float64: the delta of two float32 vectors is exact there.
    delta = (trained.astype(np.float64) - base.astype(np.float64)).astype(np.float32)
    clipped, norm, was_clipped = clip_l2(delta, clip_norm)
    noisy = gaussian_noise(clipped, clip_norm, noise_multiplier, rng)
    return ModelUpdate(key, model, int(samples), noisy, norm, was_clipped, float(noise_multiplier))


def quantize(values: np.ndarray, block: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased stochastic int8 quantization; returns (scales float32 [blocks], q int8 [n])."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if block < 1:
        raise ValueError("quantization block must be at least 1")
    nb = -(-x.size // block)
    scales = np.zeros(nb, dtype=np.float32)
    q = np.zeros(x.size, dtype=np.int8)
    for b in range(nb):
        part = x[b * block:(b + 1) * block]
        peak = float(np.max(np.abs(part))) if part.size else 0.0
        if peak == 0.0:
            continue
        s = np.float32(peak / 127.0)
        if peak / float(s) > 127.0:  # float32 rounding made the scale a hair too small
            s = np.nextafter(s, np.float32(np.inf))
        scaled = part / float(s)
        r = np.floor(scaled + rng.random(part.size))
        q[b * block:(b + 1) * block] = np.clip(r, -127, 127).astype(np.int8)
        scales[b] = s
    return scales, q


def dequantize(scales: np.ndarray, q: np.ndarray, block: int) -> np.ndarray:
    expanded = np.repeat(scales.astype(np.float32), block)[: q.size]
    return (q.astype(np.float32) * expanded).astype(np.float32)


def encode(update: ModelUpdate, block: int, rng: np.random.Generator, level: int = 19) -> bytes:
    """The bytes that leave the box for ``update`` (quantizes ``update.delta``)."""
    box = update.key.box.encode("utf-8")
    model = update.model.encode("utf-8")
    if not box or len(box) > 255 or not model or len(model) > 255:
        raise ValueError("box id and model name must be 1..255 bytes")
    if not 1 <= block <= 65535:
        raise ValueError("federated.quant_block must be between 1 and 65535")
    scales, q = quantize(update.delta, block, rng)
    body = zstandard.ZstdCompressor(level=level).compress(scales.astype("<f4").tobytes() + q.tobytes())
    head = _HEAD.pack(MAGIC, FORMAT, FLAG_CLIPPED if update.clipped else 0, q.size, block,
                      update.key.base_version, update.samples, update.norm, update.noise_multiplier,
                      uuid.UUID(update.key.update_id).bytes)
    return b"".join([head, bytes([len(box)]), box, bytes([len(model)]), model,
                     struct.pack("<I", len(body)), body])


def decode(data: bytes) -> ModelUpdate:
    """Parse and check an update; any malformed input is a ``BadRequest`` that names the problem."""
    try:
        return _decode(memoryview(data))
    except (struct.error, zstandard.ZstdError, ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed model update: {exc}") from None


def _decode(buf: memoryview) -> ModelUpdate:
    if len(buf) < _HEAD.size:
        raise ValueError("too short")
    magic, fmt, flags, n, block, base, samples, norm, noise, uid = _HEAD.unpack_from(buf, 0)
    if magic != MAGIC:
        raise ValueError("not a model update (bad magic)")
    if fmt != FORMAT:
        raise ValueError(f"unsupported update format {fmt}")
    if not 0 < n <= MAX_VALUES or block < 1:
        raise ValueError(f"implausible size n={n} block={block}")
    pos = _HEAD.size
    box, pos = _short_str(buf, pos)
    model, pos = _short_str(buf, pos)
    (body_len,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    if pos + body_len != len(buf):
        raise ValueError("body length does not match the message size")
    nb = -(-n // block)
    expected = 4 * nb + n
    # max_output_size bounds the work a hostile "zip bomb" body can cause.
    raw = zstandard.ZstdDecompressor().decompress(bytes(buf[pos:]), max_output_size=expected)
    if len(raw) != expected:
        raise ValueError(f"body holds {len(raw)} bytes, expected {expected}")
    scales = np.frombuffer(raw[: 4 * nb], dtype="<f4").astype(np.float32)
    if not np.all(np.isfinite(scales)) or np.any(scales < 0):
        raise ValueError("invalid quantization scales")
    q = np.frombuffer(raw[4 * nb:], dtype=np.int8)
    if np.any(q == -128):
        raise ValueError("int8 value -128 is outside the symmetric range")
    key = UpdateKey(box, int(base), str(uuid.UUID(bytes=bytes(uid))))
    if np.any(scales > np.finfo(np.float32).max / 127):
        # q * scale would overflow to inf, and one inf poisons every aggregate it joins.
        raise ValueError("update values are not finite (a quantization scale is too large)")
    return ModelUpdate(key, model, int(samples), dequantize(scales, q, block), float(norm),
                       bool(flags & FLAG_CLIPPED), float(noise))


def _short_str(buf: memoryview, pos: int) -> tuple[str, int]:
    size = buf[pos]
    text = bytes(buf[pos + 1: pos + 1 + size]).decode("utf-8")
    if size == 0 or len(text.encode("utf-8")) != size:
        raise ValueError("truncated text field")
    return text, pos + 1 + size


def float32_size(n_values: int) -> int:
    """What the same update costs as raw float32 (the baseline the 25% target refers to)."""
    return 4 * n_values
