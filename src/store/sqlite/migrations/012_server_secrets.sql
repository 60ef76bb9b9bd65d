-- Keys the server makes once and keeps: `device` signs the cookies of browsers that have logged
-- in to an account (auth/devices.rs), so that they survive a restart.
CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;
