-- storyloom job store, schema version 5: files given with a request (pictures), stored with their job.

CREATE TABLE job_inputs (
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    idx        INTEGER NOT NULL,
    name       TEXT    NOT NULL,
    mime       TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (job_id, idx)
);
