-- A login wrote three b-tree pages besides the table's: an entry in each of the two session
-- indexes and its user's count, each on a page of its own, and trimming the user's oldest session
-- as many again. Under a flood of logins every commit carried those pages to the write-ahead log.
-- The server now keeps each user's sessions in memory (`store::sessions::UserSessions`), read
-- from this table; the rare deletes by user or by token scan the table instead.
DROP TRIGGER sessions_counted;
DROP TRIGGER sessions_uncounted;
DROP TRIGGER session_counts_of_deleted_users;
DROP TABLE session_counts;
DROP INDEX sessions_by_user;
DROP INDEX sessions_by_token;

-- How many sessions have ended, whichever process ended them: a server's list of each user's
-- sessions is exact while this stays where the server's own writes left it.
ALTER TABLE generation ADD COLUMN sessions_ended INTEGER NOT NULL DEFAULT 0;

DROP TRIGGER sessions_deleted;

CREATE TRIGGER sessions_deleted AFTER DELETE ON sessions
BEGIN
    UPDATE generation SET n = n + 1, sessions_ended = sessions_ended + 1;
END;
