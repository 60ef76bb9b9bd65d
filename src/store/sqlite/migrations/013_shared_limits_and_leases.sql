-- What several processes serving one database share besides users, tokens and sessions (used
-- where several Lodge nodes serve one PostgreSQL database; on SQLite one server serves, and the
-- tables stay empty). The failed-login limits: each account's failures in a row and its lock,
-- by the 128-bit digest of its normalised name, and each client address's leaky bucket of
-- failures (`auth::limits`). And leases: which node runs a task that must run once (the
-- housekeeping, the webhook sender) and until when, unless it renews.
CREATE TABLE account_failures (
    account      BLOB    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    last         INTEGER NOT NULL,
    locked_until INTEGER
) STRICT;

CREATE TABLE address_failures (
    address TEXT PRIMARY KEY,
    level   REAL    NOT NULL,
    at      INTEGER NOT NULL
) STRICT;

CREATE TABLE leases (
    name   TEXT    PRIMARY KEY,
    holder TEXT    NOT NULL,
    until  INTEGER NOT NULL
) STRICT;
