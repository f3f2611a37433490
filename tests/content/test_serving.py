"""Serving assets: roles, ETag/304, Range (206/416), gzip for text, cache and safety headers."""
import gzip
import hashlib

import pytest
from content_bundles import SVG, course, pack
from lms_fixtures import make_class, make_staff, sign_in_staff, sign_in_student


@pytest.fixture
def served(importer, content, tmp_path):
    doc, files = course()
    importer.run(pack(tmp_path / "mini.zip", doc, files))
    return files


@pytest.fixture
def student(app, services):
    teacher = make_staff(services.db, "teacher", "tom")
    class_id, kids = make_class(services.db, teacher["id"], ["Ana"])
    c = app.test_client()
    assert sign_in_student(c, class_id, kids["Ana"]["id"], kids["Ana"]["pin"]).status_code == 302
    return c


SVG_URL = "/content/mini/assets/square.svg"
WAV_URL = "/content/mini/assets/clip.wav"


def test_anonymous_gets_401_and_every_role_can_read(app, services, served, student):
    assert app.test_client().get(SVG_URL).status_code == 401
    assert student.get(SVG_URL).status_code == 200
    for role, name in (("teacher", "tina"), ("admin", "alice")):
        make_staff(services.db, role, name)
        c = app.test_client()
        assert sign_in_staff(c, name).status_code == 302
        assert c.get(WAV_URL).status_code == 200


def test_headers_content_type_and_immutable_cache(served, student):
    wav, _ = served["clip.wav"]
    sha = hashlib.sha256(wav).hexdigest()
    r = student.get(f"{WAV_URL}?v={sha[:16]}")
    assert r.status_code == 200 and r.data == wav
    assert r.headers["Content-Type"] == "audio/wav"
    assert r.headers["ETag"] == f'"{sha}"'
    assert r.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in r.headers  # media plays inline; PDF viewers need no sandbox
    assert r.headers["Accept-Ranges"] == "bytes"
    assert "Content-Encoding" not in r.headers  # audio is not compressed
    # Without the version query (or with a stale one) the browser must revalidate.
    assert student.get(WAV_URL).headers["Cache-Control"] == "public, no-cache"
    assert student.get(f"{WAV_URL}?v=0000000000000000").headers["Cache-Control"] == "public, no-cache"


def test_if_none_match_gives_304(served, student):
    etag = student.get(WAV_URL).headers["ETag"]
    r = student.get(WAV_URL, headers={"If-None-Match": etag})
    assert r.status_code == 304 and r.data == b"" and r.headers["ETag"] == etag
    r = student.get(WAV_URL, headers={"If-None-Match": '"something-else", ' + etag})
    assert r.status_code == 304
    assert student.get(WAV_URL, headers={"If-None-Match": '"nope"'}).status_code == 200


def test_range_requests(served, student):
    wav, _ = served["clip.wav"]
    size = len(wav)
    r = student.get(WAV_URL, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.data == wav[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{size}" and r.headers["Content-Length"] == "100"
    r = student.get(WAV_URL, headers={"Range": "bytes=1000-"})
    assert r.status_code == 206 and r.data == wav[1000:]
    r = student.get(WAV_URL, headers={"Range": "bytes=-10"})
    assert r.status_code == 206 and r.data == wav[-10:]
    r = student.get(WAV_URL, headers={"Range": f"bytes=10-{size + 500}"})  # end past the file is clipped
    assert r.status_code == 206 and r.data == wav[10:]
    r = student.get(WAV_URL, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{size}"
    assert student.get(WAV_URL, headers={"Range": "bytes=-0"}).status_code == 416
    # Several ranges or another unit: allowed to answer with the whole file.
    r = student.get(WAV_URL, headers={"Range": "bytes=0-1,5-6"})
    assert r.status_code == 200 and r.data == wav
    # If-Range with a different validator: the file changed, send it all.
    r = student.get(WAV_URL, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert r.status_code == 200 and len(r.data) == size


def test_gzip_for_text_types(served, student):
    r = student.get(SVG_URL, headers={"Accept-Encoding": "gzip, br"})
    assert r.status_code == 200
    assert r.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in r.headers["Vary"]
    assert r.headers["Content-Type"] == "image/svg+xml"
    # An SVG opened on its own is a document: sandboxed, so a <script> in it cannot act as the box.
    assert r.headers["Content-Security-Policy"].endswith("sandbox") and r.headers["X-Content-Type-Options"] == "nosniff"
    assert gzip.decompress(r.data) == SVG
    sha = hashlib.sha256(SVG).hexdigest()
    assert r.headers["ETag"] == f'"{sha}-gz"'  # a different representation, a different validator
    assert student.get(SVG_URL, headers={"Accept-Encoding": "gzip", "If-None-Match": r.headers["ETag"]}).status_code == 304
    plain = student.get(SVG_URL, headers={"Accept-Encoding": "identity"})
    assert plain.data == SVG and "Content-Encoding" not in plain.headers
    ranged = student.get(SVG_URL, headers={"Accept-Encoding": "gzip", "Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.data == SVG[:4]


def test_unknown_asset_course_and_missing_file(served, student, content):
    assert student.get("/content/mini/assets/nope.svg").status_code == 404
    assert student.get("/content/other/assets/square.svg").status_code == 404
    content.get("blobs").path(hashlib.sha256(SVG).hexdigest()).unlink()
    r = student.get(SVG_URL, headers={"Accept": "application/json"})
    assert r.status_code == 404 and "import the course again" in r.get_json()["error"]


def test_lesson_html_links_resolve(served, student, content):
    with content.db.read() as conn:
        body = conn.execute("SELECT body FROM lessons WHERE id = 'l1'").fetchone()[0]
    url = body.split('src="', 1)[1].split('"', 1)[0]
    r = student.get(url)
    assert r.status_code == 200 and r.data == SVG and "immutable" in r.headers["Cache-Control"]
