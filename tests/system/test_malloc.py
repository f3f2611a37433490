"""The allocator on a small box: freed model memory goes back to the OS, and the arena count is capped."""
from __future__ import annotations

import ctypes.util

import pytest

from appliance.system.malloc import limit_arenas, trim_heap


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


_COUNT_HEAPS = r"""
import ctypes, ctypes.util, sys, tempfile, threading
from appliance.system.malloc import limit_arenas
limit = int(sys.argv[1])
if limit:
    assert limit_arenas(limit) is True
barrier = threading.Barrier(8)
def churn():
    barrier.wait()  # all threads allocate at once, so they contend for the heap
    for _ in range(200):
        blocks = [bytearray(512) for _ in range(200)]
        del blocks
threads = [threading.Thread(target=churn) for _ in range(8)]
[t.start() for t in threads]
[t.join() for t in threads]
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    f = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, f)
    libc.fclose(f)
    print(open(out.name).read().count("<heap nr="))
"""


def _heaps(limit: int) -> int:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _COUNT_HEAPS, str(limit)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_arena_limit_caps_the_heaps_threads_create():
    if "musl" in (ctypes.util.find_library("c") or ""):
        pytest.skip("musl has no mallopt arenas")
    assert _heaps(1) == 1  # eight contending threads, one arena: the cap holds
    assert limit_arenas(0) is False  # 0 leaves the C library's default alone

