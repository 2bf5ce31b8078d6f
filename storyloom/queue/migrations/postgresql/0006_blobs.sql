-- storyloom job store on PostgreSQL, schema version 6: files every host may need, stored once by their SHA-256.

CREATE TABLE blobs (
    digest     TEXT    PRIMARY KEY,
    size       BIGINT  NOT NULL,
    data       BYTEA   NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
-- The data is already compressed (safetensors, zip): PostgreSQL should not spend time compressing it again.
ALTER TABLE blobs ALTER COLUMN data SET STORAGE EXTERNAL;

ALTER TABLE characters ADD COLUMN lora_digest TEXT;
