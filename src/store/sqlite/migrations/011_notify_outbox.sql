-- Notifications by webhook (`[notify]`). Each event to announce is written to the outbox in the
-- transaction of the change it announces, and removed once the receiver has acknowledged it (or
-- after a day of failures), so a receiver that is down or a killed process loses nothing. `id` is
-- the delivery's unique id, `time` when the event happened, `queued_at` when it was written (by
-- the system's clock: how long it has waited), `seq` the order of events.
CREATE TABLE notify_outbox (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    event TEXT NOT NULL,
    time INTEGER NOT NULL,
    queued_at INTEGER NOT NULL,
    user_id TEXT,
    token_name TEXT,
    detail TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
-- Which expiry warning a token has had (token.expiring): 0 none, 1 on entering
-- tokens.warn_before, 2 a day before it expires. A rotation (a new expiry) starts again at 0.
ALTER TABLE api_tokens ADD COLUMN expiry_notice INTEGER NOT NULL DEFAULT 0;
-- The minutely look for tokens coming within a warning reads a range of expiries.
CREATE INDEX api_tokens_by_expiry ON api_tokens (expires_at) WHERE expires_at IS NOT NULL;
