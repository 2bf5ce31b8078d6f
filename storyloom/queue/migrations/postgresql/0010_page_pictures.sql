-- storyloom job store on PostgreSQL, schema version 10: the picture a story page was given by hand (✅ Use in the
-- book under a fixed page).

CREATE TABLE page_pictures (
    story_id   BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    page       BIGINT NOT NULL,
    job_id     BIGINT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    chosen_at  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (story_id, page)
);

CREATE INDEX page_pictures_job ON page_pictures (job_id);
