-- storyloom job store, schema version 3: the characters registry (DreamBooth LoRAs usable by name).

CREATE TABLE characters (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL,                    -- as the trainer wrote it; what stories call the character
    name_key    TEXT    NOT NULL,                    -- case-folded name: one "Mittens" per guild, however it is typed
    identifier  TEXT    NOT NULL,                    -- the rare token the image model learned, e.g. 'bhna'
    class_name  TEXT    NOT NULL,                    -- what it is, e.g. 'cat'
    description TEXT    NOT NULL DEFAULT '',         -- optional look for the story planner
    lora_path   TEXT    NOT NULL,                    -- the LoRA safetensors file, relative to the data directory when inside it
    preview     BLOB,                                -- small JPEG of the sample images
    trained_by  INTEGER NOT NULL,                    -- Discord user ID; 0 = the local command line
    guild_id    INTEGER,                             -- NULL: registered from the command line, usable in every guild
    job_id      INTEGER REFERENCES jobs(id) ON DELETE SET NULL,  -- the training job, when it came from one
    metadata    TEXT    NOT NULL DEFAULT '{}',       -- JSON: training settings and losses
    created_at  REAL    NOT NULL
);

-- One character of a name per guild (NULL guild = the command line's own scope).
CREATE UNIQUE INDEX characters_by_name ON characters (COALESCE(guild_id, 0), name_key);
