-- Whether a token exists only because its owner was an administrator when they made it under
-- `tokens.admins_only`: such a token is suspended while its owner is not an administrator.
-- Tokens given by the command line (the operator's own grant) do not need it.
ALTER TABLE api_tokens ADD COLUMN needs_admin INTEGER NOT NULL DEFAULT 0;

-- Tokens made before this column: an administrator's are taken as made under the default
-- `admins_only`, the safe reading (a later demotion suspends them).
UPDATE api_tokens SET needs_admin = 1
    WHERE user_id IN (SELECT id FROM users WHERE role = 'admin');
