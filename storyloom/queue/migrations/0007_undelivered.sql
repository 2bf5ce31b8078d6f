-- storyloom job store, schema version 7: the finished jobs whose delivery is not over yet, kept by triggers, so
-- listing them reads this short table instead of every finished job in the history.

CREATE TABLE undelivered (
    job_id INTEGER PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE
);

INSERT INTO undelivered (job_id)
SELECT j.id FROM jobs j LEFT JOIN deliveries d ON d.job_id = j.id
WHERE j.status IN ('succeeded', 'failed', 'canceled') AND j.channel_id IS NOT NULL AND d.ended_at IS NULL;

CREATE TRIGGER jobs_finished_await_delivery AFTER UPDATE OF status, channel_id ON jobs
WHEN NEW.status IN ('succeeded', 'failed', 'canceled') AND NEW.channel_id IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO undelivered (job_id)
    SELECT NEW.id WHERE NOT EXISTS (SELECT 1 FROM deliveries WHERE job_id = NEW.id AND ended_at IS NOT NULL);
END;

CREATE TRIGGER deliveries_ended_on_insert AFTER INSERT ON deliveries WHEN NEW.ended_at IS NOT NULL
BEGIN
    DELETE FROM undelivered WHERE job_id = NEW.job_id;
END;

CREATE TRIGGER deliveries_ended AFTER UPDATE OF ended_at ON deliveries WHEN NEW.ended_at IS NOT NULL
BEGIN
    DELETE FROM undelivered WHERE job_id = NEW.job_id;
END;
