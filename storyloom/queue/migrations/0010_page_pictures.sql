-- storyloom job store, schema version 10: the picture a story page was given by hand (✅ Use in the book under a
-- fixed page). The book shows it until a newer drawing of the page (🔁 Redraw) or a newer choice comes.

CREATE TABLE page_pictures (
    story_id   INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    page       INTEGER NOT NULL,
    job_id     INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    chosen_at  REAL    NOT NULL,
    PRIMARY KEY (story_id, page)
);

CREATE INDEX page_pictures_job ON page_pictures (job_id);
