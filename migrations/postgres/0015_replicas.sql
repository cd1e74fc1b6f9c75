-- Server processes and their heartbeats, so a lease (see `leases`) whose holder is gone can be
-- taken over within a minute instead of waiting out its expiry. `host` names the host and PID
-- namespace (hostname, boot id, namespace inode): on the same host, a lease holder whose `pid`
-- no longer runs is gone at once. Times are Unix milliseconds.
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    host TEXT NOT NULL,
    pid BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
