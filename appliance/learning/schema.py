"""Tables of the learning features (issue 3), beyond the core ``mastery`` table.

- ``learner_state``: each student's running ``LearnerState`` per course (the learner model's input),
  so an answer costs one row read and one row write instead of a replay of the whole history.
  ``version`` counts the answers folded in: a prediction made outside the writer thread is stored
  only if the row still has the version it was made from (optimistic concurrency).
- ``review_cards``: one FSRS card per mastered skill of a student; ``due`` is when to review it.
- ``semantic_calibration``: the per-exercise free-text threshold, calibrated on the model that grades
  (``model`` = name/version/sha); ``refs_sha256`` notices a course upgrade that changed the references.
- ``search_vectors``: embeddings of lesson titles and exercise prompts, made once per course version
  (``bundle_sha256``) and model, so a search embeds only the query.
"""

LEARNING_0001 = """
CREATE TABLE learner_state (
    student_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id TEXT NOT NULL,
    state TEXT NOT NULL,                 -- JSON of appliance.learning.features.LearnerState
    version INTEGER NOT NULL,            -- answers folded in so far
    updated_at TEXT NOT NULL,
    PRIMARY KEY (student_id, course_id)
);

CREATE TABLE review_cards (
    student_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    course_id TEXT NOT NULL,
    skill_id TEXT NOT NULL,
    card TEXT NOT NULL,                  -- JSON of fsrs.Card.to_dict()
    due TEXT NOT NULL,                   -- ISO-8601 UTC, copied out of the card for the index
    reviews INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (student_id, course_id, skill_id)
);
CREATE INDEX review_cards_due ON review_cards(student_id, course_id, due);

CREATE TABLE semantic_calibration (
    course_id TEXT NOT NULL,
    exercise_id TEXT NOT NULL,
    model TEXT NOT NULL,                 -- name/version/sha256 prefix of the embedding model
    refs_sha256 TEXT NOT NULL,
    threshold REAL NOT NULL,
    spread REAL NOT NULL,                -- similarity distance at which a grade is fully confident
    detail TEXT NOT NULL,                -- JSON: how the threshold was found (scores, counts)
    calibrated_at TEXT NOT NULL,
    PRIMARY KEY (course_id, exercise_id, model)
);

CREATE TABLE search_vectors (
    course_id TEXT NOT NULL,
    model TEXT NOT NULL,
    bundle_sha256 TEXT NOT NULL,         -- the course version the vectors were made from
    kind TEXT NOT NULL CHECK (kind IN ('lesson', 'exercise')),
    item_id TEXT NOT NULL,
    lesson_id TEXT NOT NULL,
    title TEXT NOT NULL,
    vector BLOB NOT NULL,                -- float32 little-endian, unit length
    PRIMARY KEY (course_id, model, kind, item_id)
);
"""

MIGRATIONS = [
    ("learning_0001_state_reviews_calibration_search", LEARNING_0001),
]
