-- Core registry metadata: repositories, content-addressed blobs and their per-repository links,
-- manifests (bytes kept here, byte-identical), tags, upload sessions and leases.
-- Times are Unix milliseconds (BIGINT) so both dialects share one SQL text.
CREATE TABLE repositories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE blobs (
    digest TEXT NOT NULL PRIMARY KEY,
    size BIGINT NOT NULL,
    object_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE repository_blobs (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest TEXT NOT NULL REFERENCES blobs(digest),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_digest ON repository_blobs(digest);

CREATE TABLE manifests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    artifact_type TEXT,
    size BIGINT NOT NULL,
    content BLOB NOT NULL,
    subject_digest TEXT,
    annotations TEXT,
    depth INTEGER NOT NULL,
    pushed_at BIGINT NOT NULL,
    UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_subject ON manifests(repository_id, subject_digest);

CREATE TABLE manifest_references (
    manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    child_digest TEXT NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (manifest_id, child_digest)
);
CREATE INDEX manifest_references_child ON manifest_references(child_digest);

CREATE TABLE tags (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repository_id, name)
);
CREATE INDEX tags_manifest ON tags(manifest_id);

CREATE TABLE uploads (
    id TEXT NOT NULL PRIMARY KEY,
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    size BIGINT NOT NULL,
    -- storage progress (multipart id, parts, tail) as JSON, and the serialised hash state:
    -- together they let any replica continue the upload.
    staging TEXT NOT NULL,
    hash_state BLOB,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX uploads_updated ON uploads(updated_at);

CREATE TABLE leases (
    name TEXT NOT NULL PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- Bumped by out-of-process maintenance (`berth fsck --repair`) so that a running single-node
-- server drops its in-process metadata cache.
CREATE TABLE maintenance (
    id INTEGER NOT NULL PRIMARY KEY,
    epoch BIGINT NOT NULL
);
INSERT INTO maintenance (id, epoch) VALUES (1, 0);
