-- Times are microseconds since the Unix epoch, UTC.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    user_id       TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'user')),
    enabled       INTEGER NOT NULL DEFAULT 1,
    password_hash TEXT,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    digest       BLOB    NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    UNIQUE (user_id, name)
) STRICT;

CREATE TABLE sessions (
    id           INTEGER PRIMARY KEY,
    digest       BLOB    NOT NULL UNIQUE,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT    NOT NULL,
    token_id     INTEGER REFERENCES api_tokens (id) ON DELETE SET NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_token ON sessions (token_id);
