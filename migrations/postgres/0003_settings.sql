-- Registry-wide settings changed at run time through the admin APIs (for example whether a push
-- to a missing repository creates it). Absent rows mean the built-in default.
CREATE TABLE settings (
    name TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
