-- storyloom job store, schema version 8: a character may have a reference picture (drawn through IP-Adapter, no
-- training). A reference-only character has an empty lora_path and identifier and no lora_digest.

ALTER TABLE characters ADD COLUMN reference_digest TEXT;  -- the reference picture in blobs; NULL: none
ALTER TABLE characters ADD COLUMN reference_weight REAL;  -- how strongly it guides a picture; NULL: the configured default
