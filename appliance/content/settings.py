"""The ``[content]`` section: course bundles and the asset store."""
from __future__ import annotations

from appliance.config import section, setting


@section("content")
class ContentSettings:
    """Course import and the content-addressed blob store."""

    install_demo: bool = setting(True, "Import the generated demo course on first start when no course is installed.")
    blob_quota_mb: int = setting(4096, "Disk quota for course assets; unpinned blobs are evicted least-recently-used first.")
    max_bundle_mb: int = setting(2048, "Largest uncompressed course bundle accepted.")
    max_compression_ratio: int = setting(200, "Largest uncompressed/compressed ratio of any member (zip bomb guard).")
    max_files: int = setting(20000, "Most files (members) a course bundle may contain.")
    max_manifest_mb: int = setting(32, "Largest course.json accepted (it is parsed in memory).")
    trusted_keys: list[str] = setting([], "Ed25519 public keys (base64, raw 32 bytes) allowed to sign bundles; when set, unsigned bundles are refused.")
