-- Lifecycle policies (ECR PutLifecyclePolicy), their last preview, the lifecycle audit log, and
-- last-pull times. Times are Unix milliseconds.

-- One policy per repository, the text exactly as sent (GetLifecyclePolicy returns it).
CREATE TABLE lifecycle_policies (
    repository_id BIGINT NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    -- when a run last evaluated it (GetLifecyclePolicy's lastEvaluatedAt)
    last_evaluated_at BIGINT
);

-- The last preview per repository (GetLifecyclePolicyPreview): the policy previewed and the
-- result as JSON.
CREATE TABLE lifecycle_previews (
    repository_id BIGINT NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text TEXT NOT NULL,
    result TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per expired image, newest last; kept when the repository goes. tags and removed
-- (referrers and index children that went with the image) are JSON lists of strings.
CREATE TABLE lifecycle_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tags TEXT NOT NULL,
    rule_priority BIGINT NOT NULL,
    removed TEXT NOT NULL
);
CREATE INDEX lifecycle_audit_at ON lifecycle_audit(at);

-- Last pull (by tag or digest) of each manifest; NULL if never pulled. Written in batches.
ALTER TABLE manifests ADD COLUMN last_pulled_at BIGINT;
