-- What a token may do and where (`tokenApiCreate`'s scopes, services and allowFrom), as JSON
-- (`auth::grants`): NULL is every scope, any service, any address, as before. A session opened
-- with a token keeps a copy, so it carries them for its whole life.
ALTER TABLE api_tokens ADD COLUMN grants TEXT;
ALTER TABLE sessions ADD COLUMN grants TEXT;
