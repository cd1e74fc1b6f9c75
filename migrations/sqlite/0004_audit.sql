-- The audit log: one row per admin (and ECR) API call, newest last. Never holds secrets.
-- principal: login name or 'anonymous'; outcome: 'success', 'denied' or 'failed'.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    principal TEXT NOT NULL,
    action TEXT NOT NULL,
    resource TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    source_ip TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);
