-- The audit log: one row per admin (and ECR) API call, newest last. Never holds secrets.
-- principal: login name or 'anonymous'; outcome: 'success', 'denied' or 'failed'.
CREATE TABLE audit_log (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at BIGINT NOT NULL,
    principal TEXT COLLATE "C" NOT NULL,
    action TEXT COLLATE "C" NOT NULL,
    resource TEXT COLLATE "C" NOT NULL,
    outcome TEXT COLLATE "C" NOT NULL,
    detail TEXT COLLATE "C" NOT NULL,
    source_ip TEXT COLLATE "C"
);
CREATE INDEX audit_log_at ON audit_log(at);
