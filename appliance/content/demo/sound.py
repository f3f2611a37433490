"""A tiny generated WAV: one whole note, two half notes, four quarter notes.

Each group lasts the same time, so a child hears that two halves (and four quarters) make one whole.
8 kHz, 8-bit mono keeps it under 50 KB; every sample is computed with integer rounding, so the file is
byte-identical on every run.
"""
from __future__ import annotations

import io
import math
import wave

RATE = 8000
BEAT_S = 2.0          # one whole note; halves and quarters divide it
GAP_S = 0.06          # silence at the end of each note, so repeated notes are heard apart
PITCHES = (523.25, 659.25, 783.99)  # C5, E5, G5: one pitch per group


def _note(freq: float, seconds: float) -> bytes:
    n = int(RATE * seconds)
    sounding = n - int(RATE * GAP_S)
    out = bytearray()
    for i in range(n):
        if i >= sounding:
            out.append(128)
            continue
        # A short attack and a linear decay: a soft "ding" rather than a harsh beep.
        env = min(1.0, i / (0.01 * RATE)) * (1.0 - i / sounding)
        out.append(128 + round(90 * env * math.sin(2 * math.pi * freq * i / RATE)))
    return bytes(out)


def whole_half_quarter_wav() -> bytes:
    frames = b"".join([
        _note(PITCHES[0], BEAT_S),
        *(_note(PITCHES[1], BEAT_S / 2) for _ in range(2)),
        *(_note(PITCHES[2], BEAT_S / 4) for _ in range(4)),
    ])
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(RATE)
        w.writeframes(frames)
    return buf.getvalue()
