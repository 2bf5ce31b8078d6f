-- storyloom job store on PostgreSQL, schema version 7: the finished jobs whose delivery is not over yet, kept by
-- triggers, so listing them reads this short table instead of every finished job in the history.

CREATE TABLE undelivered (
    job_id BIGINT PRIMARY KEY REFERENCES jobs(id) ON DELETE CASCADE
);

INSERT INTO undelivered (job_id)
SELECT j.id FROM jobs j LEFT JOIN deliveries d ON d.job_id = j.id
WHERE j.status IN ('succeeded', 'failed', 'canceled') AND j.channel_id IS NOT NULL AND d.ended_at IS NULL;

CREATE FUNCTION storyloom_await_delivery() RETURNS trigger LANGUAGE plpgsql AS $await$
BEGIN
    IF NEW.status IN ('succeeded', 'failed', 'canceled') AND NEW.channel_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM deliveries WHERE job_id = NEW.id AND ended_at IS NOT NULL) THEN
        INSERT INTO undelivered (job_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$await$;

CREATE TRIGGER jobs_finished_await_delivery AFTER UPDATE OF status, channel_id ON jobs
    FOR EACH ROW EXECUTE FUNCTION storyloom_await_delivery();

CREATE FUNCTION storyloom_delivery_ended() RETURNS trigger LANGUAGE plpgsql AS $ended$
BEGIN
    IF NEW.ended_at IS NOT NULL THEN
        DELETE FROM undelivered WHERE job_id = NEW.job_id;
    END IF;
    RETURN NULL;
END
$ended$;

CREATE TRIGGER deliveries_ended AFTER INSERT OR UPDATE OF ended_at ON deliveries
    FOR EACH ROW EXECUTE FUNCTION storyloom_delivery_ended();
