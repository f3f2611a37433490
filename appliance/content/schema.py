"""Tables of the content area beyond the core schema.

``course_signatures`` keeps the detached signature a course was imported with, so an exported bundle
is still verifiable by the next box (the manifest is stored byte-for-byte in ``courses.manifest``).
"""

CONTENT_0001 = """
CREATE TABLE course_signatures (
    course_id TEXT PRIMARY KEY REFERENCES courses(id) ON DELETE CASCADE,
    key_id TEXT,                   -- trusted key that verified it; NULL when no key was configured
    signature TEXT NOT NULL        -- course.json.sig as imported (base64 text)
);
"""

MIGRATIONS = [
    ("content_0001_signatures", CONTENT_0001),
]
