-- Image scanning (ECR's scan on push, with Trivy). Times are Unix milliseconds.

-- Per-repository scanning configuration (ECR's imageScanningConfiguration). A repository
-- without a row does not scan on push. `scan_on_push` is 0 or 1.
CREATE TABLE repository_scanning (
    repository_id BIGINT NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    scan_on_push BIGINT NOT NULL DEFAULT 0,
    updated_at BIGINT NOT NULL
);

-- One scan per image manifest of a repository (a manifest row is one repository and digest).
-- Queued in the transaction that stores the manifest (scan on push) or by StartImageScan.
-- `status` is ECR's: IN_PROGRESS (queued or running), COMPLETE, FAILED, UNSUPPORTED_IMAGE;
-- `description` the reason shown with it. A job is due while `next_attempt_at` is set and not
-- in the future; a worker taking it moves `next_attempt_at` past its timeout (a lease: a worker
-- that dies leaves the job due again later) and bumps `attempts`, which fences its result.
CREATE TABLE scan_jobs (
    manifest_id BIGINT NOT NULL PRIMARY KEY REFERENCES manifests(id) ON DELETE CASCADE,
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    description TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT,
    queued_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    vulnerability_source_updated_at BIGINT
);
CREATE INDEX scan_jobs_due ON scan_jobs(next_attempt_at);

-- Findings of the last complete scan, in Trivy's order (`seq`, the pagination key).
-- `attributes` is a JSON list of {"key","value"} as ECR shows it.
CREATE TABLE scan_findings (
    manifest_id BIGINT NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    severity TEXT NOT NULL,
    name TEXT NOT NULL,
    package_name TEXT,
    package_version TEXT,
    fixed_version TEXT,
    uri TEXT,
    description TEXT,
    attributes TEXT NOT NULL,
    PRIMARY KEY (manifest_id, seq)
);
