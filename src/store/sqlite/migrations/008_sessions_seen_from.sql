-- Where each session was opened from, so that a person sees their sessions and ends the ones they
-- do not know: the client address and the browser's or client's `User-Agent` (cut short).
ALTER TABLE sessions ADD COLUMN address TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;

-- A user's last login (written with the tokens' last uses, at most once a minute), and when a
-- failed-login lock was last lifted from outside the server (`lodge user unlock`, a password
-- change), so that a running server lifts a lock it holds in memory.
ALTER TABLE users ADD COLUMN last_login_at INTEGER;
ALTER TABLE users ADD COLUMN lock_lifted_at INTEGER;
