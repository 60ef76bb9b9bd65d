-- Each token's lifetime rule, so that a rotation gives the new secret the same one: 'day',
-- 'week', 'month', 'year', 'never', or 'us:N' for a token made to end on a date, N being the
-- microseconds from its making to that date. Tokens made before this are given 'never' when
-- they do not expire, and otherwise the time from their making to their expiry: exact for a
-- token never rotated, longer than it was for one rotated since.
ALTER TABLE api_tokens ADD COLUMN lifetime TEXT;

UPDATE api_tokens SET lifetime = CASE
    WHEN expires_at IS NULL THEN 'never'
    ELSE 'us:' || (expires_at - created_at)
END;
