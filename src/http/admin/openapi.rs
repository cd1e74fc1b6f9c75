//! The OpenAPI 3 document of the admin API, written by hand as a table of operations plus the
//! schemas they use. It is kept apart from the router on purpose: a test holds it against
//! [`super::mounted_routes`], so a route added without documentation fails the build's tests.

use serde_json::{json, Map, Value};

/// A request or response body.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// A schema under `components/schemas`.
    Schema(&'static str),
    /// A policy document, stored and returned exactly as sent.
    Policy,
}

struct Op {
    method: &'static str,
    /// With `{param}` path parameters; `name` of repositories may contain `/`.
    path: &'static str,
    id: &'static str,
    summary: &'static str,
    /// Who may call it.
    permission: &'static str,
    request: Body,
    status: u16,
    response: Body,
    /// Query parameters: (name, type, description).
    query: &'static [(&'static str, &'static str, &'static str)],
}

const ADMIN: &str = "administrators (ecr:PutRegistryPolicy on the registry)";
const SIGNED_IN: &str = "any signed-in caller";

macro_rules! op {
    ($method:literal $path:literal, $id:literal, $summary:literal, $perm:expr, $req:expr => $status:literal $resp:expr $(, $q:expr)?) => {
        Op {
            method: $method,
            path: $path,
            id: $id,
            summary: $summary,
            permission: $perm,
            request: $req,
            status: $status,
            response: $resp,
            query: op!(@q $($q)?),
        }
    };
    (@q) => { &[] };
    (@q $q:expr) => { $q };
}

use Body::{None as NoBody, Policy, Schema};

const OPS: &[Op] = &[
    op!("get" "/api/v1/openapi.json", "getOpenApiDocument", "This document", SIGNED_IN, NoBody => 200 Schema("OpenApi")),
    // users
    op!("post" "/api/v1/users", "createUser", "Create a user with a password", ADMIN, Schema("CreateUser") => 201 Schema("User")),
    op!("get" "/api/v1/users", "listUsers", "List users", ADMIN, NoBody => 200 Schema("UserList")),
    op!("get" "/api/v1/users/{name}", "getUser", "Describe a user", ADMIN, NoBody => 200 Schema("User")),
    op!("delete" "/api/v1/users/{name}", "deleteUser", "Delete a user with its access keys, memberships and identity policy", ADMIN, NoBody => 204 NoBody),
    op!("put" "/api/v1/users/{name}/password", "changePassword", "Set a new password (tokens issued for the old one stop working)", ADMIN, Schema("Password") => 204 NoBody),
    op!("get" "/api/v1/users/{name}/policy", "getUserPolicy", "The user's identity policy", ADMIN, NoBody => 200 Policy),
    op!("put" "/api/v1/users/{name}/policy", "putUserPolicy", "Attach (replace) the user's identity policy", ADMIN, Policy => 204 NoBody),
    op!("delete" "/api/v1/users/{name}/policy", "deleteUserPolicy", "Remove the user's identity policy", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/users/{name}/access-keys", "createUserAccessKey", "Create an access key; the secret is returned once", ADMIN, NoBody => 201 Schema("NewAccessKey")),
    op!("get" "/api/v1/users/{name}/access-keys", "listUserAccessKeys", "List the user's access key ids", ADMIN, NoBody => 200 Schema("AccessKeyList")),
    op!("delete" "/api/v1/users/{name}/access-keys/{key_id}", "deleteUserAccessKey", "Delete an access key", ADMIN, NoBody => 204 NoBody),
    op!("put" "/api/v1/users/{name}/access-keys/{key_id}", "updateUserAccessKey", "Activate or deactivate an access key (what was obtained with it stops working while it is inactive)", ADMIN, Schema("AccessKeyStatus") => 204 NoBody),
    // robots
    op!("post" "/api/v1/robots", "createRobot", "Create a robot account; its generated secret is returned once", ADMIN, Schema("CreateRobot") => 201 Schema("RobotWithSecret")),
    op!("get" "/api/v1/robots", "listRobots", "List robot accounts", ADMIN, NoBody => 200 Schema("RobotList")),
    op!("get" "/api/v1/robots/{name}", "getRobot", "Describe a robot account", ADMIN, NoBody => 200 Schema("Robot")),
    op!("delete" "/api/v1/robots/{name}", "deleteRobot", "Delete a robot account", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/robots/{name}/secret", "regenerateRobotSecret", "Generate a new secret (returned once); the old one and its tokens stop working", ADMIN, NoBody => 200 Schema("RobotSecret")),
    op!("get" "/api/v1/robots/{name}/policy", "getRobotPolicy", "The robot's identity policy", ADMIN, NoBody => 200 Policy),
    op!("put" "/api/v1/robots/{name}/policy", "putRobotPolicy", "Attach (replace) the robot's identity policy", ADMIN, Policy => 204 NoBody),
    op!("delete" "/api/v1/robots/{name}/policy", "deleteRobotPolicy", "Remove the robot's identity policy", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/robots/{name}/access-keys", "createRobotAccessKey", "Create an access key; the secret is returned once", ADMIN, NoBody => 201 Schema("NewAccessKey")),
    op!("get" "/api/v1/robots/{name}/access-keys", "listRobotAccessKeys", "List the robot's access key ids", ADMIN, NoBody => 200 Schema("AccessKeyList")),
    op!("delete" "/api/v1/robots/{name}/access-keys/{key_id}", "deleteRobotAccessKey", "Delete an access key", ADMIN, NoBody => 204 NoBody),
    op!("put" "/api/v1/robots/{name}/access-keys/{key_id}", "updateRobotAccessKey", "Activate or deactivate an access key (what was obtained with it stops working while it is inactive)", ADMIN, Schema("AccessKeyStatus") => 204 NoBody),
    // groups
    op!("post" "/api/v1/groups", "createGroup", "Create a group", ADMIN, Schema("CreateGroup") => 201 Schema("Group")),
    op!("get" "/api/v1/groups", "listGroups", "List groups with their members", ADMIN, NoBody => 200 Schema("GroupList")),
    op!("get" "/api/v1/groups/{name}", "getGroup", "Describe a group with its members", ADMIN, NoBody => 200 Schema("Group")),
    op!("delete" "/api/v1/groups/{name}", "deleteGroup", "Delete a group with its memberships and identity policy", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/groups/{name}/members", "addGroupMember", "Add a user or robot (login name) to the group", ADMIN, Schema("AddMember") => 200 Schema("Group")),
    op!("delete" "/api/v1/groups/{name}/members/{member}", "removeGroupMember", "Remove a member (login name; robot/<name> for robots)", ADMIN, NoBody => 204 NoBody),
    op!("get" "/api/v1/groups/{name}/policy", "getGroupPolicy", "The group's identity policy", ADMIN, NoBody => 200 Policy),
    op!("put" "/api/v1/groups/{name}/policy", "putGroupPolicy", "Attach (replace) the group's identity policy; it applies to every member", ADMIN, Policy => 204 NoBody),
    op!("delete" "/api/v1/groups/{name}/policy", "deleteGroupPolicy", "Remove the group's identity policy", ADMIN, NoBody => 204 NoBody),
    // repositories
    op!("post" "/api/v1/repositories", "createRepository", "Create a repository", "ecr:CreateRepository on the repository", Schema("CreateRepository") => 201 Schema("Repository")),
    op!("get" "/api/v1/repositories", "listRepositories", "Repositories the caller may describe, by name", "any signed-in caller; each repository needs ecr:DescribeRepositories", NoBody => 200 Schema("RepositoryList"),
        &[("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("after", "string", "List names after this one (the previous page's `next`)")]),
    op!("get" "/api/v1/repositories/{name}", "describeRepository", "Describe a repository", "ecr:DescribeRepositories on the repository", NoBody => 200 Schema("Repository")),
    op!("delete" "/api/v1/repositories/{name}", "deleteRepository", "Delete a repository (with force, also one that holds images)", "ecr:DeleteRepository on the repository", NoBody => 200 Schema("Repository"),
        &[("force", "boolean", "Delete even if the repository holds images")]),
    // policies
    op!("get" "/api/v1/repositories/{name}/tag-mutability", "getTagMutability", "The repository's tag mutability (ECR's imageTagMutability and exclusion filters)", "ecr:DescribeRepositories on the repository", NoBody => 200 Schema("TagMutability")),
    op!("put" "/api/v1/repositories/{name}/tag-mutability", "putTagMutability", "Set the repository's tag mutability (as ECR's PutImageTagMutability)", "ecr:PutImageTagMutability on the repository", Schema("PutTagMutability") => 200 Schema("TagMutability")),
    op!("get" "/api/v1/repository-policies/{name}", "getRepositoryPolicy", "The repository policy, exactly as stored (GetRepositoryPolicy's policyText); 404 with ECR's message when there is none", "ecr:GetRepositoryPolicy on the repository", NoBody => 200 Policy),
    op!("put" "/api/v1/repository-policies/{name}", "setRepositoryPolicy", "Set (replace) the repository policy (SetRepositoryPolicy); refused naming the statement and field when invalid", "ecr:SetRepositoryPolicy on the repository", Policy => 204 NoBody),
    op!("delete" "/api/v1/repository-policies/{name}", "deleteRepositoryPolicy", "Remove the repository policy (DeleteRepositoryPolicy)", "ecr:DeleteRepositoryPolicy on the repository", NoBody => 204 NoBody),
    // lifecycle policies
    op!("get" "/api/v1/repositories/{name}/lifecycle-policy", "getLifecyclePolicy", "The lifecycle policy, exactly as saved", "ecr:GetLifecyclePolicy on the repository", NoBody => 200 Schema("LifecyclePolicy")),
    op!("put" "/api/v1/repositories/{name}/lifecycle-policy", "putLifecyclePolicy", "Set (replace) the lifecycle policy; refused with the rule and field when invalid", "ecr:PutLifecyclePolicy on the repository", Schema("LifecyclePolicy") => 204 NoBody),
    op!("delete" "/api/v1/repositories/{name}/lifecycle-policy", "deleteLifecyclePolicy", "Remove the lifecycle policy", "ecr:DeleteLifecyclePolicy on the repository", NoBody => 204 NoBody),
    op!("post" "/api/v1/repositories/{name}/lifecycle/preview", "startLifecyclePolicyPreview", "Evaluate the policy in the body (or the saved one when the body is empty) now, expiring nothing; kept as the last preview, which GET answers (ECR's StartLifecyclePolicyPreview)", "ecr:StartLifecyclePolicyPreview on the repository", Schema("LifecyclePolicy") => 200 Schema("LifecyclePreviewStarted")),
    op!("get" "/api/v1/repositories/{name}/lifecycle/preview", "getLifecyclePolicyPreview", "The last preview's results, paginated (ECR's GetLifecyclePolicyPreview; `next` is its nextToken)", "ecr:GetLifecyclePolicyPreview on the repository", NoBody => 200 Schema("LifecyclePreview"),
        &[("limit", "integer", "Page size, 1 to 100 (default 100)"), ("after", "string", "The previous page's `next`"), ("tagStatus", "string", "TAGGED, UNTAGGED or ANY (default)")]),
    op!("post" "/api/v1/repositories/{name}/lifecycle/run", "runLifecyclePolicy", "Run the saved lifecycle policy now (audited as ecr:PutLifecyclePolicy)", "ecr:PutLifecyclePolicy on the repository", NoBody => 200 Schema("LifecycleRun")),
    // scanning
    op!("get" "/api/v1/repositories/{name}/scanning-configuration", "getImageScanningConfiguration", "Whether pushes to the repository are scanned (PutImageScanningConfiguration's answer, read with DescribeRepositories)", "ecr:DescribeRepositories on the repository", NoBody => 200 Schema("ScanningConfiguration")),
    op!("put" "/api/v1/repositories/{name}/scanning-configuration", "putImageScanningConfiguration", "Turn scan on push on or off (as ECR's PutImageScanningConfiguration)", "ecr:PutImageScanningConfiguration on the repository", Schema("PutScanningConfiguration") => 200 Schema("ScanningConfiguration")),
    op!("get" "/api/v1/repositories/{name}/pull-gate", "getPullGate", "The repository's pull gate (404 when it has none)", "ecr:DescribeRepositories on the repository", NoBody => 200 Schema("PullGate")),
    op!("put" "/api/v1/repositories/{name}/pull-gate", "putPullGate", "Refuse pulls (403 DENIED) of images with findings at or above a severity, except allowlisted findings; and, unless allowUnscanned, of images without a complete scan. Applies within 2 s on every replica", "ecr:PutImageScanningConfiguration on the repository", Schema("PullGate") => 200 Schema("PullGate")),
    op!("delete" "/api/v1/repositories/{name}/pull-gate", "deletePullGate", "Remove the pull gate", "ecr:PutImageScanningConfiguration on the repository", NoBody => 204 NoBody),
    op!("post" "/api/v1/repositories/{name}/image-scans", "startImageScan", "Scan an image now (as ECR's StartImageScan, with no daily limit); the result arrives in scan-findings", "ecr:StartImageScan on the repository", Schema("ImageRef") => 202 Schema("ImageScanStarted")),
    op!("get" "/api/v1/repositories/{name}/scan-findings", "describeImageScanFindings", "An image's scan status and findings: ECR's DescribeImageScanFindings, the same answer and page tokens", "ecr:DescribeImageScanFindings on the repository", NoBody => 200 Schema("ImageScanFindings"),
        &[("imageDigest", "string", "The image's digest (or give imageTag)"), ("imageTag", "string", "A tag of the image"), ("maxResults", "integer", "Page size, 1 to 1000 (default 100)"), ("nextToken", "string", "The previous page's nextToken (the ECR API's tokens work too)")]),
    op!("get" "/api/v1/registry/scanning-configuration", "getRegistryScanningConfiguration", "Registry scanning rules (ECR's GetRegistryScanningConfiguration)", "ecr:GetRegistryScanningConfiguration on the registry", NoBody => 200 Schema("RegistryScanning")),
    op!("put" "/api/v1/registry/scanning-configuration", "putRegistryScanningConfiguration", "Replace the registry scanning rules: repositories matching a SCAN_ON_PUSH (or CONTINUOUS_SCAN) rule scan on push, as do repositories whose own flag is on", "ecr:PutRegistryScanningConfiguration on the registry", Schema("ScanningRules") => 200 Schema("PutRegistryScanning")),
    // repository creation templates
    op!("post" "/api/v1/repository-creation-templates", "createRepositoryCreationTemplate", "Create a repository creation template (as ECR's CreateRepositoryCreationTemplate): the settings repositories under its prefix get when Berth creates them (on push, for a pull-through cache)", "ecr:CreateRepositoryCreationTemplate on the registry", Schema("RepositoryCreationTemplateInput") => 201 Schema("RepositoryCreationTemplateResult")),
    op!("get" "/api/v1/repository-creation-templates", "describeRepositoryCreationTemplates", "Repository creation templates by prefix (byte order), paginated", "ecr:DescribeRepositoryCreationTemplates on the registry", NoBody => 200 Schema("RepositoryCreationTemplateList"),
        &[("prefix", "string", "Only this prefix (repeatable)"), ("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("after", "string", "The previous page's `next` token (ECR's nextToken)")]),
    op!("get" "/api/v1/repository-creation-templates/{prefix}", "getRepositoryCreationTemplate", "One repository creation template (DescribeRepositoryCreationTemplates of its prefix); 404 if the prefix has none", "ecr:DescribeRepositoryCreationTemplates on the registry", NoBody => 200 Schema("RepositoryCreationTemplateResult")),
    op!("put" "/api/v1/repository-creation-templates/{prefix}", "updateRepositoryCreationTemplate", "Update a template (as ECR's UpdateRepositoryCreationTemplate): the members given replace the stored ones; the path names the template (a body `prefix` naming another is refused)", "ecr:UpdateRepositoryCreationTemplate on the registry", Schema("RepositoryCreationTemplateInput") => 200 Schema("RepositoryCreationTemplateResult")),
    op!("delete" "/api/v1/repository-creation-templates/{prefix}", "deleteRepositoryCreationTemplate", "Delete a template; answers the deleted template", "ecr:DeleteRepositoryCreationTemplate on the registry", NoBody => 200 Schema("RepositoryCreationTemplateResult")),
    op!("get" "/api/v1/events", "listEvents", "Outbox records (scan results as EventBridge's `ECR Image Scan` detail), oldest first", ADMIN, NoBody => 200 Schema("EventList"),
        &[("after", "integer", "Records after this id"), ("limit", "integer", "Page size, 1 to 1000 (default 100)")]),
    // pull-through cache rules
    op!("post" "/api/v1/pull-through-rules", "createPullThroughCacheRule", "Serve repositories under a local prefix from an upstream registry (ECR's CreatePullThroughCacheRule, plus revalidateSecs and quotaBytes)", "ecr:CreatePullThroughCacheRule on the registry", Schema("PullThroughRuleInput") => 201 Schema("PullThroughRule")),
    op!("get" "/api/v1/pull-through-rules", "describePullThroughCacheRules", "Pull-through cache rules by prefix (byte order), paginated (ECR's DescribePullThroughCacheRules)", "ecr:DescribePullThroughCacheRules on the registry", NoBody => 200 Schema("PullThroughRuleList"),
        &[("prefix", "string", "Only this rule, which must exist (repeatable)"), ("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("after", "string", "The previous page's `next` token (ECR's nextToken)")]),
    op!("get" "/api/v1/pull-through-rules/{prefix}", "getPullThroughCacheRule", "One rule (DescribePullThroughCacheRules of its prefix); with validate=true, ValidatePullThroughCacheRule: reach the upstream with its credential (isValid, failure)", "ecr:DescribePullThroughCacheRules (ecr:ValidatePullThroughCacheRule with validate) on the registry", NoBody => 200 Schema("PullThroughRule"),
        &[("validate", "boolean", "Reach the upstream and report isValid and failure")]),
    op!("put" "/api/v1/pull-through-rules/{prefix}", "updatePullThroughCacheRule", "Change a rule's credentialArn and customRoleArn (both replaced), revalidateSecs or quotaBytes (when given), as ECR's UpdatePullThroughCacheRule; the upstream cannot change, and the path names the rule", "ecr:UpdatePullThroughCacheRule on the registry", Schema("PullThroughRuleInput") => 200 Schema("PullThroughRule")),
    op!("delete" "/api/v1/pull-through-rules/{prefix}", "deletePullThroughCacheRule", "Remove a rule (ECR's DeletePullThroughCacheRule); answers the deleted rule; its cached repositories stay", "ecr:DeletePullThroughCacheRule on the registry", NoBody => 200 Schema("PullThroughRule")),
    op!("get" "/api/v1/lifecycle/audit", "listLifecycleEvents", "Images expired by lifecycle policies, oldest first", "ecr:GetLifecyclePolicy on the repository (on every repository without `repository`)", NoBody => 200 Schema("LifecycleAudit"),
        &[("repository", "string", "Only this repository"), ("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("after", "string", "The previous page's `next`")]),
    op!("get" "/api/v1/registry-policy", "getRegistryPolicy", "The registry policy, exactly as stored (GetRegistryPolicy's policyText)", "ecr:GetRegistryPolicy on the registry", NoBody => 200 Policy),
    op!("put" "/api/v1/registry-policy", "putRegistryPolicy", "Set (replace) the registry policy (PutRegistryPolicy)", "ecr:PutRegistryPolicy on the registry", Policy => 204 NoBody),
    op!("delete" "/api/v1/registry-policy", "deleteRegistryPolicy", "Remove the registry policy (DeleteRegistryPolicy)", "ecr:DeleteRegistryPolicy on the registry", NoBody => 204 NoBody),
    // the rest
    op!("get" "/api/v1/settings", "getSettings", "Registry settings", ADMIN, NoBody => 200 Schema("Settings")),
    op!("put" "/api/v1/settings", "putSettings", "Change the settings present in the body", ADMIN, Schema("Settings") => 200 Schema("Settings")),
    op!("post" "/api/v1/policy-simulator", "simulatePolicy", "Decide one ECR action for a principal with the stored policies", ADMIN, Schema("SimulationRequest") => 200 Schema("SimulationResult")),
    op!("get" "/api/v1/signing-keys", "listSigningKeys", "Ids of the keys tokens are verified with, the signing one first", ADMIN, NoBody => 200 Schema("SigningKeys")),
    op!("post" "/api/v1/signing-keys/rotate", "rotateSigningKey", "Sign with a new key; earlier keys verify until their tokens expire", ADMIN, NoBody => 200 Schema("SigningKeys")),
    op!("get" "/api/v1/audit", "listAuditEvents", "The audit log, newest first", ADMIN, NoBody => 200 Schema("AuditLog"),
        &[("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("before", "integer", "Entries older than this entry id (the previous page's `next`)")]),
    op!("get" "/api/v1/gc", "getGcStatus", "Garbage collection: review queues, and what this server reclaimed since it started and in its last pass", ADMIN, NoBody => 200 Schema("GcStatus")),
];

fn content(body: Body) -> Option<Value> {
    match body {
        Body::None => None,
        Body::Schema(name) => Some(json!({
            "application/json": { "schema": { "$ref": format!("#/components/schemas/{name}") } }
        })),
        Body::Policy => Some(json!({
            "application/json": { "schema": { "$ref": "#/components/schemas/PolicyDocument" } }
        })),
    }
}

fn parameters(op: &Op) -> Vec<Value> {
    let mut out = Vec::new();
    for segment in op.path.split('/') {
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let description = match name {
                "name" if op.path.contains("repositor") => {
                    "Repository name; may contain `/` (send it as is or percent-encoded)"
                }
                "member" => "Login name of the member (`alice` or `robot/ci`)",
                "prefix" => "Template prefix (`ROOT`, or e.g. `prod/team`; may contain `/`)",
                "key_id" => "Access key id",
                _ => "Name",
            };
            out.push(json!({
                "name": name, "in": "path", "required": true,
                "description": description, "schema": { "type": "string" }
            }));
        }
    }
    for (name, ty, description) in op.query {
        out.push(json!({
            "name": name, "in": "query", "required": false,
            "description": description, "schema": { "type": ty }
        }));
    }
    out
}

fn operation(op: &Op) -> Value {
    let mut responses = Map::new();
    let mut success = json!({ "description": op.summary });
    if let Some(c) = content(op.response) {
        success["content"] = c;
    }
    responses.insert(op.status.to_string(), success);
    for (status, description) in [
        ("400", "Invalid parameter, name or policy document"),
        (
            "401",
            "No or invalid credentials (`WWW-Authenticate: Basic`)",
        ),
        ("403", "The policies do not allow the call"),
        ("404", "No such object"),
        ("409", "Already exists, or not empty"),
    ] {
        responses.insert(
            status.into(),
            json!({ "description": description, "content": {
                "application/json": { "schema": { "$ref": "#/components/schemas/Error" } }
            }}),
        );
    }
    let mut v = json!({
        "operationId": op.id,
        "summary": op.summary,
        "description": format!("Permission: {}.", op.permission),
        "parameters": parameters(op),
        "responses": responses,
    });
    if let Some(c) = content(op.request) {
        v["requestBody"] = json!({ "required": true, "content": c });
    }
    v
}

fn schemas() -> Value {
    let time = json!({ "type": "string", "format": "date-time" });
    let names = json!({ "type": "array", "items": { "type": "string" } });
    let mut all = Map::new();
    let part = json!({
        "Error": { "type": "object", "properties": { "errors": { "type": "array", "items": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": { "type": "string" }, "message": { "type": "string" }, "detail": {} } } } } },
        "OpenApi": { "type": "object", "description": "An OpenAPI 3 document" },
        "PolicyDocument": { "type": "object", "description": "An ECR/IAM JSON policy document (Version, Statement); see policies/README.md" },
        "CreateUser": { "type": "object", "required": ["name", "password"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "pattern": "^[A-Za-z0-9_+=,.@-]{1,64}$", "description": "`AWS` and `anonymous` are reserved" },
            "password": { "type": "string", "minLength": 8, "maxLength": 1024 } } },
        "Password": { "type": "object", "required": ["password"], "additionalProperties": false, "properties": {
            "password": { "type": "string", "minLength": 8, "maxLength": 1024 } } },
        "User": { "type": "object", "properties": {
            "name": { "type": "string" }, "loginName": { "type": "string" }, "arn": { "type": "string" },
            "createdAt": time, "groups": names } },
        "UserList": { "type": "object", "properties": { "users": { "type": "array", "items": { "$ref": "#/components/schemas/User" } } } },
    });
    if let Value::Object(m) = part {
        all.extend(m);
    }
    // ECR's timestamps: epoch seconds.
    let seconds = json!({ "type": "number", "description": "Seconds since the epoch" });
    let expiry = json!({ "type": "object", "description": "ECR's LifecyclePolicyPreviewResult", "properties": {
        "imageDigest": { "type": "string" }, "imageTags": names, "imagePushedAt": seconds,
        "action": { "type": "object", "properties": { "type": { "type": "string", "enum": ["EXPIRE"] } } },
        "appliedRulePriority": { "type": "integer" }, "storageClass": { "type": "string" },
        "lastRecordedPullTime": { "type": "number", "description": "Berth's addition: the last recorded pull (absent: never pulled)" } } });
    let part = json!({
        "LifecyclePolicy": { "type": "object", "description": "An ECR lifecycle policy ({\"rules\": [...]}); see policies/lifecycle/README.md. Stored and returned exactly as sent" },
        "LifecyclePreviewStarted": { "type": "object", "properties": {
            "registryId": { "type": "string" }, "repositoryName": { "type": "string" },
            "lifecyclePolicyText": { "type": "string" }, "status": { "type": "string", "enum": ["IN_PROGRESS"] } } },
        "LifecyclePreview": { "type": "object", "properties": {
            "registryId": { "type": "string" }, "repositoryName": { "type": "string" },
            "lifecyclePolicyText": { "type": "string" }, "status": { "type": "string", "enum": ["COMPLETE"] },
            "previewResults": { "type": "array", "items": expiry },
            "summary": { "type": "object", "properties": {
                "expiringImageTotalCount": { "type": "integer" },
                "evaluatedImageCount": { "type": "integer", "description": "Berth's addition: the images evaluated" } } },
            "next": { "type": ["string", "null"], "description": "Pass as `after` for the next page" } } },
        "LifecycleRun": { "type": "object", "properties": {
            "registryId": { "type": "string" }, "repositoryName": { "type": "string" }, "evaluatedAt": seconds,
            "expired": { "type": "array", "items": expiry }, "expiredImageCount": { "type": "integer" },
            "skippedImageCount": { "type": "integer", "description": "Images that changed during the run; left for the next one" },
            "removedArtifactCount": { "type": "integer", "description": "Referrers and index children removed with the expired images" } } },
        "LifecycleAudit": { "type": "object", "properties": {
            "entries": { "type": "array", "items": { "type": "object", "properties": {
                "id": { "type": "integer" }, "time": seconds, "repositoryName": { "type": "string" },
                "imageDigest": { "type": "string" }, "imageTags": names,
                "appliedRulePriority": { "type": "integer" }, "removedWithImage": names } } },
            "next": { "type": ["string", "null"], "description": "Pass as `after` for the next page" } } },
    });
    if let Value::Object(m) = part {
        all.extend(m);
    }
    let part = json!({
        "CreateRobot": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "pattern": "^[A-Za-z0-9_+=,.@-]{1,64}$", "description": "The robot logs in as `robot/<name>`" },
            "expiresAt": { "type": ["string", "null"], "format": "date-time", "description": "In the future; absent or null: never expires" } } },
        "Robot": { "type": "object", "properties": {
            "name": { "type": "string" }, "loginName": { "type": "string" }, "arn": { "type": "string" },
            "createdAt": time, "expiresAt": { "type": ["string", "null"], "format": "date-time" },
            "expired": { "type": "boolean" }, "groups": names } },
        "RobotWithSecret": { "allOf": [ { "$ref": "#/components/schemas/Robot" }, { "type": "object", "properties": {
            "secret": { "type": "string", "description": "The robot's password; shown once" } } } ] },
        "RobotList": { "type": "object", "properties": { "robots": { "type": "array", "items": { "$ref": "#/components/schemas/Robot" } } } },
        "RobotSecret": { "type": "object", "properties": {
            "name": { "type": "string" }, "loginName": { "type": "string" },
            "secret": { "type": "string", "description": "Shown once" } } },
        "NewAccessKey": { "type": "object", "properties": {
            "accessKeyId": { "type": "string" }, "secretAccessKey": { "type": "string", "description": "Shown once" } } },
        "AccessKeyList": { "type": "object", "properties": { "accessKeys": { "type": "array", "items": {
            "type": "object", "properties": { "accessKeyId": { "type": "string" },
                "status": { "type": "string", "enum": ["Active", "Inactive"] }, "createdAt": time } } } } },
        "AccessKeyStatus": { "type": "object", "required": ["status"], "additionalProperties": false,
            "properties": { "status": { "type": "string", "enum": ["Active", "Inactive"] } } },
    });
    if let Value::Object(m) = part {
        all.extend(m);
    }
    let part = json!({
        "CreateGroup": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": { "type": "string", "pattern": "^[A-Za-z0-9_+=,.@-]{1,64}$" } } },
        "AddMember": { "type": "object", "required": ["member"], "additionalProperties": false, "properties": {
            "member": { "type": "string", "description": "Login name: `alice` or `robot/ci`" } } },
        "Group": { "type": "object", "properties": {
            "name": { "type": "string" }, "arn": { "type": "string" }, "createdAt": time, "members": names } },
        "GroupList": { "type": "object", "properties": { "groups": { "type": "array", "items": { "$ref": "#/components/schemas/Group" } } } },
        "CreateRepository": { "type": "object", "required": ["name"], "additionalProperties": false, "properties": {
            "name": { "type": "string" },
            "imageTagMutability": { "$ref": "#/components/schemas/ImageTagMutability" },
            "imageTagMutabilityExclusionFilters": { "$ref": "#/components/schemas/ExclusionFilters" },
            "imageScanningConfiguration": { "$ref": "#/components/schemas/ImageScanningConfiguration" } } },
        "Repository": { "type": "object", "properties": {
            "repositoryName": { "type": "string" }, "repositoryArn": { "type": "string" },
            "registryId": { "type": "string" }, "createdAt": time,
            "imageTagMutability": { "$ref": "#/components/schemas/ImageTagMutability" },
            "imageTagMutabilityExclusionFilters": { "$ref": "#/components/schemas/ExclusionFilters" },
            "imageScanningConfiguration": { "$ref": "#/components/schemas/ImageScanningConfiguration" } } },
        "ImageTagMutability": { "type": "string", "default": "MUTABLE",
            "enum": ["MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"],
            "description": "Whether pushes may move existing tags to another digest; the *_WITH_EXCLUSION modes invert the rule for tags matching an exclusion filter" },
        "ExclusionFilters": { "type": "array", "maxItems": 5, "description": "Required (1 to 5) by the *_WITH_EXCLUSION modes, refused by the others",
            "items": { "type": "object", "required": ["filterType", "filter"], "additionalProperties": false, "properties": {
                "filterType": { "type": "string", "enum": ["WILDCARD"] },
                "filter": { "type": "string", "pattern": "^[0-9a-zA-Z._*-]{1,128}$", "description": "`*` matches any run of characters" } } } },
        "PutTagMutability": { "type": "object", "required": ["imageTagMutability"], "additionalProperties": false, "properties": {
            "imageTagMutability": { "$ref": "#/components/schemas/ImageTagMutability" },
            "imageTagMutabilityExclusionFilters": { "$ref": "#/components/schemas/ExclusionFilters" } } },
        "TagMutability": { "type": "object", "properties": {
            "repositoryName": { "type": "string" },
            "imageTagMutability": { "$ref": "#/components/schemas/ImageTagMutability" },
            "imageTagMutabilityExclusionFilters": { "$ref": "#/components/schemas/ExclusionFilters" } } },
        "RepositoryList": { "type": "object", "properties": {
            "repositories": { "type": "array", "items": { "$ref": "#/components/schemas/Repository" } },
            "next": { "type": ["string", "null"], "description": "Pass as `after` for the next page" } } },
    });
    if let Value::Object(m) = part {
        all.extend(m);
    }
    let severity = json!({ "type": "string", "enum": ["CRITICAL", "HIGH", "MEDIUM", "LOW", "INFORMATIONAL", "UNDEFINED"] });
    let epoch = json!({ "type": "number", "description": "Epoch seconds (ECR's timestamps)" });
    let image_id = json!({ "type": "object", "properties": {
        "imageDigest": { "type": "string" }, "imageTag": { "type": "string" } } });
    let part = json!({
        "ImageScanningConfiguration": { "type": "object", "required": ["scanOnPush"], "additionalProperties": false, "properties": {
            "scanOnPush": { "type": "boolean" } } },
        "PutScanningConfiguration": { "type": "object", "description": "PutImageScanningConfiguration's imageScanningConfiguration, or scanOnPush alone", "properties": {
            "imageScanningConfiguration": { "$ref": "#/components/schemas/ImageScanningConfiguration" },
            "scanOnPush": { "type": "boolean" } } },
        "ScanningConfiguration": { "type": "object", "properties": {
            "registryId": { "type": "string" }, "repositoryName": { "type": "string" },
            "imageScanningConfiguration": { "$ref": "#/components/schemas/ImageScanningConfiguration" } } },
        "PullGate": { "type": "object", "required": ["severityThreshold"], "additionalProperties": false, "properties": {
            "registryId": { "type": "string", "readOnly": true },
            "repositoryName": { "type": "string", "readOnly": true },
            "severityThreshold": severity,
            "allowlist": { "type": "array", "maxItems": 1000, "items": { "type": "string" }, "description": "Finding names (CVE ids, secret rule ids) that never refuse a pull" },
            "allowUnscanned": { "type": "boolean", "default": false, "description": "Whether images without a complete scan may be pulled" } } },
        "ImageRef": { "type": "object", "description": "The image: imageDigest and/or imageTag, or ECR's imageId holding them", "properties": {
            "imageDigest": { "type": "string" }, "imageTag": { "type": "string" }, "imageId": image_id } },
        "ImageScanStarted": { "type": "object", "description": "StartImageScan's answer", "properties": {
            "registryId": { "type": "string" }, "repositoryName": { "type": "string" }, "imageId": image_id,
            "imageScanStatus": { "type": "object", "properties": { "status": { "type": "string" } } } } },
        "ImageScanFindings": { "type": "object", "description": "DescribeImageScanFindings' answer", "properties": {
            "registryId": { "type": "string" }, "repositoryName": { "type": "string" },
            "imageId": image_id,
            "imageScanStatus": { "type": "object", "properties": {
                "status": { "type": "string", "enum": ["IN_PROGRESS", "COMPLETE", "FAILED", "UNSUPPORTED_IMAGE"] },
                "description": { "type": "string" } } },
            "imageScanFindings": { "type": "object", "description": "Present when the scan is COMPLETE", "properties": {
                "imageScanCompletedAt": epoch, "vulnerabilitySourceUpdatedAt": epoch,
                "findingSeverityCounts": { "type": "object", "additionalProperties": { "type": "integer" } },
                "findings": { "type": "array", "items": { "type": "object", "properties": {
                    "name": { "type": "string", "description": "CVE id, or the secret rule id (aws-access-key-id)" },
                    "severity": severity, "description": { "type": ["string", "null"] }, "uri": { "type": ["string", "null"] },
                    "attributes": { "type": "array", "items": { "type": "object", "properties": {
                        "key": { "type": "string" }, "value": { "type": "string" } } } } } } } } },
            "nextToken": { "type": "string", "description": "Opaque; pass as nextToken for the next page" } } },
        "ScanningRules": { "type": "object", "properties": {
            "scanType": { "type": "string", "enum": ["BASIC", "ENHANCED"], "default": "BASIC" },
            "rules": { "type": "array", "maxItems": 2, "items": { "type": "object", "required": ["scanFrequency", "repositoryFilters"], "properties": {
                "scanFrequency": { "type": "string", "enum": ["SCAN_ON_PUSH", "CONTINUOUS_SCAN", "MANUAL"] },
                "repositoryFilters": { "type": "array", "minItems": 1, "maxItems": 100, "items": { "type": "object", "required": ["filter"], "properties": {
                    "filter": { "type": "string", "description": "Repository name wildcard (`*`)" },
                    "filterType": { "type": "string", "enum": ["WILDCARD"] } } } } } } } } },
        "RegistryScanning": { "type": "object", "properties": {
            "registryId": { "type": "string" },
            "scanningConfiguration": { "$ref": "#/components/schemas/ScanningRules" } } },
        "PutRegistryScanning": { "type": "object", "description": "PutRegistryScanningConfiguration's answer", "properties": {
            "registryScanningConfiguration": { "$ref": "#/components/schemas/ScanningRules" } } },
        "EventList": { "type": "object", "properties": { "events": { "type": "array", "items": { "type": "object", "properties": {
            "id": { "type": "integer" }, "detailType": { "type": "string", "description": "`ECR Image Scan`" },
            "detail": { "type": "object", "description": "scan-status, repository-name, image-digest, image-tags, finding-severity-counts" },
            "createdAt": time, "deliveredAt": { "type": ["string", "null"], "format": "date-time" } } } } } },
    });
    if let Value::Object(m) = part {
        all.extend(m);
    }
    let template_members = json!({
        "prefix": { "type": "string", "description": "`ROOT` (every repository) or a repository namespace prefix; it covers the repository of that name and those under it (`prod` covers `prod/api`). A trailing `/` is dropped" },
        "description": { "type": "string", "maxLength": 256 },
        "appliedFor": { "type": "array", "minItems": 1, "items": { "type": "string", "enum": ["PULL_THROUGH_CACHE", "REPLICATION", "CREATE_ON_PUSH"] } },
        "encryptionConfiguration": { "type": "object", "properties": {
            "encryptionType": { "type": "string", "enum": ["AES256"], "description": "Berth supports AES256 only" },
            "kmsKey": { "type": "string" } } },
        "resourceTags": { "type": "array", "maxItems": 50, "items": { "type": "object", "required": ["Key", "Value"], "properties": {
            "Key": { "type": "string" }, "Value": { "type": "string" } } } },
        "imageTagMutability": { "type": "string", "enum": ["MUTABLE", "IMMUTABLE", "IMMUTABLE_WITH_EXCLUSION", "MUTABLE_WITH_EXCLUSION"] },
        "imageTagMutabilityExclusionFilters": { "type": "array", "items": { "type": "object", "properties": {
            "filterType": { "type": "string", "enum": ["WILDCARD"] }, "filter": { "type": "string" } } } },
        "repositoryPolicy": { "type": "string", "description": "A repository policy document as text (empty: none)" },
        "lifecyclePolicy": { "type": "string", "description": "A lifecycle policy document as text (empty: none)" },
        "customRoleArn": { "type": "string", "description": "Stored and returned; Berth needs no role" },
        "imageScanningConfiguration": { "type": "object", "description": "Berth extension: scan on push for the new repositories", "properties": {
            "scanOnPush": { "type": "boolean" } } } });
    // ECR's timestamps, as the ECR API answers them.
    let epoch = json!({ "type": "number", "description": "Epoch seconds" });
    let mut template = template_members.clone();
    template["createdAt"] = epoch.clone();
    template["updatedAt"] = epoch.clone();
    let part = json!({
        "RepositoryCreationTemplateInput": { "type": "object", "description": "Create: `prefix` and `appliedFor` are required. Update: the prefix comes from the path", "properties": template_members },
        "RepositoryCreationTemplate": { "type": "object", "properties": template },
        "RepositoryCreationTemplateResult": { "type": "object", "properties": {
            "registryId": { "type": "string" },
            "repositoryCreationTemplate": { "$ref": "#/components/schemas/RepositoryCreationTemplate" } } },
        "RepositoryCreationTemplateList": { "type": "object", "properties": {
            "registryId": { "type": "string" },
            "repositoryCreationTemplates": { "type": "array", "items": { "$ref": "#/components/schemas/RepositoryCreationTemplate" } },
            "next": { "type": ["string", "null"], "description": "Pass as `after` for the next page (ECR's nextToken)" } } },
    });
    if let Value::Object(m) = part {
        all.extend(m);
    }
    let part = json!({
        "PullThroughRuleInput": { "type": "object", "description": "ECR's CreatePullThroughCacheRule (or UpdatePullThroughCacheRule) members, plus Berth's revalidateSecs and quotaBytes; unknown members are ignored, as ECR ignores them", "properties": {
            "ecrRepositoryPrefix": { "type": "string", "description": "Local prefix (2 to 30 characters; a trailing / is implied)" },
            "upstreamRegistryUrl": { "type": "string", "description": "host[:port], https:// by default; http:// for private networks" },
            "upstreamRegistry": { "type": "string", "description": "Optional; must match the kind inferred from the URL" },
            "credentialArn": { "type": "string", "description": "arn:aws:secretsmanager:<region>:<registryId>:secret:ecr-pullthroughcache/<name>; <name> is a credential in [pull_through] credentials" },
            "customRoleArn": { "type": "string" },
            "upstreamRepositoryPrefix": { "type": "string" },
            "revalidateSecs": { "type": "integer", "minimum": 1, "description": "How long a cached tag is served before it is checked upstream again" },
            "quotaBytes": { "type": "integer", "minimum": 1 } } },
        "PullThroughRule": { "type": "object", "properties": {
            "ecrRepositoryPrefix": { "type": "string" }, "upstreamRegistryUrl": { "type": "string" },
            "upstreamRegistry": { "type": "string" }, "credentialArn": { "type": "string", "description": "Absent when the rule has none" },
            "customRoleArn": { "type": "string" }, "upstreamRepositoryPrefix": { "type": "string" },
            "revalidateSecs": { "type": "integer", "description": "The rule's interval, or the configured default" },
            "quotaBytes": { "type": "integer", "description": "Absent when the rule has no quota" },
            "registryId": { "type": "string" }, "createdAt": epoch, "updatedAt": epoch,
            "isValid": { "type": "boolean", "description": "With validate=true" },
            "failure": { "type": "string", "description": "With validate=true, when the upstream refused or could not be reached" } } },
        "PullThroughRuleList": { "type": "object", "properties": {
            "pullThroughCacheRules": { "type": "array", "items": { "$ref": "#/components/schemas/PullThroughRule" } },
            "next": { "type": ["string", "null"], "description": "Pass as `after` for the next page (ECR's nextToken)" } } },
    });
    if let Value::Object(m) = part {
        all.extend(m);
    }
    let part = json!({
        "GcStatus": { "type": "object", "properties": {
            "gracePeriodSecs": { "type": "integer", "description": "Delay between a blob or manifest losing a reference and its review" },
            "intervalSecs": { "type": ["number", "null"], "description": "Background pass interval; null when off" },
            "queue": { "type": "object", "properties": {
                "blobs": { "type": "integer" }, "blobsDue": { "type": "integer" },
                "manifests": { "type": "integer" }, "manifestsDue": { "type": "integer" } } },
            "sinceStart": { "type": "object", "properties": {
                "passes": { "type": "integer" }, "blobsDeleted": { "type": "integer" },
                "bytesDeleted": { "type": "integer" }, "manifestsDeleted": { "type": "integer" },
                "storageErrors": { "type": "integer" } } },
            "lastPass": { "type": ["object", "null"], "properties": {
                "blobsDeleted": { "type": "integer" }, "bytesDeleted": { "type": "integer" },
                "manifestsDeleted": { "type": "integer" }, "blobsKept": { "type": "integer" },
                "manifestsKept": { "type": "integer" }, "storageErrors": { "type": "integer" },
                "startedAt": { "type": "string", "format": "date-time" },
                "finishedAt": { "type": "string", "format": "date-time" } } } } },
        "Settings": { "type": "object", "additionalProperties": false, "properties": {
            "createOnPush": { "type": "boolean", "description": "Whether a push to a missing repository creates it (needs ecr:CreateRepository)" } } },
        "SimulationRequest": { "type": "object", "required": ["principal", "action"], "additionalProperties": false, "properties": {
            "principal": { "type": "string", "description": "Login name (`alice`, `robot/ci`), principal ARN, or `anonymous`" },
            "action": { "type": "string", "description": "`ecr:BatchGetImage` or `BatchGetImage`" },
            "repository": { "type": "string", "description": "Omit for a registry-level request" },
            "sourceIp": { "type": "string" },
            "secureTransport": { "type": "boolean" } } },
        "SimulationResult": { "type": "object", "properties": {
            "decision": { "type": "string", "enum": ["allow", "explicitDeny", "implicitDeny"] },
            "statement": { "type": ["object", "null"], "properties": {
                "source": { "type": "string", "enum": ["identity", "repository", "registry"] },
                "policy": { "type": ["string", "null"], "description": "For identity policies: user/<login> or group/<name>" },
                "sid": { "type": ["string", "null"] }, "index": { "type": "integer", "description": "0-based" },
                "description": { "type": "string" } } },
            "explanation": { "type": "string" },
            "principalArn": { "type": ["string", "null"] },
            "action": { "type": "string" }, "repository": { "type": ["string", "null"] } } },
        "SigningKeys": { "type": "object", "properties": {
            "kid": { "type": "string", "description": "After a rotation: the new signing key" },
            "keys": { "type": "array", "items": { "type": "object", "properties": {
                "kid": { "type": "string" }, "signing": { "type": "boolean" } } } } } },
        "AuditLog": { "type": "object", "properties": {
            "entries": { "type": "array", "items": { "type": "object", "properties": {
                "id": { "type": "integer" }, "time": time, "principal": { "type": "string" },
                "action": { "type": "string" }, "resource": { "type": "string" },
                "outcome": { "type": "string", "enum": ["success", "denied", "failed"] },
                "detail": { "type": "string" }, "sourceIp": { "type": ["string", "null"] },
                "credential": { "type": ["string", "null"], "enum": ["password", "robot_secret", "access_key", "ecr_password", "refresh_token", "registry_token", "scanner", null],
                    "description": "The kind of credential the call was made with (null: anonymous, or recorded before Berth recorded kinds)" } } } },
            "next": { "type": ["integer", "null"], "description": "Pass as `before` for the next page" } } },
    });
    if let Value::Object(m) = part {
        all.extend(m);
    }
    Value::Object(all)
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPS {
        let entry = paths
            .entry(op.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(op.method.into(), operation(op));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Berth admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Users, groups, robot accounts, access keys, repositories, policies, the policy simulator, \
                signing keys and the audit log. Every call needs HTTP Basic credentials (registry tokens are refused); \
                identity management is for administrators (callers allowed ecr:PutRegistryPolicy on the registry)."
        },
        "servers": [ { "url": "/" } ],
        "security": [ { "basic": [] } ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "basic": { "type": "http", "scheme": "basic" }
            },
            "schemas": schemas(),
        },
    })
}
