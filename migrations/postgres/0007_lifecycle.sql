-- Lifecycle policies (ECR PutLifecyclePolicy), their last preview, the lifecycle audit log, and
-- last-pull times. Times are Unix milliseconds.

-- One policy per repository, the text exactly as sent (GetLifecyclePolicy returns it).
CREATE TABLE lifecycle_policies (
    repository_id BIGINT NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text TEXT COLLATE "C" NOT NULL,
    updated_at BIGINT NOT NULL,
    -- when a run last evaluated it (GetLifecyclePolicy's lastEvaluatedAt)
    last_evaluated_at BIGINT
);

-- The last preview per repository (GetLifecyclePolicyPreview): the policy previewed and the
-- result as JSON.
CREATE TABLE lifecycle_previews (
    repository_id BIGINT NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    policy_text TEXT COLLATE "C" NOT NULL,
    result TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL
);

-- One row per expired image, newest last; kept when the repository goes. tags and removed
-- (referrers and index children that went with the image) are JSON lists of strings.
CREATE TABLE lifecycle_audit (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    repository TEXT COLLATE "C" NOT NULL,
    digest TEXT COLLATE "C" NOT NULL,
    tags TEXT COLLATE "C" NOT NULL,
    rule_priority BIGINT NOT NULL,
    removed TEXT COLLATE "C" NOT NULL
);
CREATE INDEX lifecycle_audit_at ON lifecycle_audit(at);

-- Last pull (by tag or digest) of each manifest; NULL if never pulled. Written in batches.
ALTER TABLE manifests ADD COLUMN last_pulled_at BIGINT;
