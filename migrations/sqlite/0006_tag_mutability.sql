-- Tag immutability per repository (ECR's imageTagMutability and its exclusion filters). A
-- repository without a row is MUTABLE. `exclusion_filters` is ECR's JSON list,
-- [{"filterType":"WILDCARD","filter":"dev-*"}], empty ([]) for the modes without exclusions.
-- The manifest push reads this row inside the transaction that moves the tag.
CREATE TABLE repository_tag_mutability (
    repository_id BIGINT NOT NULL PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    mode TEXT NOT NULL,
    exclusion_filters TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
