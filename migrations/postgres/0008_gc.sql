-- Online garbage collection (GitLab-style review queues). Application code enqueues inside the
-- transactions that change references; workers take due rows, re-check in one transaction and
-- delete what nothing references any more. Times are Unix milliseconds.

-- Blobs to review: committed (`blob_upload`), linked (`blob_link`), or no longer referenced by a
-- deleted manifest (`manifest_delete`). Postponed (never advanced) by later events.
CREATE TABLE gc_blob_review_queue (
    digest TEXT COLLATE "C" PRIMARY KEY,
    review_after BIGINT NOT NULL,
    review_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    event TEXT COLLATE "C" NOT NULL
);
CREATE INDEX gc_blob_review_queue_due ON gc_blob_review_queue(review_after);

-- Manifests to review: children and referrers of a deleted manifest, or the old target of a
-- deleted or moved tag.
CREATE TABLE gc_manifest_review_queue (
    manifest_id BIGINT NOT NULL PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    review_after BIGINT NOT NULL,
    review_count BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    event TEXT COLLATE "C" NOT NULL
);
CREATE INDEX gc_manifest_review_queue_due ON gc_manifest_review_queue(review_after);

-- Manifests that lost a parent index or their subject. GC deletes only these (when untagged and
-- referenced by no index of their repository); it never deletes a top-level manifest. Pushing the
-- manifest again makes it top-level again.
CREATE TABLE gc_dependent_manifests (
    manifest_id BIGINT NOT NULL PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    since BIGINT NOT NULL
);
