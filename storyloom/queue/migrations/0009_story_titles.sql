-- storyloom job store, schema version 9: a story's title as its readers edited it (✏️ Edit title); the book and
-- the next chapter use it. The story job's own plan keeps the title it was written with.

CREATE TABLE story_titles (
    story_id   INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE,
    title      TEXT    NOT NULL,
    edited_at  REAL    NOT NULL
);
