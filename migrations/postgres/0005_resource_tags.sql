-- Tags on ECR resources (TagResource, UntagResource, ListTagsForResource and CreateRepository's
-- `tags`). Repositories are the only taggable resource so far; their tags go with them. Keys are
-- case-sensitive, as in AWS.
CREATE TABLE repository_tags (
    repository_id BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    tag_key TEXT COLLATE "C" NOT NULL,
    tag_value TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (repository_id, tag_key)
);
