-- storyloom job store on PostgreSQL, schema version 2: each user's saved defaults (the bot's /settings).

CREATE TABLE user_settings (
    user_id    BIGINT PRIMARY KEY,
    settings   TEXT   NOT NULL DEFAULT '{}',
    updated_at DOUBLE PRECISION NOT NULL
);
