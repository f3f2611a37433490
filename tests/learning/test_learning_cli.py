"""``classroom-edge learning prepare | status | next`` against a real data directory and the built models."""
from __future__ import annotations

import json

import pytest
from learning_models import built_models

from appliance.cli.main import main
from appliance.config import load_config
from appliance.content import install_demo_if_empty
from appliance.people import classes
from appliance.people.accounts import add_staff
from appliance.services import Services


@pytest.fixture
def data_dir(tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("CLASSROOM_EDGE_INFERENCE__REPOSITORY", str(built_models(tmp_path_factory)))
    monkeypatch.setenv("CLASSROOM_EDGE_INFERENCE__WARMUP_RUNS", "1")
    d = tmp_path / "data"
    services = Services.open(load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(d),
                                              "CLASSROOM_EDGE_CONTENT__INSTALL_DEMO": "true"}))
    install_demo_if_empty(services)
    services.close()
    return d


def test_prepare_calibrates_and_indexes_ahead_of_the_first_student(data_dir, capsys):
    assert main(["learning", "prepare", "--data-dir", str(data_dir), "--course", "fractions"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"fractions"} and len(out["fractions"]["free_text_calibrated"]) == 5
    services = Services.open(load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(data_dir)}))
    try:
        with services.db.read() as conn:
            cal = conn.execute("SELECT COUNT(*) FROM semantic_calibration WHERE course_id = 'fractions'").fetchone()[0]
            vec = conn.execute("SELECT COUNT(*) FROM search_vectors WHERE course_id = 'fractions'").fetchone()[0]
            other = conn.execute("SELECT COUNT(*) FROM search_vectors WHERE course_id = 'fractions-es'").fetchone()[0]
    finally:
        services.close()
    assert cal == 5 and vec == out["fractions"]["search_items"] > 0 and other == 0


def test_status_and_next(data_dir, capsys):
    assert main(["learning", "status", "--data-dir", str(data_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "ok"
    services = Services.open(load_config(env={"CLASSROOM_EDGE_STORAGE__DATA_DIR": str(data_dir)}))
    try:
        tid = add_staff(services.db, role="teacher", username="tom", password="correct horse", display_name="Tom")
        cid = services.db.write(lambda c: classes.create_class(c, name="4B", teacher_id=tid, uses_pin=True))
        kid = classes.enrol_new_students(services.db, cid, ["Ana"])[0][0]
        with services.db.read() as conn:
            uid = conn.execute("SELECT uid FROM users WHERE id = ?", (kid["id"],)).fetchone()[0]
    finally:
        services.close()
    assert main(["learning", "next", uid, "fractions", "--data-dir", str(data_dir)]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert (rec["kind"], rec["lesson_id"], rec["reason"]) == ("lesson", "what-is-a-fraction", "no_prerequisites")
    assert main(["learning", "next", "nobody", "fractions", "--data-dir", str(data_dir)]) == 1
