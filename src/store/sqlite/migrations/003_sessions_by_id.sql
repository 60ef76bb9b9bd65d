-- Sessions are found by an increasing id that the cookie names (`id.secret`) and proven by the
-- digest of the cookie's secret. New rows append to the table's b-tree; the unique index on a
-- random digest, where every insert landed on a random page, is gone. Sessions from before this
-- migration end: their cookies carry no id.
DROP TABLE sessions;

CREATE TABLE sessions (
    id            INTEGER PRIMARY KEY,
    secret_digest BLOB    NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider      TEXT    NOT NULL,
    token_id      INTEGER REFERENCES api_tokens (id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_token ON sessions (token_id);

-- Each user's number of sessions, kept by the triggers below (foreign-key cascades fire them
-- too), so that a login finds out whether the user is over `session.max_per_user` without
-- counting: counting walked up to that many index entries on every login.
CREATE TABLE session_counts (
    user_id INTEGER PRIMARY KEY,
    n       INTEGER NOT NULL
) STRICT;

CREATE TRIGGER sessions_counted AFTER INSERT ON sessions
BEGIN
    INSERT INTO session_counts (user_id, n) VALUES (NEW.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER sessions_uncounted AFTER DELETE ON sessions
BEGIN
    UPDATE session_counts SET n = n - 1 WHERE user_id = OLD.user_id;
END;

CREATE TRIGGER session_counts_of_deleted_users AFTER DELETE ON users
BEGIN
    DELETE FROM session_counts WHERE user_id = OLD.id;
END;

-- A counter that every change able to make a remembered session, token, token list or user
-- wrong moves on, in the same transaction as the change, whichever process makes it (the server,
-- the command line). A server keeps what it looked up only while the counter stays where it was.
CREATE TABLE generation (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
) STRICT;

INSERT INTO generation (id, n) VALUES (1, 0);

CREATE TRIGGER users_changed AFTER UPDATE ON users
BEGIN
    UPDATE generation SET n = n + 1;
END;

CREATE TRIGGER users_deleted AFTER DELETE ON users
BEGIN
    UPDATE generation SET n = n + 1;
END;

-- Inserts and last uses too: a server also remembers each user's list of tokens. Last uses are
-- written once a minute in one write, so that costs one forgetting a minute.
CREATE TRIGGER tokens_created AFTER INSERT ON api_tokens
BEGIN
    UPDATE generation SET n = n + 1;
END;

CREATE TRIGGER tokens_changed AFTER UPDATE ON api_tokens
BEGIN
    UPDATE generation SET n = n + 1;
END;

CREATE TRIGGER tokens_deleted AFTER DELETE ON api_tokens
BEGIN
    UPDATE generation SET n = n + 1;
END;

CREATE TRIGGER sessions_changed AFTER UPDATE ON sessions
BEGIN
    UPDATE generation SET n = n + 1;
END;

CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
BEGIN
    UPDATE generation SET n = n + 1;
END;
