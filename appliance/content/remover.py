"""Take a course off the box (the admin page's "Remove", ``classroom-edge content remove``).

The course's lessons, questions, skills and asset references go (the foreign keys cascade from
``courses``), with what was derived from them: class assignments, search vectors and grading
calibrations. What students did stays (answers, mastery, lesson progress, learner state): a course
removed by mistake comes back with its students' progress when the same bundle is imported again.
Its files stay in the blob store, unpinned, until room is needed (``BlobStore.evict_to_fit``).
"""
from __future__ import annotations

from flask_babel import lazy_gettext as _

from appliance.content.blobs import BlobStore
from appliance.errors import NotFound

# Tables that hold what the box derived from a course, keyed by its id (no foreign key to cascade).
DERIVED = ("assignments", "search_vectors", "semantic_calibration")


def remove_course(db, course_id: str) -> dict:
    """Remove ``course_id``; returns its id, title and version. NotFound when it is not installed."""
    def write(conn) -> dict:
        row = conn.execute("SELECT id, title, version FROM courses WHERE id = ?", (course_id,)).fetchone()
        if row is None:
            raise NotFound(_("There is no course “%(id)s” on this box.", id=course_id))
        for table in DERIVED:
            conn.execute(f"DELETE FROM {table} WHERE course_id = ?", (course_id,))  # noqa: S608 - fixed names
        conn.execute("DELETE FROM courses WHERE id = ?", (course_id,))
        BlobStore.repin(conn)
        return dict(row)

    return db.write(write)
