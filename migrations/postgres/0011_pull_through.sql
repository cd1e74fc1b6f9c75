-- Pull-through caching of upstream registries (ECR's pull-through cache rules). Times are Unix
-- milliseconds.

-- One rule per local prefix (stored without its trailing `/`). `upstream_url` is kept as given;
-- `credential_arn` names a secret held in Berth's configuration, never in the database.
-- `revalidate_secs` (NULL = the configured default) bounds how often a tag is checked upstream;
-- `quota_bytes` (NULL = none) caps the rule's cached images.
CREATE TABLE pull_through_rules (
    prefix TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    upstream_url TEXT COLLATE "C" NOT NULL,
    upstream_registry TEXT COLLATE "C" NOT NULL,
    credential_arn TEXT COLLATE "C",
    custom_role_arn TEXT COLLATE "C",
    upstream_repository_prefix TEXT COLLATE "C",
    revalidate_secs BIGINT,
    quota_bytes BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- When a cached tag was last checked against its upstream (and found there at `digest`).
CREATE TABLE pull_through_tag_checks (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    checked_at BIGINT NOT NULL,
    PRIMARY KEY (repository_id, tag)
);

-- Blob fetches under way, one per digest across every replica (single-flight): the replica
-- `owner` fetches until `expires_at` (renewed while it streams); others wait for the blob.
CREATE TABLE pull_through_fills (
    digest TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    owner TEXT COLLATE "C" NOT NULL,
    expires_at BIGINT NOT NULL
);
