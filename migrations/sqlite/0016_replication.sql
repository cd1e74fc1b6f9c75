-- Replication: the registry's configuration (one row: ECR's ReplicationConfiguration as JSON,
-- validated when saved) and one task per pushed image (a manifest, with the tag the push set or
-- '' for a push by digest) and destination, written in the push's transaction. A task is
-- IN_PROGRESS until a replica that holds its lease (lease_owner until lease_until) has sent it,
-- then COMPLETE, or FAILED with ECR's failure code and a reason. A destination is a registry
-- (registry_id, region) or a configured non-Berth target (target, by name; the other two empty).
-- `action` is `push`, or `delete` (the tag, or the manifest when the tag is empty, was deleted
-- here and a rule asks for deletes to follow); the worker acts on what the source holds when it
-- runs, so tasks of one image may run in any order.
-- Times are Unix milliseconds.
CREATE TABLE replication_configuration (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    document TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE replication_tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    tag TEXT NOT NULL,
    registry_id TEXT NOT NULL,
    region TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    action TEXT NOT NULL DEFAULT 'push',
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    failure_code TEXT,
    failure_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (repository, digest, tag, registry_id, region, target, action)
);
CREATE INDEX replication_tasks_due ON replication_tasks (status, next_attempt_at);
