-- Who did what, when: never a secret, digest or password.
CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    time       INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    success    INTEGER NOT NULL,
    user_id    TEXT,
    provider   TEXT,
    token_name TEXT,
    address    TEXT,
    detail     TEXT
) STRICT;

CREATE INDEX audit_events_by_time ON audit_events (time);
