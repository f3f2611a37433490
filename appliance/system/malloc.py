"""The C library's allocator, tuned for a small box.

glibc gives each thread that allocates while another holds the heap its own arena, up to 8 per
core, and an arena keeps its freed pages. A web worker runs 16 threads, so under a classroom's
load it grows a dozen arenas whose free space the worker never uses again: about 10 MB per worker
for nothing. ``limit_arenas`` caps them (``mallopt(M_ARENA_MAX)``, what the ``MALLOC_ARENA_MAX``
variable does, but settable from config and inherited by forked workers). ``trim_heap`` hands free
heap pages back. On a C library without these calls (musl) both are no-ops that say so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

M_ARENA_MAX = -8  # from glibc's malloc.h


@cache
def _libc():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _function(name: str, argtypes: list):
    lib = _libc()
    fn = getattr(lib, name, None) if lib is not None else None
    if fn is not None:
        fn.argtypes = argtypes
        fn.restype = ctypes.c_int
    return fn


def limit_arenas(count: int) -> bool:
    """Let malloc use at most ``count`` arenas in this process and its forks (0: the C library's
    default). True when the limit is in force."""
    if count <= 0:
        return False
    fn = _function("mallopt", [ctypes.c_int, ctypes.c_int])
    return bool(fn is not None and fn(M_ARENA_MAX, count) == 1)


def trim_heap() -> bool:
    """Return free heap memory to the OS; True when the C library supports it."""
    fn = _function("malloc_trim", [ctypes.c_size_t])
    if fn is None:
        return False
    fn(0)
    return True
