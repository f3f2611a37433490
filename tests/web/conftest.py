"""Fixtures for the LMS web tests: a seeded course, an admin, a teacher, a PIN class and clients
already signed in as each role."""
from __future__ import annotations

import pytest
from lms_fixtures import (
    make_class,
    make_staff,
    seed_course,
    sign_in_staff,
    sign_in_student,
)


@pytest.fixture
def course(services):
    return seed_course(services.db)


@pytest.fixture
def admin(services):
    return make_staff(services.db, "admin", "alice")


@pytest.fixture
def teacher(services):
    return make_staff(services.db, "teacher", "tom")


@pytest.fixture
def klass(services, teacher):
    class_id, students = make_class(services.db, teacher["id"], ["Ana", "Ben"])
    return {"id": class_id, "students": students}


@pytest.fixture
def admin_client(app, admin):
    c = app.test_client()
    assert sign_in_staff(c, "alice").status_code == 302
    return c


@pytest.fixture
def teacher_client(app, teacher):
    c = app.test_client()
    assert sign_in_staff(c, "tom").status_code == 302
    return c


@pytest.fixture
def student_client(app, klass):
    c = app.test_client()
    ana = klass["students"]["Ana"]
    assert sign_in_student(c, klass["id"], ana["id"], ana["pin"]).status_code == 302
    return c
