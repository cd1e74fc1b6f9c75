-- Web console sign-ins. The browser holds a random token in an HttpOnly cookie; the server keeps
-- only the token's SHA-256 (`id`), the principal it signed in and that principal's credential
-- version at sign-in, so sign-out (the row goes), a password change (the version moves on) and a
-- deleted user (the row goes by cascade) end the session on every replica. A session lasts until
-- `expires_at` or until it is idle past the console's idle timeout (`last_seen_at`). Times are
-- Unix milliseconds.
CREATE TABLE console_sessions (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    credential_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
CREATE INDEX console_sessions_principal ON console_sessions (principal_id);
