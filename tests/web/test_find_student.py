""""Find a student" on the Classes page: by part of the name, accents and case ignored; a teacher finds
the children of their own classes (and those taken out of them), an admin every child on the box."""
from __future__ import annotations

from html import unescape

from lms_fixtures import csrf_of, make_class, sign_in_student


def _found(client, text):
    html = unescape(client.get("/teach/", query_string={"student": text}).get_data(as_text=True))
    if 'id="found"' not in html:
        return None
    return html[html.index('id="found"'):html.index("</section>", html.index('id="found"'))]


def test_a_teacher_finds_a_child_by_part_of_the_name_without_accents(app, services, admin, klass, teacher_client):
    theirs, kids = make_class(services.db, admin["id"], ["Sofía Núñez", "Anabel"], name="Class 6C")
    ana = klass["students"]["Ana"]
    assert sign_in_student(app.test_client(), klass["id"], ana["id"], ana["pin"]).status_code == 302
    found = _found(teacher_client, "  ANA ")
    # Ana is in the teacher's class, with a link to her page and her last sign-in; Anabel is in
    # another teacher's class, so she is not found.
    assert f'href="/teach/classes/{klass["id"]}/students/{ana["id"]}"' in found and "last signed in 20" in found
    assert "Anabel" not in found
    assert "No student in your classes has a name with “sofia” in it." in _found(teacher_client, "sofia")
    services.db.write(lambda c: c.execute("UPDATE users SET display_name = 'Íñigo Peña' WHERE id = ?",
                                          (klass["students"]["Ben"]["id"],)))
    assert "Íñigo Peña" in _found(teacher_client, "inigo PENA")  # accents and case do not matter
    services.db.write(lambda c: c.execute("UPDATE users SET display_name = 'Seán O''Brien' WHERE id = ?",
                                          (klass["students"]["Ben"]["id"],)))
    for typed in ("o’brien", "obrien", "sean o'brien"):  # as a tablet types it, or without the apostrophe
        assert "Seán O'Brien" in _found(teacher_client, typed), typed
    # The page's title says what was found, and the results are where the focus goes (app.js, #found).
    html = unescape(teacher_client.get("/teach/", query_string={"student": "obrien"}).get_data(as_text=True))
    assert "<title>Students called “\u2068obrien\u2069”: 1 found · Classes" in html
    assert 'action="/teach/#found"' in html and 'id="found" tabindex="-1"' in html
    assert _found(teacher_client, "   ") is None  # nothing typed: no result box


def test_an_admin_finds_every_child_and_where_one_taken_out_can_be_put_back(services, admin, klass, teacher_client,
                                                                          admin_client):
    theirs, kids = make_class(services.db, admin["id"], ["Sofía Núñez"], name="Class 6C")
    found = _found(admin_client, "sofia nun")
    assert "Sofía Núñez" in found and f'href="/teach/classes/{theirs}/students/{kids["Sofía Núñez"]["id"]}"' in found
    assert "never signed in" in found
    # Ben taken out of his only class: his teacher finds him, with the way back.
    ben = klass["students"]["Ben"]
    page = f"/teach/classes/{klass['id']}"
    teacher_client.post(f"{page}/students/{ben['id']}/remove",
                        data={"csrf_token": csrf_of(teacher_client.get(page).get_data(as_text=True))})
    found = _found(teacher_client, "ben")
    assert "Not in a class" in found and f'href="{page}#departed-h"' in found and "taken out of Class 4B on 20" in found
    # Moved to another teacher's class: named there, not linked (that page is not the teacher's).
    admin_client.post(f"{page}/students/{ben['id']}/back",
                      data={"csrf_token": csrf_of(admin_client.get(page).get_data(as_text=True))})
    admin_client.post(f"{page}/students/{ben['id']}/move", data={
        "to_class": str(theirs), "csrf_token": csrf_of(admin_client.get(page).get_data(as_text=True))})
    found = _found(teacher_client, "ben")
    assert "<bdi>Class 6C</bdi> <span class=\"muted\">(another teacher's class)</span>" in found
    assert f"/teach/classes/{theirs}/" not in found
    assert "signed in" not in found  # where the child is now, not when they last signed in
