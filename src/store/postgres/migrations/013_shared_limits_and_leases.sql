-- SQLite's migration 013: the failed-login limits every node shares, and leases for the tasks
-- one node runs at a time.
CREATE TABLE account_failures (
    account      BYTEA  PRIMARY KEY,
    failures     BIGINT NOT NULL,
    last         BIGINT NOT NULL,
    locked_until BIGINT
);

CREATE TABLE address_failures (
    address TEXT             PRIMARY KEY,
    level   DOUBLE PRECISION NOT NULL,
    at      BIGINT           NOT NULL
);

CREATE TABLE leases (
    name   TEXT   PRIMARY KEY,
    holder TEXT   NOT NULL,
    until  BIGINT NOT NULL
);
