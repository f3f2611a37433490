"""Freed model memory goes back to the OS (glibc keeps freed heap pages otherwise)."""
from __future__ import annotations

import ctypes.util

import pytest

from appliance.inference.memory import trim_heap


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_trim_returns_freed_heap_pages():
    if "musl" in (ctypes.util.find_library("c") or ""):
        pytest.skip("musl has no malloc_trim")
    # 4 KiB blocks come from malloc's heap (not mmap); keeping every 16th pins the heap's top so only
    # malloc_trim can release the pages in between, as after a batch of long sentences.
    blocks = [bytearray(4096) for _ in range(60_000)]
    keep = blocks[::16]
    del blocks
    before = _rss_mb()
    assert trim_heap() is True
    after = _rss_mb()
    assert before - after > 100, f"RSS {before:.0f} -> {after:.0f} MB"
    assert len(keep) == 3750
