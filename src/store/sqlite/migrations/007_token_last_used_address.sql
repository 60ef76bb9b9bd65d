-- The client address of a token's last recorded use, written with `last_used_at` (at most once
-- a minute), so that owners and administrators see where a token is used from.
ALTER TABLE api_tokens ADD COLUMN last_used_address TEXT;
