-- storyloom job store, schema version 2: each user's saved defaults (the bot's /settings).

CREATE TABLE user_settings (
    user_id    INTEGER PRIMARY KEY,
    settings   TEXT    NOT NULL DEFAULT '{}',            -- JSON object of text values, e.g. {"aspect_ratio": "2:3"}
    updated_at REAL    NOT NULL
);
