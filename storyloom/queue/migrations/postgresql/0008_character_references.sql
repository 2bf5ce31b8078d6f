-- storyloom job store on PostgreSQL, schema version 8: a character may have a reference picture.

ALTER TABLE characters ADD COLUMN reference_digest TEXT;
ALTER TABLE characters ADD COLUMN reference_weight DOUBLE PRECISION;
