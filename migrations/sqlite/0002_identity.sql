-- Identities: users and robot accounts (principals), groups, access keys for the ECR-compatible
-- API, policy documents, and the registry's token signing keys.
CREATE TABLE principals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    password_hash TEXT,
    expires_at BIGINT,
    -- Bumped whenever the credential changes; tokens carry it, so old ones stop working.
    credential_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (kind, name)
);

CREATE TABLE groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id BIGINT NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
    principal_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, principal_id)
);

-- SigV4 needs the secret itself (it is the HMAC key), so it is stored, not hashed.
CREATE TABLE access_keys (
    key_id TEXT NOT NULL PRIMARY KEY,
    principal_id BIGINT NOT NULL REFERENCES principals(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- scope: 'registry' (target ''), 'repository' (target = name), 'principal' or 'group' (target = id).
CREATE TABLE policies (
    scope TEXT NOT NULL,
    target TEXT NOT NULL,
    document TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (scope, target)
);

CREATE TABLE signing_keys (
    kid TEXT NOT NULL PRIMARY KEY,
    pem TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
