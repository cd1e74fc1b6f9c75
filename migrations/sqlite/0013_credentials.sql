-- What each credential is for: the audit log records the kind of credential every call was
-- made with ('password', 'robot_secret', 'access_key', ...; '' for anonymous callers and for
-- entries written before this column existed), and access keys can be deactivated (IAM's
-- Active/Inactive) without being deleted.
ALTER TABLE audit_log ADD COLUMN credential TEXT NOT NULL DEFAULT '';
ALTER TABLE access_keys ADD COLUMN status TEXT NOT NULL DEFAULT 'Active';
