-- Rotation (`tokenApiRotate`): a token gets a new secret and keeps the previous one working for
-- a grace period. `generation` counts the rotations; `previous_digest` is the secret before the
-- last rotation, valid until `grace_until`. A session records the generation of the secret it
-- was opened with, so that the sessions of a rotated-away secret end with its grace.
ALTER TABLE api_tokens ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_tokens ADD COLUMN previous_digest BLOB;
ALTER TABLE api_tokens ADD COLUMN grace_until INTEGER;
CREATE UNIQUE INDEX api_tokens_by_previous_digest ON api_tokens (previous_digest)
    WHERE previous_digest IS NOT NULL;
ALTER TABLE sessions ADD COLUMN token_generation INTEGER;
