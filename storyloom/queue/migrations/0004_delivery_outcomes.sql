-- storyloom job store, schema version 4: how each delivery ended, and when a failed try is made again.
-- A delivery is over once ended_at is set: posted (delivered_at and message_ids too), refused by Discord for
-- good (a 4xx such as an archived thread or a missing permission), or given up after too many temporary
-- failures. Until then, next_try_at holds it back after a temporary failure (exponential, capped).

ALTER TABLE deliveries ADD COLUMN outcome TEXT CHECK (outcome IN ('posted', 'refused', 'gave_up'));
ALTER TABLE deliveries ADD COLUMN reason TEXT;                       -- why it ended or last failed, for people
ALTER TABLE deliveries ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN next_try_at REAL;
ALTER TABLE deliveries ADD COLUMN ended_at REAL;

UPDATE deliveries SET outcome = 'posted', ended_at = delivered_at WHERE delivered_at IS NOT NULL;

CREATE INDEX deliveries_by_end ON deliveries (ended_at, next_try_at);
