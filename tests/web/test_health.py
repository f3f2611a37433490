"""/api/v1/health: every client learns whether the box works; only the box itself and staff learn
the details (paths, the hub's address, backlog sizes)."""
from __future__ import annotations

import re

import pytest
from lms_fixtures import csrf_of

from appliance.services import PartStatus

CLASSROOM_LAPTOP = {"REMOTE_ADDR": "192.168.4.23"}


@pytest.fixture(autouse=True)
def sync_part(services):
    services.report_status("sync", lambda: PartStatus(
        "sync", "degraded", "hub mqtts://hub.district.example:8883 unreachable", {"backlog": {"events": 12}}))


def _parts(response) -> dict:
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] in ("ok", "degraded") and body["version"]
    return {p["name"]: p for p in body["parts"]}


def test_a_classroom_laptop_sees_each_part_s_state_only(app):
    loopback = _parts(app.test_client().get("/api/v1/health"))
    remote = _parts(app.test_client().get("/api/v1/health", environ_base=CLASSROOM_LAPTOP))
    assert remote.keys() == loopback.keys() and "sync" in remote
    for name, part in remote.items():
        assert part == {"name": name, "state": loopback[name]["state"]}
    # The box itself (provisioning, the advertiser, the watchdog) still reads every detail.
    assert loopback["sync"]["backlog"] == {"events": 12} and "hub.district" in loopback["sync"]["detail"]


def test_a_signed_in_student_sees_no_details(student_client):
    parts = _parts(student_client.get("/api/v1/health", environ_base=CLASSROOM_LAPTOP))
    assert all(set(p) == {"name", "state"} for p in parts.values())


def test_staff_and_api_tokens_see_details_from_anywhere(app, teacher_client, admin_client):
    parts = _parts(teacher_client.get("/api/v1/health", environ_base=CLASSROOM_LAPTOP))
    assert all("detail" in p for p in parts.values())
    page = admin_client.get("/admin/users").get_data(as_text=True)
    html = admin_client.post("/admin/tokens", data={"csrf_token": csrf_of(page), "name": "monitor"}).get_data(as_text=True)
    token = re.search(r'data-testid="token">([^<]+)<', html).group(1)
    parts = _parts(app.test_client().get("/api/v1/health", environ_base=CLASSROOM_LAPTOP,
                                         headers={"Authorization": f"Bearer {token}"}))
    assert all("detail" in p for p in parts.values())
