"""The admin page shows the uplink (state, backlog size and age, last sync, bytes sent), the name the box
announces and the other boxes it sees; the class model page lets a teacher train now."""
from __future__ import annotations

import re

from appliance.discovery.status import to_part_status
from appliance.sync import outbox
from appliance.sync.service import backlog_status, part_status


def test_admin_page_shows_uplink_and_network(services, admin_client):
    services.db.write(lambda c: outbox.enqueue(c, "attempt", {"x": 1}))
    services.db.write(lambda c: outbox.record_delivered(c, 4321, "2026-11-22T07:00:00.000Z", 2 * 1024 * 1024))
    sync = {"state": "online", "reason": "", "broker": "hub.district.example:8883",
            "last_success": "2026-11-22T08:00:00Z", "bytes_sent": 123456, **backlog_status(services.db)}
    services.report_status("sync", lambda: part_status(sync))
    mdns = {"state": "advertising", "detail": "room12-2.local at 10.0.0.5", "label": "room12-2",
            "hostname": "room12-2.local", "renamed": True, "requested_name": "room12",
            "addresses": ["10.0.0.5"], "peers": [{"name": "room12", "room": "Room 12", "addresses": ["10.0.0.9"]}]}
    services.report_status("mdns", lambda: to_part_status(mdns))
    html = admin_client.get("/admin/").get_data(as_text=True)
    assert "hub.district.example:8883" in html
    waiting = sync["backlog"]["events"]
    assert waiting >= 1 and re.search(rf"{waiting} events? \(", html)  # backlog size
    assert "oldest from" in html                                # and age
    assert "2026-11-22T08:00:00Z" in html                      # last successful sync
    assert "Sent since the relay started</th><td>120.6 KB" in html  # 123456 bytes sent, humanised
    assert "Confirmed by the hub, in all</th><td>4321 events (2.0 MB)" in html  # kept across restarts
    assert "room12-2.local" in html and "another box already uses room12" in html
    assert "10.0.0.9" in html and "Room 12" in html             # the other box seen


def test_admin_page_without_uplink_or_mdns_says_so(admin_client):
    html = admin_client.get("/admin/").get_data(as_text=True)
    assert "No uplink is configured" in html
    assert "does not announce itself" in html


def test_teacher_can_train_now(tmp_path, teacher_client, services):
    training = services.get("training")
    if training is None:  # the app fixture does not run bootstrap; attach the part the runtime would
        from appliance.federated.status import attach

        attach(services)
        training = services.get("training")
    page = teacher_client.get("/teach/model").get_data(as_text=True)
    assert "Class model" in page
    # Without an uplink no district model can come: no button that can never work, and why.
    assert "This box has no uplink, so there is nothing to train yet" in page and "Train now" not in page
    token = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    r = teacher_client.post("/teach/model/train", data={"csrf_token": token})
    assert r.status_code == 302
    training.wait(30)
    assert training.last is not None and training.last["requested_by"] == "tom"
    # No global model has come from the hub yet: the teacher is told so instead of nothing happening.
    assert training.last["status"] in ("no_global", "disabled", "not_enough_data")
    page = teacher_client.get("/teach/model").get_data(as_text=True)
    assert training.last["message"] in page
    if training.last["status"] == "no_global":  # in words, not the status code
        assert "<strong>the district’s model has not arrived yet, so there is nothing to train from</strong>" in page


def test_admin_page_in_spanish_words_the_privacy_budget_and_numbers_in_spanish(services, admin_client):
    """The federated privacy sentence and the model figures follow the page's language; the parts'
    technical details stay in English and say so (lang="en" for screen readers)."""
    from appliance.services import PartStatus

    fl = {"serving_version": "3", "candidates": [],
          "privacy": {"updates": 2, "rho": 0.5, "delta": 1e-05, "epsilon": 4.3217, "noise": True, "text": "x"}}
    services.report_status("federated", lambda: PartStatus("federated", "ok", "serving 3", extra={"federated": fl}))
    models = [{"name": "minilm", "ready": True, "version": "1", "backend": "onnxruntime", "active_providers": ["CPU"],
               "requests": 40, "p50_ms": 4.3, "p99_ms": 1672.7, "mean_batch_rows": 7.356, "max_batch_rows": 16,
               "max_batch_size": 16, "background_runs": 3, "workers": 2},
              {"name": "learner", "ready": True, "version": "3", "backend": "onnxruntime",
               "active_providers": ["CPUExecutionProvider"], "kept_on_cpu": True, "p50_ms": None, "p99_ms": None}]
    services.report_status("inference", lambda: PartStatus("inference", "ok", "minilm v1 on CPU", extra={"models": models}))
    es = admin_client.get("/admin/", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert "épsilon 4,32 con delta 1e-05, en 2 actualizaciones" in es
    assert "1.672,7 ms" in es and "4,3 ms" in es and "7,4 / 16 / 16" in es
    assert "sin contar 3 ejecuciones en segundo plano" in es
    assert 'lang="en">minilm v1 on CPU<' in es and "Los detalles están en inglés" in es
    en = admin_client.get("/admin/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Privacy budget spent: epsilon 4.32 at delta 1e-05, over 2 updates." in en and "1,672.7 ms" in en
    assert "The details are in English" not in en
    assert "Kept on the CPU by the setting inference.cpu_models" in en
    assert "Se queda en la CPU por el ajuste inference.cpu_models" in es
