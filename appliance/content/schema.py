"""Tables of the content area beyond the core schema.

``course_signatures`` keeps the detached signature a course was imported with, so an exported bundle
is still verifiable by the next box (the manifest is stored byte-for-byte in ``courses.manifest``).
``import_jobs`` holds the progress of background imports for the admin page.
"""

CONTENT_0001 = """
CREATE TABLE course_signatures (
    course_id TEXT PRIMARY KEY REFERENCES courses(id) ON DELETE CASCADE,
    key_id TEXT,                   -- trusted key that verified it; NULL when no key was configured
    signature TEXT NOT NULL        -- course.json.sig as imported (base64 text)
);
"""


# Import jobs run in one web worker but are polled through any of them (gunicorn runs several), so
# their status lives in the database, not only in the worker's memory.
CONTENT_0002 = """
CREATE TABLE import_jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,            -- boot id, pid and start time of the process running it: a job
                                    -- whose process is gone is reported as failed, not "running" forever
    created_at REAL NOT NULL,
    status TEXT NOT NULL            -- JSON, the dict ImportJobs.get() returns
);
"""

MIGRATIONS = [
    ("content_0001_signatures", CONTENT_0001),
    ("content_0002_import_jobs", CONTENT_0002),
]
