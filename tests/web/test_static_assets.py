"""Scripts and styles are linked by their content hash, so a fixed file reaches every browser at the
next page load, and a fingerprinted URL may be cached for good."""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import appliance.web

STATIC = Path(appliance.web.__file__).parent / "static"


def test_pages_link_static_files_by_their_content_hash(admin_client):
    html = admin_client.get("/admin/content").get_data(as_text=True)
    links = dict(re.findall(r'/static/([\w.]+)\?v=([0-9a-f]+)"', html))
    assert {"app.css", "import.js"} <= set(links)
    for name, digest in links.items():
        assert digest == hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12], name


def test_fingerprinted_static_urls_are_immutable_and_bare_ones_are_not(admin_client):
    html = admin_client.get("/admin/content").get_data(as_text=True)
    url = re.search(r'(/static/import\.js\?v=[0-9a-f]+)"', html).group(1)
    with admin_client.get(url) as r:
        assert r.status_code == 200 and "immutable" in r.headers["Cache-Control"]
    with admin_client.get("/static/import.js") as bare:
        assert bare.headers["Cache-Control"] == "public, max-age=3600"
    with admin_client.get("/static/missing.js?v=1") as missing:
        assert missing.status_code == 404 and "immutable" not in missing.headers.get("Cache-Control", "")
