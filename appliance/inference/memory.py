"""Giving freed model memory back to the operating system.

A sentence-encoder batch of long answers needs a few hundred MB of intermediate tensors for a moment.
ONNX Runtime frees them (its CPU arena is off by default, see ``inference.cpu_mem_arena``), but glibc
keeps freed memory in its heaps, so a worker's RSS would stay at the peak of its largest batch and the
box's memory budget would be gone after one busy lesson. ``malloc_trim`` returns the free pages; the
engine calls it from its watcher thread and after a model is swapped. On a C library without it
(musl) this is a no-op.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache

log = logging.getLogger(__name__)


@cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def trim_heap() -> bool:
    """Return free heap memory to the OS; True when the C library supports it."""
    fn = _malloc_trim()
    if fn is None:
        return False
    fn(0)
    return True
