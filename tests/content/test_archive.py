"""Malicious and broken bundles, crafted here byte by byte: each is refused with a clear message and
leaves nothing behind."""
import os
import stat
import struct
import zipfile

import pytest
from content_bundles import course, manifest_bytes, pack, raw_zip, rows

from appliance.content.archive import Limits, ZipSource, check_member_name
from appliance.errors import ImportRejected, IntegrityError


def _valid_members():
    doc, files = course()
    import hashlib

    members = [("course.json", manifest_bytes(doc, files))]
    members += [(f"assets/{hashlib.sha256(d).hexdigest()}", d) for d, _ in files.values()]
    return members


def _assert_nothing_installed(content):
    assert rows(content, "SELECT count(*) FROM courses") == [(0,)]
    assert rows(content, "SELECT count(*) FROM blobs") == [(0,)]


@pytest.mark.parametrize("name", [
    "../evil.txt", "assets/../../evil", "/etc/passwd", "assets\\..\\evil", "C:/windows/x", "assets//x", "./course.json",
])
def test_path_tricks_in_a_zip_are_refused(importer, content, tmp_path, name):
    path = raw_zip(tmp_path / "b.zip", _valid_members() + [(name, b"pwned")])
    with pytest.raises(ImportRejected, match=r"absolute|traversal|backslash|empty part"):
        importer.run(path)
    _assert_nothing_installed(content)
    assert not (tmp_path.parent / "evil.txt").exists()


def test_member_name_rules():
    for ok in ("course.json", "assets/" + "a" * 64, "assets/"):
        check_member_name(ok)
    with pytest.raises(ImportRejected, match="control characters"):
        check_member_name("course.json\x00.txt")


def test_symlink_member_in_a_zip_is_refused(importer, content, tmp_path):
    link = zipfile.ZipInfo("assets/" + "0" * 64)
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    path = raw_zip(tmp_path / "b.zip", _valid_members() + [(link, b"/etc/shadow")])
    with pytest.raises(ImportRejected, match="symbolic link"):
        importer.run(path)
    _assert_nothing_installed(content)


def test_symlink_in_a_directory_bundle_is_refused(importer, content, tmp_path):
    doc, files = course()
    path = pack(tmp_path / "b", doc, files)
    os.symlink("/etc/passwd", path / "assets" / "linked")
    with pytest.raises(ImportRejected, match="symbolic link"):
        importer.run(path)
    # A symlinked asset (the file the manifest names) is refused as well, not followed.
    os.unlink(path / "assets" / "linked")
    victim = next((path / "assets").iterdir())
    target = tmp_path / "real"
    victim.rename(target)
    os.symlink(target, victim)
    with pytest.raises(ImportRejected, match="symbolic link"):
        importer.run(path)
    _assert_nothing_installed(content)


def test_fifo_in_a_directory_bundle_is_refused_without_hanging(importer, content, tmp_path):
    doc, files = course()
    path = pack(tmp_path / "b", doc, files)
    os.mkfifo(path / "assets" / "pipe")
    with pytest.raises(ImportRejected, match="not a regular file"):
        importer.run(path)


def test_zip_bomb_by_ratio_is_refused(importer, content, tmp_path):
    # 8 MiB of zeros deflates about 1000:1; the limit is 200:1.
    path = raw_zip(tmp_path / "bomb.zip", _valid_members() + [("assets/" + "f" * 64, bytes(8 << 20))])
    assert os.path.getsize(path) < 100_000
    with pytest.raises(ImportRejected, match="zip bomb"):
        importer.run(path)
    _assert_nothing_installed(content)


def test_absolute_size_limit(content, tmp_path):
    from appliance.content.importer import Importer

    small = Importer(content.db, content.get("blobs"), content.cfg.replace(content={"max_bundle_mb": 1}))
    data = os.urandom(600_000)  # incompressible: ratio 1, but two of them exceed 1 MB
    path = raw_zip(tmp_path / "big.zip", _valid_members() + [("assets/" + "a" * 64, data), ("assets/" + "b" * 64, data)])
    with pytest.raises(ImportRejected, match="more than the limit of 1 MB"):
        small.run(path)
    folder = tmp_path / "bigdir"
    (folder / "assets").mkdir(parents=True)
    (folder / "course.json").write_bytes(_valid_members()[0][1])
    for n in "ab":
        (folder / "assets" / (n * 64)).write_bytes(data)
    with pytest.raises(ImportRejected, match="more than the limit"):
        small.run(folder)


def test_file_count_limit(content, tmp_path):
    from appliance.content.importer import Importer

    few = Importer(content.db, content.get("blobs"), content.cfg.replace(content={"max_files": 5}))
    path = raw_zip(tmp_path / "many.zip", _valid_members() + [(f"junk/{i}", b"x") for i in range(10)])
    with pytest.raises(ImportRejected, match="limit is 5"):
        few.run(path)


def test_duplicate_members_are_refused(importer, tmp_path):
    members = _valid_members()
    with pytest.warns(UserWarning, match="Duplicate name"):
        path = raw_zip(tmp_path / "dup.zip", members + [members[1]])
    with pytest.raises(ImportRejected, match="appears twice"):
        importer.run(path)


def test_header_that_lies_about_the_size_is_caught(importer, content, tmp_path):
    members = _valid_members()
    path = raw_zip(tmp_path / "liar.zip", members)
    data = bytearray(path.read_bytes())
    # Shrink the uncompressed size recorded for the wav asset in both headers: a reader that trusts
    # the header would stop early or over-allocate; ours must refuse the member.
    wav_name, wav = members[2][0].encode(), members[2][1]
    for sig, size_off, name_off in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        pos = 0
        while (pos := data.find(sig, pos)) != -1:
            name_len = struct.unpack_from("<H", data, pos + (26 if sig == b"PK\x03\x04" else 28))[0]
            if bytes(data[pos + name_off:pos + name_off + name_len]) == wav_name:
                struct.pack_into("<I", data, pos + size_off, len(wav) - 100)
            pos += 4
    path.write_bytes(bytes(data))
    with pytest.raises((ImportRejected, IntegrityError), match="clip.wav|damaged"):
        importer.run(path)
    _assert_nothing_installed(content)
    # The reader itself never hands out bytes beyond what the header promised.
    with (ZipSource(path, Limits.from_config(content.cfg)) as src,
          pytest.raises(ImportRejected, match="damaged|larger than its header")):
        b"".join(src.iter_bytes(wav_name.decode()))


def test_not_a_zip_and_missing_path(importer, tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip file")
    with pytest.raises(ImportRejected, match="not a readable zip"):
        importer.run(junk)
    with pytest.raises(ImportRejected, match="neither a course bundle"):
        importer.run(tmp_path / "nope.zip")


def test_encrypted_member_is_refused(importer, tmp_path):
    path = raw_zip(tmp_path / "enc.zip", _valid_members())
    data = bytearray(path.read_bytes())
    pos = 0
    while (pos := data.find(b"PK\x01\x02", pos)) != -1:  # set the "encrypted" flag in the central directory
        data[pos + 8] |= 0x1
        pos += 4
    path.write_bytes(bytes(data))
    with pytest.raises(ImportRejected, match="encrypted"):
        importer.run(path)


def test_unreadable_folder_in_a_directory_bundle_is_a_clear_refusal(importer, tmp_path, monkeypatch):
    doc, files = course()
    path = pack(tmp_path / "b", doc, files)
    (path / ".Trashes").mkdir()
    real_scandir = os.scandir

    def scandir(fd):
        # We run as root, so chmod cannot make a folder unreadable; the empty .Trashes folder is the
        # one listing that fails, as it does on a stick written by another system.
        entries = list(real_scandir(fd))
        if not entries:
            raise PermissionError(13, "Permission denied", ".Trashes")
        return iter(entries)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ImportRejected, match=r"cannot read \.Trashes.*Permission denied"):
        importer.run(path)
