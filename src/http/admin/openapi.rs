//! The OpenAPI 3.1 document of the admin API. Every schema in it is generated from the Rust
//! types the handlers decode and answer (`utoipa::ToSchema` on the operations' shapes and the
//! REST API's own, [`super::shapes`]), so the document cannot drift from the wire format; what is
//! written here is the table of routes: path, operation id, summary, who may call it, and which
//! types go in and out. A test holds the table against [`super::mounted_routes`], so a route
//! added without documentation fails the tests, and a scenario checks every REST answer against
//! its schema.

use serde_json::{json, Map, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

use super::shapes::{
    CreationTemplateAnswer, CreationTemplatePage, FederatedPassword, FederatedPasswordRequest,
    ImageParam, LifecycleEventPage, LifecyclePreviewPage, PullThroughRulePage, PutPullGate,
    PutScanningConfiguration, PutTagMutability, RepositoryPage,
};
use crate::http::error::ErrorBody;
use crate::ops::identity::{Robots, Users};
use crate::ops::repositories::ListRepositorySummariesResponse;
use crate::ops::shapes::*;

/// The schemas a body needs, collected into `components/schemas`.
type Components = Vec<(String, RefOr<Schema>)>;

/// Adds `T`'s schema (and those it refers to) to the components; returns a reference to it.
fn json<T: ToSchema>(components: &mut Components) -> Value {
    T::schemas(components);
    components.push((T::name().into_owned(), T::schema()));
    json!({ "$ref": format!("#/components/schemas/{}", T::name()) })
}

/// A request or response body.
#[derive(Clone, Copy)]
enum Body {
    None,
    /// JSON of a Rust type.
    Json(fn(&mut Components) -> Value),
    /// A document stored and returned exactly as sent (a policy), or this document itself:
    /// JSON that no Rust type describes, with what it is.
    Document {
        name: &'static str,
        description: &'static str,
    },
}

const POLICY: Body = Body::Document {
    name: "PolicyDocument",
    description: "An ECR/IAM JSON policy document (Version, Statement); see policies/README.md. \
        Stored and returned exactly as sent",
};
const LIFECYCLE_POLICY: Body = Body::Document {
    name: "LifecyclePolicy",
    description: "An ECR lifecycle policy ({\"rules\": [...]}); see policies/lifecycle/README.md. \
        Stored and returned exactly as sent",
};
const OPENAPI: Body = Body::Document {
    name: "OpenApi",
    description: "An OpenAPI 3.1 document",
};

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

use Body::{Json, None as NoBody};

const OPS: &[Op] = &[
    op!("get" "/api/v1/openapi.json", "getOpenApiDocument", "This document", SIGNED_IN, NoBody => 200 OPENAPI),
    // users
    op!("post" "/api/v1/users", "createUser", "Create a user with a password", ADMIN, Json(json::<CreateUserRequest>) => 201 Json(json::<Account>)),
    op!("get" "/api/v1/users", "listUsers", "List users", ADMIN, NoBody => 200 Json(json::<UserList>)),
    op!("get" "/api/v1/users/{name}", "getUser", "Describe a user", ADMIN, NoBody => 200 Json(json::<Account>)),
    op!("delete" "/api/v1/users/{name}", "deleteUser", "Delete a user with its access keys, memberships and identity policy", ADMIN, NoBody => 204 NoBody),
    op!("put" "/api/v1/users/{name}/password", "changePassword", "Set a new password (tokens issued for the old one stop working)", ADMIN, Json(json::<ChangePasswordRequest>) => 204 NoBody),
    op!("get" "/api/v1/users/{name}/policy", "getUserPolicy", "The user's identity policy", ADMIN, NoBody => 200 POLICY),
    op!("put" "/api/v1/users/{name}/policy", "putUserPolicy", "Attach (replace) the user's identity policy", ADMIN, POLICY => 204 NoBody),
    op!("delete" "/api/v1/users/{name}/policy", "deleteUserPolicy", "Remove the user's identity policy", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/users/{name}/access-keys", "createUserAccessKey", "Create an access key; the secret is returned once", ADMIN, NoBody => 201 Json(json::<NewAccessKey>)),
    op!("get" "/api/v1/users/{name}/access-keys", "listUserAccessKeys", "List the user's access key ids", ADMIN, NoBody => 200 Json(json::<AccessKeyList>)),
    op!("delete" "/api/v1/users/{name}/access-keys/{key_id}", "deleteUserAccessKey", "Delete an access key", ADMIN, NoBody => 204 NoBody),
    op!("put" "/api/v1/users/{name}/access-keys/{key_id}", "updateUserAccessKey", "Activate or deactivate an access key (what was obtained with it stops working while it is inactive)", ADMIN, Json(json::<UpdateAccessKeyRequest<Users>>) => 204 NoBody),
    // robots
    op!("post" "/api/v1/robots", "createRobot", "Create a robot account; its generated secret is returned once", ADMIN, Json(json::<CreateRobotRequest>) => 201 Json(json::<CreatedRobot>)),
    op!("get" "/api/v1/robots", "listRobots", "List robot accounts", ADMIN, NoBody => 200 Json(json::<RobotList>)),
    op!("get" "/api/v1/robots/{name}", "getRobot", "Describe a robot account", ADMIN, NoBody => 200 Json(json::<Account>)),
    op!("delete" "/api/v1/robots/{name}", "deleteRobot", "Delete a robot account", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/robots/{name}/secret", "regenerateRobotSecret", "Generate a new secret (returned once); the old one and its tokens stop working", ADMIN, NoBody => 200 Json(json::<RobotSecret>)),
    op!("get" "/api/v1/robots/{name}/policy", "getRobotPolicy", "The robot's identity policy", ADMIN, NoBody => 200 POLICY),
    op!("put" "/api/v1/robots/{name}/policy", "putRobotPolicy", "Attach (replace) the robot's identity policy", ADMIN, POLICY => 204 NoBody),
    op!("delete" "/api/v1/robots/{name}/policy", "deleteRobotPolicy", "Remove the robot's identity policy", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/robots/{name}/access-keys", "createRobotAccessKey", "Create an access key; the secret is returned once", ADMIN, NoBody => 201 Json(json::<NewAccessKey>)),
    op!("get" "/api/v1/robots/{name}/access-keys", "listRobotAccessKeys", "List the robot's access key ids", ADMIN, NoBody => 200 Json(json::<AccessKeyList>)),
    op!("delete" "/api/v1/robots/{name}/access-keys/{key_id}", "deleteRobotAccessKey", "Delete an access key", ADMIN, NoBody => 204 NoBody),
    op!("put" "/api/v1/robots/{name}/access-keys/{key_id}", "updateRobotAccessKey", "Activate or deactivate an access key (what was obtained with it stops working while it is inactive)", ADMIN, Json(json::<UpdateAccessKeyRequest<Robots>>) => 204 NoBody),
    // groups
    op!("post" "/api/v1/groups", "createGroup", "Create a group", ADMIN, Json(json::<CreateGroupRequest>) => 201 Json(json::<Group>)),
    op!("get" "/api/v1/groups", "listGroups", "List groups with their members", ADMIN, NoBody => 200 Json(json::<GroupList>)),
    op!("get" "/api/v1/groups/{name}", "getGroup", "Describe a group with its members", ADMIN, NoBody => 200 Json(json::<Group>)),
    op!("delete" "/api/v1/groups/{name}", "deleteGroup", "Delete a group with its memberships and identity policy", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/groups/{name}/members", "addGroupMember", "Add a user or robot (login name) to the group", ADMIN, Json(json::<AddGroupMemberRequest>) => 200 Json(json::<Group>)),
    op!("delete" "/api/v1/groups/{name}/members/{member}", "removeGroupMember", "Remove a member (login name; robot/<name> for robots)", ADMIN, NoBody => 204 NoBody),
    op!("get" "/api/v1/groups/{name}/policy", "getGroupPolicy", "The group's identity policy", ADMIN, NoBody => 200 POLICY),
    op!("put" "/api/v1/groups/{name}/policy", "putGroupPolicy", "Attach (replace) the group's identity policy; it applies to every member", ADMIN, POLICY => 204 NoBody),
    op!("delete" "/api/v1/groups/{name}/policy", "deleteGroupPolicy", "Remove the group's identity policy", ADMIN, NoBody => 204 NoBody),
    // repositories
    op!("post" "/api/v1/repositories", "createRepository", "Create a repository", "ecr:CreateRepository on the repository", Json(json::<CreateRepositoryRequest>) => 201 Json(json::<Repository>)),
    op!("get" "/api/v1/repositories", "listRepositories", "Repositories the caller may describe, by name", "any signed-in caller; each repository needs ecr:DescribeRepositories", NoBody => 200 Json(json::<RepositoryPage>),
        &[("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("after", "string", "List names after this one (the previous page's `next`)")]),
    op!("get" "/api/v1/repository-summaries", "listRepositorySummaries", "Repositories the caller may describe whose names start with a prefix, by name, with their image count, stored bytes, last push and last pull (for the console's listing)", "any signed-in caller; each repository needs ecr:DescribeRepositories", NoBody => 200 Json(json::<ListRepositorySummariesResponse>),
        &[("prefix", "string", "Only names starting with this"), ("maxResults", "integer", "Page size, 1 to 1000 (default 100)"), ("nextToken", "string", "The previous page's nextToken (same prefix)")]),
    op!("get" "/api/v1/repositories/{name}", "describeRepository", "Describe a repository", "ecr:DescribeRepositories on the repository", NoBody => 200 Json(json::<Repository>)),
    op!("delete" "/api/v1/repositories/{name}", "deleteRepository", "Delete a repository (with force, also one that holds images)", "ecr:DeleteRepository on the repository", NoBody => 200 Json(json::<Repository>),
        &[("force", "boolean", "Delete even if the repository holds images")]),
    // policies
    op!("get" "/api/v1/repositories/{name}/tag-mutability", "getTagMutability", "The repository's tag mutability (ECR's imageTagMutability and exclusion filters)", "ecr:DescribeRepositories on the repository", NoBody => 200 Json(json::<PutImageTagMutabilityResponse>)),
    op!("put" "/api/v1/repositories/{name}/tag-mutability", "putTagMutability", "Set the repository's tag mutability (as ECR's PutImageTagMutability)", "ecr:PutImageTagMutability on the repository", Json(json::<PutTagMutability>) => 200 Json(json::<PutImageTagMutabilityResponse>)),
    op!("get" "/api/v1/repository-policies/{name}", "getRepositoryPolicy", "The repository policy, exactly as stored (GetRepositoryPolicy's policyText); 404 with ECR's message when there is none", "ecr:GetRepositoryPolicy on the repository", NoBody => 200 POLICY),
    op!("put" "/api/v1/repository-policies/{name}", "setRepositoryPolicy", "Set (replace) the repository policy (SetRepositoryPolicy); refused naming the statement and field when invalid", "ecr:SetRepositoryPolicy on the repository", POLICY => 204 NoBody),
    op!("delete" "/api/v1/repository-policies/{name}", "deleteRepositoryPolicy", "Remove the repository policy (DeleteRepositoryPolicy)", "ecr:DeleteRepositoryPolicy on the repository", NoBody => 204 NoBody),
    // lifecycle policies
    op!("get" "/api/v1/repositories/{name}/lifecycle-policy", "getLifecyclePolicy", "The lifecycle policy, exactly as saved", "ecr:GetLifecyclePolicy on the repository", NoBody => 200 LIFECYCLE_POLICY),
    op!("put" "/api/v1/repositories/{name}/lifecycle-policy", "putLifecyclePolicy", "Set (replace) the lifecycle policy; refused with the rule and field when invalid", "ecr:PutLifecyclePolicy on the repository", LIFECYCLE_POLICY => 204 NoBody),
    op!("delete" "/api/v1/repositories/{name}/lifecycle-policy", "deleteLifecyclePolicy", "Remove the lifecycle policy", "ecr:DeleteLifecyclePolicy on the repository", NoBody => 204 NoBody),
    op!("post" "/api/v1/repositories/{name}/lifecycle/preview", "startLifecyclePolicyPreview", "Evaluate the policy in the body (or the saved one when the body is empty) now, expiring nothing; kept as the last preview, which GET answers (ECR's StartLifecyclePolicyPreview)", "ecr:StartLifecyclePolicyPreview on the repository", LIFECYCLE_POLICY => 200 Json(json::<StartLifecyclePolicyPreviewResponse>)),
    op!("get" "/api/v1/repositories/{name}/lifecycle/preview", "getLifecyclePolicyPreview", "The last preview's results, paginated (ECR's GetLifecyclePolicyPreview; `next` is its nextToken)", "ecr:GetLifecyclePolicyPreview on the repository", NoBody => 200 Json(json::<LifecyclePreviewPage>),
        &[("limit", "integer", "Page size, 1 to 100 (default 100)"), ("after", "string", "The previous page's `next`"), ("tagStatus", "string", "TAGGED, UNTAGGED or ANY (default)")]),
    op!("post" "/api/v1/repositories/{name}/lifecycle/evaluate", "previewLifecyclePolicy", "What the policy in the body (or the saved one when the body is empty) would expire now, answered at once and kept nowhere (the last preview stays as it was; audited as ecr:StartLifecyclePolicyPreview)", "ecr:StartLifecyclePolicyPreview on the repository", LIFECYCLE_POLICY => 200 Json(json::<PreviewLifecyclePolicyResponse>),
        &[("limit", "integer", "At most this many results, oldest first, 1 to 1000 (default 100); the summary counts them all")]),
    op!("post" "/api/v1/repositories/{name}/lifecycle/run", "runLifecyclePolicy", "Run the saved lifecycle policy now (audited as ecr:PutLifecyclePolicy)", "ecr:PutLifecyclePolicy on the repository", NoBody => 200 Json(json::<RunLifecyclePolicyResponse>)),
    // scanning
    op!("get" "/api/v1/repositories/{name}/scanning-configuration", "getImageScanningConfiguration", "Whether pushes to the repository are scanned (PutImageScanningConfiguration's answer, read with DescribeRepositories)", "ecr:DescribeRepositories on the repository", NoBody => 200 Json(json::<PutImageScanningConfigurationResponse>)),
    op!("put" "/api/v1/repositories/{name}/scanning-configuration", "putImageScanningConfiguration", "Turn scan on push on or off (as ECR's PutImageScanningConfiguration)", "ecr:PutImageScanningConfiguration on the repository", Json(json::<PutScanningConfiguration>) => 200 Json(json::<PutImageScanningConfigurationResponse>)),
    op!("get" "/api/v1/repositories/{name}/pull-gate", "getPullGate", "The repository's pull gate (404 when it has none)", "ecr:DescribeRepositories on the repository", NoBody => 200 Json(json::<PullGateResponse>)),
    op!("put" "/api/v1/repositories/{name}/pull-gate", "putPullGate", "Refuse pulls (403 DENIED) of images with findings at or above a severity, except allowlisted findings; and, unless allowUnscanned, of images without a complete scan. Applies within 2 s on every replica", "ecr:PutImageScanningConfiguration on the repository", Json(json::<PutPullGate>) => 200 Json(json::<PullGateResponse>)),
    op!("delete" "/api/v1/repositories/{name}/pull-gate", "deletePullGate", "Remove the pull gate", "ecr:PutImageScanningConfiguration on the repository", NoBody => 204 NoBody),
    op!("post" "/api/v1/repositories/{name}/image-scans", "startImageScan", "Scan an image now (as ECR's StartImageScan, with no daily limit); the result arrives in scan-findings", "ecr:StartImageScan on the repository", Json(json::<ImageParam>) => 202 Json(json::<StartImageScanResponse>)),
    op!("get" "/api/v1/repositories/{name}/scan-findings", "describeImageScanFindings", "An image's scan status and findings: ECR's DescribeImageScanFindings, the same answer and page tokens", "ecr:DescribeImageScanFindings on the repository", NoBody => 200 Json(json::<DescribeImageScanFindingsResponse>),
        &[("imageDigest", "string", "The image's digest (or give imageTag)"), ("imageTag", "string", "A tag of the image"), ("maxResults", "integer", "Page size, 1 to 1000 (default 100)"), ("nextToken", "string", "The previous page's nextToken (the ECR API's tokens work too)"), ("severity", "string", "Only findings of this severity (the counts stay the whole scan's)")]),
    op!("get" "/api/v1/registry/scanning-configuration", "getRegistryScanningConfiguration", "Registry scanning rules (ECR's GetRegistryScanningConfiguration)", "ecr:GetRegistryScanningConfiguration on the registry", NoBody => 200 Json(json::<GetRegistryScanningConfigurationResponse>)),
    op!("put" "/api/v1/registry/scanning-configuration", "putRegistryScanningConfiguration", "Replace the registry scanning rules: repositories matching a SCAN_ON_PUSH (or CONTINUOUS_SCAN) rule scan on push, as do repositories whose own flag is on", "ecr:PutRegistryScanningConfiguration on the registry", Json(json::<PutRegistryScanningConfigurationRequest>) => 200 Json(json::<PutRegistryScanningConfigurationResponse>)),
    // repository creation templates
    op!("post" "/api/v1/repository-creation-templates", "createRepositoryCreationTemplate", "Create a repository creation template (as ECR's CreateRepositoryCreationTemplate): the settings repositories under its prefix get when Berth creates them (on push, for a pull-through cache)", "ecr:CreateRepositoryCreationTemplate on the registry", Json(json::<CreateRepositoryCreationTemplateRequest>) => 201 Json(json::<RepositoryCreationTemplateResponse>)),
    op!("get" "/api/v1/repository-creation-templates", "describeRepositoryCreationTemplates", "Repository creation templates by prefix (byte order), paginated", "ecr:DescribeRepositoryCreationTemplates on the registry", NoBody => 200 Json(json::<CreationTemplatePage>),
        &[("prefix", "string", "Only this prefix (repeatable)"), ("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("after", "string", "The previous page's `next` token (ECR's nextToken)")]),
    op!("get" "/api/v1/repository-creation-templates/{prefix}", "getRepositoryCreationTemplate", "One repository creation template (DescribeRepositoryCreationTemplates of its prefix); 404 if the prefix has none", "ecr:DescribeRepositoryCreationTemplates on the registry", NoBody => 200 Json(json::<CreationTemplateAnswer>)),
    op!("put" "/api/v1/repository-creation-templates/{prefix}", "updateRepositoryCreationTemplate", "Update a template (as ECR's UpdateRepositoryCreationTemplate): the members given replace the stored ones; the path names the template (a body `prefix` naming another is refused)", "ecr:UpdateRepositoryCreationTemplate on the registry", Json(json::<UpdateRepositoryCreationTemplateRequest>) => 200 Json(json::<RepositoryCreationTemplateResponse>)),
    op!("delete" "/api/v1/repository-creation-templates/{prefix}", "deleteRepositoryCreationTemplate", "Delete a template; answers the deleted template", "ecr:DeleteRepositoryCreationTemplate on the registry", NoBody => 200 Json(json::<RepositoryCreationTemplateResponse>)),
    op!("get" "/api/v1/events", "listEvents", "Outbox records (scan results as EventBridge's `ECR Image Scan` detail), oldest first", ADMIN, NoBody => 200 Json(json::<EventList>),
        &[("after", "integer", "Records after this id"), ("limit", "integer", "Page size, 1 to 1000 (default 100)")]),
    // event rules
    op!("post" "/api/v1/event-rules", "createEventRule", "Create an event rule: an EventBridge event pattern and 1 to 5 targets (webhooks signed as Standard Webhooks, NATS subjects), each receiving EventBridge's envelope or a CloudEvent", ADMIN, Json(json::<EventRuleInput>) => 201 Json(json::<EventRuleResponse>)),
    op!("get" "/api/v1/event-rules", "listEventRules", "Every event rule, by name (secrets and header values `<redacted>`)", ADMIN, NoBody => 200 Json(json::<EventRuleList>)),
    op!("get" "/api/v1/event-rules/{name}", "getEventRule", "One event rule (secrets and header values `<redacted>`)", ADMIN, NoBody => 200 Json(json::<EventRuleResponse>)),
    op!("put" "/api/v1/event-rules/{name}", "putEventRule", "Create (201) or replace (200) an event rule; `<redacted>` keeps a stored secret or header value; deliveries of removed targets are dropped", ADMIN, Json(json::<EventRuleInput>) => 200 Json(json::<EventRuleResponse>)),
    op!("delete" "/api/v1/event-rules/{name}", "deleteEventRule", "Delete an event rule with its pending deliveries and dead letters", ADMIN, NoBody => 204 NoBody),
    op!("post" "/api/v1/event-rules/{name}/test", "testEventRule", "Match an event (default: a sample image push) against the rule's pattern and show what each target would receive", ADMIN, Json(json::<TestEventRuleRequest>) => 200 Json(json::<TestEventRuleResponse>)),
    op!("get" "/api/v1/event-rules/{name}/status", "getEventDeliveryStatus", "Deliveries per target: delivered, pending, dead-lettered, the oldest pending event's age", ADMIN, NoBody => 200 Json(json::<EventDeliveryStatus>)),
    op!("get" "/api/v1/event-rules/{name}/dead-letters", "listDeadLetters", "Deliveries given up on after the retry window, oldest first, with their events", ADMIN, NoBody => 200 Json(json::<DeadLetterPage>),
        &[("target", "string", "Only this target's"), ("after", "integer", "The previous page's `next`"), ("limit", "integer", "Page size, 1 to 1000 (default 100)")]),
    op!("post" "/api/v1/event-rules/{name}/redrive", "redriveDeadLetters", "Make dead letters pending again with a fresh retry window (all, one target's, or the `ids` given)", ADMIN, Json(json::<RedriveDeadLettersRequest>) => 200 Json(json::<RedriveDeadLettersResponse>)),
    // pull-through cache rules
    op!("post" "/api/v1/pull-through-rules", "createPullThroughCacheRule", "Serve repositories under a local prefix from an upstream registry (ECR's CreatePullThroughCacheRule, plus revalidateSecs and quotaBytes)", "ecr:CreatePullThroughCacheRule on the registry", Json(json::<CreatePullThroughCacheRuleRequest>) => 201 Json(json::<PullThroughCacheRule>)),
    op!("get" "/api/v1/pull-through-rules", "describePullThroughCacheRules", "Pull-through cache rules by prefix (byte order), paginated (ECR's DescribePullThroughCacheRules)", "ecr:DescribePullThroughCacheRules on the registry", NoBody => 200 Json(json::<PullThroughRulePage>),
        &[("prefix", "string", "Only this rule, which must exist (repeatable)"), ("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("after", "string", "The previous page's `next` token (ECR's nextToken)")]),
    op!("get" "/api/v1/pull-through-rules/{prefix}", "getPullThroughCacheRule", "One rule (DescribePullThroughCacheRules of its prefix); with validate=true, ValidatePullThroughCacheRule: reach the upstream with its credential (isValid, failure)", "ecr:DescribePullThroughCacheRules (ecr:ValidatePullThroughCacheRule with validate) on the registry", NoBody => 200 Json(json::<PullThroughCacheRule>),
        &[("validate", "boolean", "Reach the upstream and report isValid and failure")]),
    op!("put" "/api/v1/pull-through-rules/{prefix}", "updatePullThroughCacheRule", "Change a rule's credentialArn and customRoleArn (both replaced), revalidateSecs or quotaBytes (when given), as ECR's UpdatePullThroughCacheRule; the upstream cannot change, and the path names the rule", "ecr:UpdatePullThroughCacheRule on the registry", Json(json::<UpdatePullThroughCacheRuleRequest>) => 200 Json(json::<PullThroughCacheRule>)),
    op!("delete" "/api/v1/pull-through-rules/{prefix}", "deletePullThroughCacheRule", "Remove a rule (ECR's DeletePullThroughCacheRule); answers the deleted rule; its cached repositories stay", "ecr:DeletePullThroughCacheRule on the registry", NoBody => 200 Json(json::<PullThroughCacheRule>)),
    op!("get" "/api/v1/lifecycle/audit", "listLifecycleEvents", "Images expired by lifecycle policies, oldest first", "ecr:GetLifecyclePolicy on the repository (on every repository without `repository`)", NoBody => 200 Json(json::<LifecycleEventPage>),
        &[("repository", "string", "Only this repository"), ("imageDigest", "string", "Only this image's entries"), ("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("after", "string", "The previous page's `next`")]),
    op!("get" "/api/v1/registry-policy", "getRegistryPolicy", "The registry policy, exactly as stored (GetRegistryPolicy's policyText)", "ecr:GetRegistryPolicy on the registry", NoBody => 200 POLICY),
    op!("put" "/api/v1/registry-policy", "putRegistryPolicy", "Set (replace) the registry policy (PutRegistryPolicy)", "ecr:PutRegistryPolicy on the registry", POLICY => 204 NoBody),
    op!("delete" "/api/v1/registry-policy", "deleteRegistryPolicy", "Remove the registry policy (DeleteRegistryPolicy)", "ecr:DeleteRegistryPolicy on the registry", NoBody => 204 NoBody),
    // the rest
    op!("get" "/api/v1/settings", "getSettings", "Registry settings", ADMIN, NoBody => 200 Json(json::<Settings>)),
    op!("put" "/api/v1/settings", "putSettings", "Change the settings present in the body", ADMIN, Json(json::<PutSettingsRequest>) => 200 Json(json::<Settings>)),
    op!("post" "/api/v1/policy-simulator", "simulatePolicy", "Decide one ECR action for a principal with the stored policies", ADMIN, Json(json::<SimulatePolicyRequest>) => 200 Json(json::<PolicySimulation>)),
    op!("get" "/api/v1/signing-keys", "listSigningKeys", "Ids of the keys tokens are verified with, the signing one first", ADMIN, NoBody => 200 Json(json::<SigningKeys>)),
    op!("get" "/api/v1/federation/registries", "listTrustedRegistries", "The registries this one trusts ([federation]), with the keys last read from each and why the last read failed, if it did", ADMIN, NoBody => 200 Json(json::<TrustedRegistryList>)),
    op!("post" "/api/v1/federation/passwords", "getFederatedPassword", "A short-lived password for a registry this one trusts (GetAuthorizationToken with registryIds): `docker login <proxy_endpoint> -u AWS` with it; that registry decides every request with its own policies", "ecr:GetAuthorizationToken on the registry", Json(json::<FederatedPasswordRequest>) => 200 Json(json::<FederatedPassword>)),
    op!("get" "/api/v1/replication", "getReplicationConfiguration", "The replication configuration (DescribeRegistry's replicationConfiguration)", "ecr:DescribeRegistry on the registry", NoBody => 200 Json(json::<ReplicationConfiguration>)),
    op!("put" "/api/v1/replication", "putReplicationConfiguration", "Replace the replication configuration (PutReplicationConfiguration), with Berth's PREFIX_NOT_MATCH and LITERAL_MATCH filters allowed; destinations must be trusted registries ([federation])", "ecr:PutReplicationConfiguration on the registry", Json(json::<ReplicationConfiguration>) => 200 Json(json::<ReplicationConfiguration>)),
    op!("get" "/api/v1/replication/tasks", "listReplicationTasks", "Replication tasks not yet complete (waiting, being sent, failed), oldest first", "ecr:DescribeRegistry on the registry", NoBody => 200 Json(json::<ReplicationTaskPage>),
        &[("after", "integer", "The previous page's `next`"), ("limit", "integer", "Page size, 1 to 1000 (default 100)")]),
    op!("get" "/api/v1/replication/status", "getImageReplicationStatus", "An image's replication status per destination (DescribeImageReplicationStatus), with non-Berth targets named", "ecr:DescribeImageReplicationStatus on the repository", NoBody => 200 Json(json::<DescribeImageReplicationStatusResponse>),
        &[("repository", "string", "The repository"), ("digest", "string", "The image digest"), ("tag", "string", "Or the image tag")]),
    op!("post" "/api/v1/replication/backfill", "startReplicationBackfill", "Replicate images pushed before the rules: every tag and referrer the rules select now that has no task yet gets one; progress shows in /api/v1/replication/tasks", "ecr:PutReplicationConfiguration on the registry", NoBody => 200 Json(json::<StartReplicationBackfillResponse>)),
    op!("post" "/api/v1/replication/retry", "retryReplication", "Start failed replication tasks again (all, one repository's, or one image's)", "ecr:PutReplicationConfiguration on the registry", Json(json::<RetryReplicationRequest>) => 200 Json(json::<RetryReplicationResponse>)),
    op!("post" "/api/v1/signing-keys/rotate", "rotateSigningKey", "Sign with a new key; earlier keys verify until their tokens expire", ADMIN, NoBody => 200 Json(json::<SigningKeys>)),
    op!("get" "/api/v1/audit", "listAuditEvents", "The audit log, newest first", ADMIN, NoBody => 200 Json(json::<AuditLog>),
        &[("limit", "integer", "Page size, 1 to 1000 (default 100)"), ("before", "integer", "Entries older than this entry id (the previous page's `next`)"), ("principal", "string", "Only this principal (`alice`, `robot/ci`, `anonymous`)"), ("action", "string", "Only this action (`ecr:PutImage`)"), ("resource", "string", "Only resources containing this text (ASCII case ignored)"), ("outcome", "string", "Only `success`, `denied` or `failed`"), ("since", "string", "At or after this RFC 3339 time"), ("until", "string", "Before this RFC 3339 time")]),
    op!("get" "/api/v1/gc", "getGcStatus", "Garbage collection: review queues, and what this server reclaimed since it started and in its last pass", ADMIN, NoBody => 200 Json(json::<GcStatusResponse>)),
];

fn content(
    body: Body,
    components: &mut Components,
    documents: &mut Map<String, Value>,
) -> Option<Value> {
    let schema = match body {
        Body::None => return None,
        Body::Json(schema) => schema(components),
        Body::Document { name, description } => {
            documents.insert(
                name.into(),
                json!({ "type": "object", "description": description }),
            );
            json!({ "$ref": format!("#/components/schemas/{name}") })
        }
    };
    Some(json!({ "application/json": { "schema": schema } }))
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

fn operation(op: &Op, components: &mut Components, documents: &mut Map<String, Value>) -> Value {
    let mut responses = Map::new();
    let mut success = json!({ "description": op.summary });
    if let Some(c) = content(op.response, components, documents) {
        success["content"] = c;
    }
    responses.insert(op.status.to_string(), success);
    let error = content(Json(json::<ErrorBody>), components, documents);
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
            json!({ "description": description, "content": error }),
        );
    }
    let mut v = json!({
        "operationId": op.id,
        "summary": op.summary,
        "description": format!("Permission: {}.", op.permission),
        "parameters": parameters(op),
        "responses": responses,
    });
    if let Some(c) = content(op.request, components, documents) {
        v["requestBody"] = json!({ "required": true, "content": c });
    }
    v
}

/// ECR's timestamps are `ops::shapes::Timestamp`, an alias of `f64` that the derive names by
/// its target: such references become one documented `Timestamp` schema.
fn retarget_timestamps(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("$ref").and_then(Value::as_str) == Some("#/components/schemas/f64") {
                map.insert("$ref".into(), "#/components/schemas/Timestamp".into());
            }
            map.values_mut().for_each(retarget_timestamps);
        }
        Value::Array(items) => items.iter_mut().for_each(retarget_timestamps),
        _ => {}
    }
}

/// The OpenAPI 3.1 document.
pub fn document() -> Value {
    let mut paths = Map::new();
    let mut components = Components::new();
    let mut schemas = Map::new();
    for op in OPS {
        let operation = operation(op, &mut components, &mut schemas);
        let entry = paths
            .entry(op.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(obj) = entry.as_object_mut() {
            obj.insert(op.method.into(), operation);
        }
    }
    for (name, schema) in components {
        let mut schema = serde_json::to_value(schema).expect("schemas serialize");
        retarget_timestamps(&mut schema);
        if let Some(earlier) = schemas.insert(name.clone(), schema.clone()) {
            // Two Rust types with one name would make one of the references lie.
            assert_eq!(earlier, schema, "two different schemas are named {name}");
        }
    }
    if schemas.remove("f64").is_some() {
        schemas.insert(
            "Timestamp".into(),
            json!({ "type": "number", "description": "Seconds since the epoch (ECR's timestamps)" }),
        );
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
            "schemas": schemas,
        },
    })
}
