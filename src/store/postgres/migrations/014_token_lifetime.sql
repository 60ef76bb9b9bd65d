-- As SQLite's migration 014: each token's lifetime rule ('day', 'week', 'month', 'year',
-- 'never', or 'us:N'), so that a rotation gives the new secret the same one.
ALTER TABLE api_tokens ADD COLUMN lifetime TEXT;

UPDATE api_tokens SET lifetime = CASE
    WHEN expires_at IS NULL THEN 'never'
    ELSE 'us:' || (expires_at - created_at)::TEXT
END;
