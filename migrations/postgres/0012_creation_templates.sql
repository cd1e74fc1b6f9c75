-- Repository creation templates (ECR CreateRepositoryCreationTemplate): the settings a
-- repository gets when Berth creates it (on push, for a pull-through cache). Times are Unix
-- milliseconds.

-- One row per prefix (without a trailing '/'; 'ROOT' is the fallback template). applied_for,
-- resource_tags (ECR's [{"Key","Value"}]) and tag_mutability_filters are JSON lists; NULL
-- policies, description and role mean none; scan_on_push NULL means the template does not set it.
CREATE TABLE creation_templates (
    prefix TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    description TEXT COLLATE "C",
    applied_for TEXT COLLATE "C" NOT NULL,
    tag_mutability TEXT COLLATE "C" NOT NULL,
    tag_mutability_filters TEXT COLLATE "C" NOT NULL,
    resource_tags TEXT COLLATE "C" NOT NULL,
    repository_policy TEXT COLLATE "C",
    lifecycle_policy TEXT COLLATE "C",
    custom_role_arn TEXT COLLATE "C",
    scan_on_push BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
