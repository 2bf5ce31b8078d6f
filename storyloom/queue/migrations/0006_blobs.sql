-- storyloom job store, schema version 6: files every host may need (characters' LoRA weights, training photos),
-- stored once by their SHA-256, so hosts share nothing but the store. Each host keeps a verified local cache.

CREATE TABLE blobs (
    digest     TEXT    PRIMARY KEY,                 -- hex SHA-256 of data
    size       INTEGER NOT NULL,
    data       BLOB    NOT NULL,
    created_at REAL    NOT NULL
);

ALTER TABLE characters ADD COLUMN lora_digest TEXT;  -- the LoRA in blobs; NULL: only the file at lora_path
