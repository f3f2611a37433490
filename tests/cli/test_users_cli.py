"""``classroom-edge users`` and ``classes``: the first admin without the web page, for provisioning."""
from __future__ import annotations

import io
import json
import sys

from appliance.cli.main import main
from appliance.config import load_config
from appliance.people.passwords import verify_password
from appliance.store import open_database


def _run(monkeypatch, capsys, tmp_path, *argv, stdin=""):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    monkeypatch.setenv("CLASSROOM_EDGE_CONTENT__INSTALL_DEMO", "false")
    code = main([*argv, "--data-dir", str(tmp_path)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_list_disable_and_passwd(monkeypatch, capsys, tmp_path):
    code, out, _ = _run(monkeypatch, capsys, tmp_path, "users", "add", "--role", "admin", "--username", "Root",
                        "--password-stdin", stdin="a very good password\n")
    assert code == 0 and "created admin account 'root'" in out
    code, out, _ = _run(monkeypatch, capsys, tmp_path, "users", "list")
    listed = json.loads(out)
    assert code == 0 and listed[0]["username"] == "root" and listed[0]["role"] == "admin"
    assert "password_hash" not in listed[0]
    code, _, err = _run(monkeypatch, capsys, tmp_path, "users", "add", "--role", "teacher", "--username", "root",
                        "--password-stdin", stdin="another password\n")
    assert code == 1 and "already taken" in err
    code, _, err = _run(monkeypatch, capsys, tmp_path, "users", "disable", "root")
    assert code == 1 and "last active admin" in err
    code, _, _ = _run(monkeypatch, capsys, tmp_path, "users", "passwd", "root", "--password-stdin", stdin="new password!\n")
    assert code == 0
    db = open_database(load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp_path)}))
    try:
        with db.read() as conn:
            h = conn.execute("SELECT password_hash FROM users WHERE username = 'root'").fetchone()[0]
    finally:
        db.close()
    assert verify_password(h, "new password!")


def test_empty_stdin_and_short_password_fail_cleanly(monkeypatch, capsys, tmp_path):
    code, _, err = _run(monkeypatch, capsys, tmp_path, "users", "add", "--role", "admin", "--username", "x1",
                        "--password-stdin", stdin="")
    assert code == 1 and "stdin" in err
    code, _, err = _run(monkeypatch, capsys, tmp_path, "users", "add", "--role", "admin", "--username", "x1",
                        "--password-stdin", stdin="short\n")
    assert code == 1 and "at least 8" in err
    code, out, _ = _run(monkeypatch, capsys, tmp_path, "classes", "list")
    assert code == 0 and json.loads(out) == []


def test_add_admin_from_a_provisioned_hash(monkeypatch, capsys, tmp_path):
    from appliance.people.passwords import hash_password

    made_elsewhere = hash_password("provisioned secret")
    code, out, _ = _run(monkeypatch, capsys, tmp_path, "users", "add", "--role", "admin", "--username", "ops",
                        "--password-hash-stdin", stdin=made_elsewhere + "\n")
    assert code == 0 and "created admin account 'ops'" in out
    db = open_database(load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(tmp_path)}))
    try:
        with db.read() as conn:
            stored = conn.execute("SELECT password_hash FROM users WHERE username = 'ops'").fetchone()[0]
    finally:
        db.close()
    assert stored == made_elsewhere and verify_password(stored, "provisioned secret")
    for bad in ("plain text\n", "$argon2id$garbage\n", "$2b$12$bcryptlookingthing\n"):
        code, _, err = _run(monkeypatch, capsys, tmp_path, "users", "add", "--role", "admin", "--username", "x",
                            "--password-hash-stdin", stdin=bad)
        assert code == 1 and "argon2id" in err


def test_commands_about_the_box_refuse_a_directory_without_its_database(capsys, tmp_path, monkeypatch):
    # Run outside the box's data directory, they made an empty database in ./var and answered "[]".
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "not-the-box"
    for argv in (["users", "unlock", "tom"], ["users", "disable", "tom"], ["content", "remove", "fractions"],
                 ["content", "export", "fractions", "x.zip"], ["sync", "--status"]):
        assert main([*argv, "--data-dir", str(empty)]) == 1, argv
        assert f"there is no database at {empty}/classroom-edge.db" in capsys.readouterr().err, argv
    # A list is empty, and says why (provisioning lists the accounts of a box not started yet).
    for argv, out in ((["users", "list"], "[]\n"), (["classes", "list"], "[]\n"), (["content", "list"], "no courses installed\n")):
        assert main([*argv, "--data-dir", str(empty)]) == 0, argv
        got = capsys.readouterr()
        assert got.out == out and "Nothing to list." in got.err and f"no database at {empty}/classroom-edge.db" in got.err, argv
    assert not empty.exists() and not (tmp_path / "var").exists()


def test_edit_corrects_a_name_and_changes_a_role(monkeypatch, capsys, tmp_path):
    for role, name in (("admin", "root"), ("teacher", "mara")):
        assert _run(monkeypatch, capsys, tmp_path, "users", "add", "--role", role, "--username", name,
                    "--password-stdin", stdin="a very good password\n")[0] == 0
    code, out, _ = _run(monkeypatch, capsys, tmp_path, "users", "edit", "mara", "--display-name", "Mara Núñez",
                        "--role", "admin")
    assert code == 0 and "role is now 'admin'" in out and "Mara Núñez" in out
    listed = {u["username"]: u for u in json.loads(_run(monkeypatch, capsys, tmp_path, "users", "list")[1])}
    assert listed["mara"]["role"] == "admin" and listed["mara"]["display_name"] == "Mara Núñez"
    code, out, _ = _run(monkeypatch, capsys, tmp_path, "users", "edit", "mara", "--role", "admin")
    assert code == 0 and "nothing to change" in out
    # Two admins: one may become a teacher; the last one may not.
    assert _run(monkeypatch, capsys, tmp_path, "users", "edit", "root", "--role", "teacher")[0] == 0
    code, _, err = _run(monkeypatch, capsys, tmp_path, "users", "edit", "mara", "--role", "teacher")
    assert code == 1 and "last active admin" in err
    code, _, err = _run(monkeypatch, capsys, tmp_path, "users", "edit", "mara")
    assert code == 1 and "--display-name" in err
    code, _, err = _run(monkeypatch, capsys, tmp_path, "users", "edit", "nobody", "--role", "admin")
    assert code == 1 and "no account 'nobody'" in err
