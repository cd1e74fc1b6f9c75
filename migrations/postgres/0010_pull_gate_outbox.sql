-- The pull gate of a repository (beyond ECR; see src/policy/scanning.rs) and the event outbox.
-- Times are Unix milliseconds. (ECR's registry scanning configuration is a row of `settings`.)

-- When the stored findings were written: the last complete scan, kept while a rescan runs or
-- after it fails, so the pull gate judges an image by its last complete scan.
ALTER TABLE scan_jobs ADD COLUMN findings_at BIGINT;

-- A repository with a row refuses pulls of images with findings at or above
-- `severity_threshold` (ECR's severity names), except the finding names in `allowlist` (a JSON
-- list of strings); images without a complete scan only if `allow_unscanned` is 0.
CREATE TABLE repository_pull_gates (
    repository_id BIGINT NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    severity_threshold TEXT COLLATE "C" NOT NULL,
    allowlist TEXT COLLATE "C" NOT NULL,
    allow_unscanned BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Events written in the transaction of the change they report (a scan completing, ...), for
-- delivery by a later worker: `kind` is the EventBridge detail-type (`ECR Image Scan`),
-- `detail` its JSON detail; `delivered_at` stays NULL until delivered.
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT COLLATE "C" NOT NULL,
    detail TEXT COLLATE "C" NOT NULL,
    created_at BIGINT NOT NULL,
    delivered_at BIGINT
);
CREATE INDEX outbox_undelivered ON outbox(delivered_at, id);
