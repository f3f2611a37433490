import json

from content_bundles import course, pack

from appliance.cli.main import main


def test_import_list_export_and_errors(tmp_path, capsys):
    data = tmp_path / "data"
    bundle = pack(tmp_path / "mini.zip", *course())
    assert main(["content", "import", str(bundle), "--data-dir", str(data)]) == 0
    assert "installed: mini 1.0.0" in capsys.readouterr().out
    assert main(["content", "list", "--json", "--data-dir", str(data)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["id"] for c in listed["courses"]] == ["mini"] and listed["blobs"]["pinned_bytes"] > 0
    assert main(["content", "export", "mini", str(tmp_path / "out.zip"), "--data-dir", str(data)]) == 0
    assert (tmp_path / "out.zip").read_bytes() == bundle.read_bytes()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"nope")
    assert main(["content", "import", str(bad), "--data-dir", str(data)]) == 1
    assert "not a readable zip" in capsys.readouterr().err


def test_keygen_and_signed_demo(tmp_path, capsys):
    key = tmp_path / "signing.key"
    assert main(["content", "keygen", str(key)]) == 0
    out = capsys.readouterr().out
    public = out.split("content.trusted_keys): ")[1].split()[0]
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    assert main(["content", "keygen", str(key)]) == 1  # never overwrites a key
    assert main(["content", "demo", str(tmp_path / "out"), "--sign-key", str(key)]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["fractions-es.zip", "fractions.zip"]

    from content_bundles import make_cfg as make_config

    from appliance.content import attach
    from appliance.services import Services

    services = Services.open(make_config(tmp_path / "data", content__trusted_keys=public))
    try:
        attach(services)
        result = services.get("content_importer").run(tmp_path / "out" / "fractions.zip")
        assert result.signed_by and result.exercises >= 60
        status = {s.name: s for s in services.statuses()}["content"]
        assert status.state == "ok" and status.extra["courses"] == 1 and "MB" in status.detail
    finally:
        services.close()
