"""Classroom Edge: an offline classroom server (LMS, on-device models, store-and-forward sync)."""

__version__ = "0.1.0"
