//! The admin API's handlers, each naming the method and path it serves: every one maps the
//! path, query and body onto a control-plane operation's request, runs it with
//! [`OpCall::run`] (the gate, the operation, the audit record) and shapes the answer (the
//! operations' shapes, or the REST API's own pages in [`super::shapes`]).

use std::marker::PhantomData;

use axum::extract::{Path, RawQuery};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::shapes::{
    CreationTemplateAnswer, CreationTemplatePage, FederatedPassword, FederatedPasswordRequest,
    ImageParam, LifecycleEventPage, LifecyclePreviewPage, PullThroughRulePage, PutPullGate,
    PutScanningConfiguration, PutTagMutability, RepositoryPage,
};
use super::{decode, text, OpCall, Payload, Routes};
use crate::error::{Error, Result};
use crate::ops::identity::{AccountKind, Groups, PolicyHolder, Robots, Users};
use crate::ops::repositories::ListRepositorySummariesRequest;
use crate::ops::shapes::{
    AddGroupMemberRequest, ChangePasswordRequest, CreateAccessKeyRequest, CreateEventRuleRequest,
    CreateGroupRequest, CreatePullThroughCacheRuleRequest, CreateRepositoryCreationTemplateRequest,
    CreateRepositoryRequest, CreateRobotRequest, CreateUserRequest, DeleteAccessKeyRequest,
    DeleteAccountRequest, DeleteEventRuleRequest, DeleteGroupRequest, DeleteIdentityPolicyRequest,
    DeleteLifecyclePolicyRequest, DeletePullGateRequest, DeletePullThroughCacheRuleRequest,
    DeleteRegistryPolicyRequest, DeleteRepositoryCreationTemplateRequest,
    DeleteRepositoryPolicyRequest, DeleteRepositoryRequest, DescribeImageReplicationStatusRequest,
    DescribeImageScanFindingsRequest, DescribePullThroughCacheRulesRequest,
    DescribeRegistryRequest, DescribeRepositoriesRequest,
    DescribeRepositoryCreationTemplatesRequest, EventRuleInput, GetAccountRequest,
    GetAuthorizationTokenRequest, GetEventDeliveryStatusRequest, GetEventRuleRequest,
    GetGcStatusRequest, GetGroupRequest, GetIdentityPolicyRequest,
    GetLifecyclePolicyPreviewRequest, GetLifecyclePolicyRequest, GetOpenApiDocumentRequest,
    GetPullGateRequest, GetRegistryPolicyRequest, GetRegistryScanningConfigurationRequest,
    GetRepositoryPolicyRequest, GetSettingsRequest, Grammar, ImageIdentifier,
    ImageScanningConfiguration, ListAccessKeysRequest, ListAccountsRequest, ListAuditEventsRequest,
    ListDeadLettersRequest, ListEventRulesRequest, ListEventsRequest, ListGroupsRequest,
    ListLifecycleEventsRequest, ListReplicationTasksRequest, ListSigningKeysRequest,
    ListTrustedRegistriesRequest, PreviewLifecyclePolicyRequest, PutEventRuleRequest,
    PutIdentityPolicyRequest, PutImageScanningConfigurationRequest,
    PutImageScanningConfigurationResponse, PutImageTagMutabilityRequest,
    PutImageTagMutabilityResponse, PutLifecyclePolicyRequest, PutPullGateRequest,
    PutRegistryPolicyRequest, PutRegistryScanningConfigurationRequest,
    PutReplicationConfigurationRequest, PutSettingsRequest, RedriveDeadLettersRequest,
    RegenerateRobotSecretRequest, RemoveGroupMemberRequest, ReplicationGrammar, Repository,
    RetryReplicationRequest, RotateSigningKeyRequest, RunLifecyclePolicyRequest,
    SetRepositoryPolicyRequest, SimulatePolicyRequest, StartImageScanRequest,
    StartLifecyclePolicyPreviewRequest, StartReplicationBackfillRequest, TagStatusFilter,
    TestEventRuleRequest, UpdateAccessKeyRequest, UpdatePullThroughCacheRuleRequest,
    UpdateRepositoryCreationTemplateRequest, ValidatePullThroughCacheRuleRequest,
};

type Reply = std::result::Result<Response, super::ApiError>;

/// The routes users and robot accounts share, with their kind's paths.
struct AccountPaths {
    collection: &'static str,
    item: &'static str,
    policy: &'static str,
    keys: &'static str,
    key: &'static str,
}

const USER_PATHS: AccountPaths = AccountPaths {
    collection: "/api/v1/users",
    item: "/api/v1/users/{name}",
    policy: "/api/v1/users/{name}/policy",
    keys: "/api/v1/users/{name}/access-keys",
    key: "/api/v1/users/{name}/access-keys/{key_id}",
};

const ROBOT_PATHS: AccountPaths = AccountPaths {
    collection: "/api/v1/robots",
    item: "/api/v1/robots/{name}",
    policy: "/api/v1/robots/{name}/policy",
    keys: "/api/v1/robots/{name}/access-keys",
    key: "/api/v1/robots/{name}/access-keys/{key_id}",
};

/// Listing, reading, deleting, the identity policy and access keys of one account kind.
fn account_routes<K: AccountKind>(r: Routes, paths: &AccountPaths) -> Routes {
    r.get(paths.collection, list_accounts::<K>)
        .get(paths.item, get_account::<K>)
        .delete(paths.item, delete_account::<K>)
        .get(paths.policy, get_identity_policy::<K>)
        .put(paths.policy, put_identity_policy::<K>)
        .delete(paths.policy, delete_identity_policy::<K>)
        .post(paths.keys, create_access_key::<K>)
        .get(paths.keys, list_access_keys::<K>)
        .delete(paths.key, delete_access_key::<K>)
        .put(paths.key, update_access_key::<K>)
}

/// Mounts every admin route (full paths; `{*name}` segments may contain `/`).
pub(super) fn mount(r: Routes) -> Routes {
    let r = r.get("/api/v1/openapi.json", openapi);
    // users and robot accounts
    let r = account_routes::<Users>(r, &USER_PATHS)
        .post(USER_PATHS.collection, create_user)
        .put("/api/v1/users/{name}/password", change_password);
    account_routes::<Robots>(r, &ROBOT_PATHS)
        .post(ROBOT_PATHS.collection, create_robot)
        .post("/api/v1/robots/{name}/secret", regenerate_robot_secret)
        // groups
        .post("/api/v1/groups", create_group)
        .get("/api/v1/groups", list_groups)
        .get("/api/v1/groups/{name}", get_group)
        .delete("/api/v1/groups/{name}", delete_group)
        .post("/api/v1/groups/{name}/members", add_group_member)
        .delete(
            "/api/v1/groups/{name}/members/{*member}",
            remove_group_member,
        )
        .get(
            "/api/v1/groups/{name}/policy",
            get_identity_policy::<Groups>,
        )
        .put(
            "/api/v1/groups/{name}/policy",
            put_identity_policy::<Groups>,
        )
        .delete(
            "/api/v1/groups/{name}/policy",
            delete_identity_policy::<Groups>,
        )
        // repositories
        .post("/api/v1/repositories", create_repository)
        .get("/api/v1/repositories", list_repositories)
        .get("/api/v1/repository-summaries", repository_summaries)
        .get("/api/v1/repositories/{*name}", describe_repository)
        .delete("/api/v1/repositories/{*name}", delete_repository)
        // sub-resources: public `/api/v1/repositories/{name}/tag-mutability` (see `super::SUB_RESOURCES`)
        .get(
            "/api/v1/repository-tag-mutability/{*name}",
            get_tag_mutability,
        )
        .put(
            "/api/v1/repository-tag-mutability/{*name}",
            put_tag_mutability,
        )
        // policies
        .get("/api/v1/repository-policies/{*name}", get_repository_policy)
        .put("/api/v1/repository-policies/{*name}", put_repository_policy)
        .delete(
            "/api/v1/repository-policies/{*name}",
            delete_repository_policy,
        )
        // lifecycle policies (public paths /api/v1/repositories/{name}/lifecycle-policy,
        // .../lifecycle/preview and .../lifecycle/run are rewritten to these)
        .get(
            "/api/v1/repository-lifecycle-policy/{*name}",
            get_lifecycle_policy,
        )
        .put(
            "/api/v1/repository-lifecycle-policy/{*name}",
            put_lifecycle_policy,
        )
        .delete(
            "/api/v1/repository-lifecycle-policy/{*name}",
            delete_lifecycle_policy,
        )
        .post(
            "/api/v1/repository-lifecycle-preview/{*name}",
            start_lifecycle_preview,
        )
        .get(
            "/api/v1/repository-lifecycle-preview/{*name}",
            get_lifecycle_preview,
        )
        .post("/api/v1/repository-lifecycle-run/{*name}", run_lifecycle)
        .post(
            "/api/v1/repository-lifecycle-evaluate/{*name}",
            evaluate_lifecycle,
        )
        // scanning (public paths /api/v1/repositories/{name}/scanning-configuration,
        // .../pull-gate, .../image-scans and .../scan-findings)
        .get(
            "/api/v1/repository-scanning-configuration/{*name}",
            get_scanning_configuration,
        )
        .put(
            "/api/v1/repository-scanning-configuration/{*name}",
            put_scanning_configuration,
        )
        .get("/api/v1/repository-pull-gate/{*name}", get_pull_gate)
        .put("/api/v1/repository-pull-gate/{*name}", put_pull_gate)
        .delete("/api/v1/repository-pull-gate/{*name}", delete_pull_gate)
        .post("/api/v1/repository-image-scans/{*name}", start_image_scan)
        .get("/api/v1/repository-scan-findings/{*name}", scan_findings)
        .get(
            "/api/v1/registry/scanning-configuration",
            get_registry_scanning,
        )
        .put(
            "/api/v1/registry/scanning-configuration",
            put_registry_scanning,
        )
        // repository creation templates (prefixes contain '/', so the prefix is the tail)
        .post(
            "/api/v1/repository-creation-templates",
            create_creation_template,
        )
        .get(
            "/api/v1/repository-creation-templates",
            list_creation_templates,
        )
        .get(
            "/api/v1/repository-creation-templates/{*prefix}",
            get_creation_template,
        )
        .put(
            "/api/v1/repository-creation-templates/{*prefix}",
            update_creation_template,
        )
        .delete(
            "/api/v1/repository-creation-templates/{*prefix}",
            delete_creation_template,
        )
        .get("/api/v1/events", list_events)
        // pull-through cache rules
        .post("/api/v1/pull-through-rules", create_pull_through_rule)
        .get("/api/v1/pull-through-rules", list_pull_through_rules)
        .get(
            "/api/v1/pull-through-rules/{*prefix}",
            get_pull_through_rule,
        )
        .put(
            "/api/v1/pull-through-rules/{*prefix}",
            update_pull_through_rule,
        )
        .delete(
            "/api/v1/pull-through-rules/{*prefix}",
            delete_pull_through_rule,
        )
        .get("/api/v1/lifecycle/audit", lifecycle_audit)
        .get("/api/v1/registry-policy", get_registry_policy)
        .put("/api/v1/registry-policy", put_registry_policy)
        .delete("/api/v1/registry-policy", delete_registry_policy)
        // the rest
        .get("/api/v1/settings", get_settings)
        .put("/api/v1/settings", put_settings)
        .post("/api/v1/policy-simulator", simulate)
        .get("/api/v1/signing-keys", signing_keys)
        .post("/api/v1/signing-keys/rotate", rotate_signing_key)
        .get("/api/v1/federation/registries", trusted_registries)
        .post("/api/v1/federation/passwords", federated_password)
        .post("/api/v1/event-rules", create_event_rule)
        .get("/api/v1/event-rules", list_event_rules)
        .get("/api/v1/event-rules/{name}", get_event_rule)
        .put("/api/v1/event-rules/{name}", put_event_rule)
        .delete("/api/v1/event-rules/{name}", delete_event_rule)
        .post("/api/v1/event-rules/{name}/test", test_event_rule)
        .get("/api/v1/event-rules/{name}/status", event_delivery_status)
        .get("/api/v1/event-rules/{name}/dead-letters", list_dead_letters)
        .post("/api/v1/event-rules/{name}/redrive", redrive_dead_letters)
        .get("/api/v1/replication", get_replication)
        .put("/api/v1/replication", put_replication)
        .get("/api/v1/replication/tasks", replication_tasks)
        .get("/api/v1/replication/status", replication_status)
        .post("/api/v1/replication/retry", retry_replication)
        .post("/api/v1/replication/backfill", backfill_replication)
        .get("/api/v1/audit", audit_log)
        .get("/api/v1/gc", gc_status)
}

// ---- shapes ----

fn ok(value: impl Serialize) -> Response {
    Json(value).into_response()
}

fn created(value: impl Serialize) -> Response {
    (StatusCode::CREATED, Json(value)).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// A stored policy document, exactly as saved.
fn document(text: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text).into_response()
}

fn query_pairs(query: &Option<String>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query_param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn parse_number<T: std::str::FromStr>(name: &str, value: Option<&str>) -> Result<Option<T>> {
    value
        .map(|v| {
            v.parse().map_err(|_| {
                Error::InvalidParameter(format!(
                    "{name}: {:?} is not a valid number",
                    v.chars().take(40).collect::<String>()
                ))
            })
        })
        .transpose()
}

fn parse_bool(name: &str, value: Option<&str>) -> Result<bool> {
    match value {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") | Some("") => Ok(true),
        Some(other) => Err(Error::InvalidParameter(format!(
            "{name}: {:?} is not true or false",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

// ---- the document ----

/// GET /api/v1/openapi.json
async fn openapi(call: OpCall) -> Reply {
    call.run(GetOpenApiDocumentRequest {}).await?;
    Ok(ok(super::openapi::document()))
}

// ---- users and robot accounts ----

/// POST /api/v1/users
async fn create_user(call: OpCall, Payload(body): Payload) -> Reply {
    Ok(created(
        call.run(decode::<CreateUserRequest>(&body)?).await?,
    ))
}

/// POST /api/v1/robots
async fn create_robot(call: OpCall, Payload(body): Payload) -> Reply {
    Ok(created(
        call.run(decode::<CreateRobotRequest>(&body)?).await?,
    ))
}

/// GET /api/v1/users, GET /api/v1/robots
async fn list_accounts<K: AccountKind>(call: OpCall) -> Reply {
    Ok(ok(call
        .run(ListAccountsRequest::<K> { kind: PhantomData })
        .await?))
}

/// GET /api/v1/users/{name}, GET /api/v1/robots/{name}
async fn get_account<K: AccountKind>(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(ok(call.run(GetAccountRequest::<K>::from(name)).await?))
}

/// DELETE /api/v1/users/{name}, DELETE /api/v1/robots/{name}
async fn delete_account<K: AccountKind>(call: OpCall, Path(name): Path<String>) -> Reply {
    call.run(DeleteAccountRequest::<K>::from(name)).await?;
    Ok(no_content())
}

/// PUT /api/v1/users/{name}/password `{"password": ...}`
async fn change_password(call: OpCall, Path(name): Path<String>, Payload(body): Payload) -> Reply {
    let request: ChangePasswordRequest = decode(&body)?;
    call.run(ChangePasswordRequest { name, ..request }).await?;
    Ok(no_content())
}

/// POST /api/v1/robots/{name}/secret
async fn regenerate_robot_secret(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(ok(call.run(RegenerateRobotSecretRequest { name }).await?))
}

/// GET /api/v1/{users|robots|groups}/{name}/policy: the document as stored.
async fn get_identity_policy<H: PolicyHolder>(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(document(
        call.run(GetIdentityPolicyRequest::<H>::from(name)).await?,
    ))
}

/// PUT /api/v1/{users|robots|groups}/{name}/policy: the body is the document.
async fn put_identity_policy<H: PolicyHolder>(
    call: OpCall,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request = PutIdentityPolicyRequest::<H> {
        name,
        policy_text: text(&body)?,
        kind: PhantomData,
    };
    call.run(request).await?;
    Ok(no_content())
}

/// DELETE /api/v1/{users|robots|groups}/{name}/policy
async fn delete_identity_policy<H: PolicyHolder>(call: OpCall, Path(name): Path<String>) -> Reply {
    call.run(DeleteIdentityPolicyRequest::<H>::from(name))
        .await?;
    Ok(no_content())
}

/// POST /api/v1/{users|robots}/{name}/access-keys
async fn create_access_key<K: AccountKind>(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(created(
        call.run(CreateAccessKeyRequest::<K>::from(name)).await?,
    ))
}

/// GET /api/v1/{users|robots}/{name}/access-keys
async fn list_access_keys<K: AccountKind>(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(ok(call.run(ListAccessKeysRequest::<K>::from(name)).await?))
}

/// PUT /api/v1/{users|robots}/{name}/access-keys/{keyId} `{"status": "Active" | "Inactive"}`
async fn update_access_key<K: AccountKind>(
    call: OpCall,
    Path((name, access_key_id)): Path<(String, String)>,
    Payload(body): Payload,
) -> Reply {
    let request: UpdateAccessKeyRequest<K> = decode(&body)?;
    call.run(UpdateAccessKeyRequest {
        name,
        access_key_id,
        ..request
    })
    .await?;
    Ok(no_content())
}

/// DELETE /api/v1/{users|robots}/{name}/access-keys/{keyId}
async fn delete_access_key<K: AccountKind>(
    call: OpCall,
    Path((name, access_key_id)): Path<(String, String)>,
) -> Reply {
    let request = DeleteAccessKeyRequest::<K> {
        name,
        access_key_id,
        kind: PhantomData,
    };
    call.run(request).await?;
    Ok(no_content())
}

// ---- groups ----

/// POST /api/v1/groups
async fn create_group(call: OpCall, Payload(body): Payload) -> Reply {
    Ok(created(
        call.run(decode::<CreateGroupRequest>(&body)?).await?,
    ))
}

/// GET /api/v1/groups
async fn list_groups(call: OpCall) -> Reply {
    Ok(ok(call.run(ListGroupsRequest {}).await?))
}

/// GET /api/v1/groups/{name}
async fn get_group(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(ok(call.run(GetGroupRequest { name }).await?))
}

/// DELETE /api/v1/groups/{name}
async fn delete_group(call: OpCall, Path(name): Path<String>) -> Reply {
    call.run(DeleteGroupRequest { name }).await?;
    Ok(no_content())
}

/// POST /api/v1/groups/{name}/members `{"member": "alice" | "robot/ci"}`
async fn add_group_member(call: OpCall, Path(name): Path<String>, Payload(body): Payload) -> Reply {
    let request: AddGroupMemberRequest = decode(&body)?;
    Ok(ok(call
        .run(AddGroupMemberRequest { name, ..request })
        .await?))
}

/// DELETE /api/v1/groups/{name}/members/{member}
async fn remove_group_member(call: OpCall, Path((name, member)): Path<(String, String)>) -> Reply {
    call.run(RemoveGroupMemberRequest { name, member }).await?;
    Ok(no_content())
}

// ---- repositories ----

/// POST /api/v1/repositories: ECR's CreateRepository members (`name` is accepted for
/// `repositoryName`); answers the repository.
async fn create_repository(call: OpCall, Payload(body): Payload) -> Reply {
    let request: CreateRepositoryRequest = decode(&body)?;
    let created = call.run(request).await?;
    Ok((StatusCode::CREATED, Json(created.repository)).into_response())
}

/// GET /api/v1/repositories?limit=&after=: the repositories the caller may describe, by name,
/// a full page at a time; `next` is the `after` of the next page.
async fn list_repositories(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribeRepositoriesRequest {
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
        next_token: query_param(&pairs, "after").map(str::to_owned),
        ..Default::default()
    };
    let page = call.run(request).await?;
    Ok(ok(RepositoryPage {
        repositories: page.repositories,
        next: page.next_token,
    }))
}

/// GET /api/v1/repository-summaries?prefix=&nextToken=&maxResults=: the repositories the caller
/// may describe whose names start with `prefix`, with their image counts, sizes, last push and
/// last pull (Berth's ListRepositorySummaries).
async fn repository_summaries(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = ListRepositorySummariesRequest {
        prefix: query_param(&pairs, "prefix").map(str::to_owned),
        next_token: query_param(&pairs, "nextToken").map(str::to_owned),
        max_results: parse_number("maxResults", query_param(&pairs, "maxResults"))?,
    };
    Ok(ok(call.run(request).await?))
}

/// The one repository `name` (DescribeRepositories with one name).
async fn one_repository(
    call: &OpCall,
    name: String,
) -> std::result::Result<Repository, super::ApiError> {
    let request = DescribeRepositoriesRequest {
        repository_names: Some(vec![name]),
        ..Default::default()
    };
    let mut found = call.run(request).await?;
    Ok(found.repositories.remove(0))
}

/// GET /api/v1/repositories/{name}
async fn describe_repository(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(ok(one_repository(&call, name).await?))
}

/// DELETE /api/v1/repositories/{name}?force=true
async fn delete_repository(
    call: OpCall,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = DeleteRepositoryRequest {
        registry_id: None,
        repository_name: name,
        force: Some(parse_bool("force", query_param(&pairs, "force"))?),
    };
    let deleted = call.run(request).await?;
    Ok(ok(deleted.repository))
}

/// GET /api/v1/repositories/{name}/tag-mutability
async fn get_tag_mutability(call: OpCall, Path(name): Path<String>) -> Reply {
    let repository = one_repository(&call, name).await?;
    Ok(ok(PutImageTagMutabilityResponse {
        registry_id: repository.registry_id,
        repository_name: repository.repository_name,
        image_tag_mutability: repository.image_tag_mutability,
        image_tag_mutability_exclusion_filters: repository.image_tag_mutability_exclusion_filters,
    }))
}

/// PUT /api/v1/repositories/{name}/tag-mutability
async fn put_tag_mutability(
    call: OpCall,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let body: PutTagMutability = decode(&body)?;
    let request = PutImageTagMutabilityRequest {
        registry_id: None,
        repository_name: name,
        image_tag_mutability: body.image_tag_mutability,
        image_tag_mutability_exclusion_filters: body.image_tag_mutability_exclusion_filters,
    };
    Ok(ok(call.run(request).await?))
}

// ---- policies ----

/// A policy document sent as the request body: UTF-8 text, stored exactly as sent.
fn document_text(body: &[u8]) -> Result<String> {
    String::from_utf8(body.to_vec())
        .map_err(|_| Error::InvalidParameter("the body is not UTF-8 text".into()))
}

/// GET /api/v1/repository-policies/{name}: the document as stored (GetRepositoryPolicy's
/// `policyText`).
async fn get_repository_policy(call: OpCall, Path(name): Path<String>) -> Reply {
    let request = GetRepositoryPolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    let found = call.run(request).await?;
    Ok(document(found.policy_text))
}

/// PUT /api/v1/repository-policies/{name}: the body is the document (SetRepositoryPolicy).
async fn put_repository_policy(
    call: OpCall,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request = SetRepositoryPolicyRequest {
        registry_id: None,
        repository_name: name,
        policy_text: document_text(&body)?,
        force: None,
    };
    call.run(request).await?;
    Ok(no_content())
}

/// DELETE /api/v1/repository-policies/{name}
async fn delete_repository_policy(call: OpCall, Path(name): Path<String>) -> Reply {
    let request = DeleteRepositoryPolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    call.run(request).await?;
    Ok(no_content())
}

/// GET /api/v1/registry-policy: the document as stored (GetRegistryPolicy's `policyText`).
async fn get_registry_policy(call: OpCall) -> Reply {
    let found = call.run(GetRegistryPolicyRequest {}).await?;
    Ok(document(found.policy_text))
}

/// PUT /api/v1/registry-policy: the body is the document (PutRegistryPolicy).
async fn put_registry_policy(call: OpCall, Payload(body): Payload) -> Reply {
    let request = PutRegistryPolicyRequest {
        policy_text: document_text(&body)?,
    };
    call.run(request).await?;
    Ok(no_content())
}

/// DELETE /api/v1/registry-policy
async fn delete_registry_policy(call: OpCall) -> Reply {
    call.run(DeleteRegistryPolicyRequest {}).await?;
    Ok(no_content())
}

// ---- lifecycle policies ----

/// GET /api/v1/repositories/{name}/lifecycle-policy: the policy text as saved
/// (GetLifecyclePolicy's `lifecyclePolicyText`).
async fn get_lifecycle_policy(call: OpCall, Path(name): Path<String>) -> Reply {
    let request = GetLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    let found = call.run(request).await?;
    Ok(document(found.lifecycle_policy_text))
}

/// PUT /api/v1/repositories/{name}/lifecycle-policy: the body is the policy (PutLifecyclePolicy).
async fn put_lifecycle_policy(
    call: OpCall,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request = PutLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
        lifecycle_policy_text: Some(document_text(&body)?),
    };
    call.run(request).await?;
    Ok(no_content())
}

/// DELETE /api/v1/repositories/{name}/lifecycle-policy
async fn delete_lifecycle_policy(call: OpCall, Path(name): Path<String>) -> Reply {
    let request = DeleteLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    call.run(request).await?;
    Ok(no_content())
}

/// POST /api/v1/repositories/{name}/lifecycle/preview: StartLifecyclePolicyPreview of the policy
/// in the body, or of the saved one when the body is empty; the result is at GET.
async fn start_lifecycle_preview(
    call: OpCall,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let text = document_text(&body)?;
    let request = StartLifecyclePolicyPreviewRequest {
        registry_id: None,
        repository_name: name,
        lifecycle_policy_text: Some(text).filter(|t| !t.trim().is_empty()),
    };
    Ok(ok(call.run(request).await?))
}

/// GET /api/v1/repositories/{name}/lifecycle/preview?limit=&after=&tagStatus=: the last preview
/// (GetLifecyclePolicyPreview), a page of results at a time.
async fn get_lifecycle_preview(
    call: OpCall,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = GetLifecyclePolicyPreviewRequest {
        registry_id: None,
        repository_name: name,
        image_ids: None,
        next_token: query_param(&pairs, "after").map(str::to_owned),
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
        filter: query_param(&pairs, "tagStatus").map(|status| TagStatusFilter {
            tag_status: Some(status.to_owned()),
        }),
    };
    let mut preview = call.run(request).await?;
    let next = preview.next_token.take();
    Ok(ok(LifecyclePreviewPage { preview, next }))
}

/// POST /api/v1/repositories/{name}/lifecycle/evaluate?limit=: what the policy in the body (or
/// the saved one when the body is empty) would expire now, answered at once and kept nowhere
/// (PreviewLifecyclePolicy).
async fn evaluate_lifecycle(
    call: OpCall,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
    Payload(body): Payload,
) -> Reply {
    let pairs = query_pairs(&query);
    let text = document_text(&body)?;
    let request = PreviewLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
        lifecycle_policy_text: Some(text).filter(|t| !t.trim().is_empty()),
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
    };
    Ok(ok(call.run(request).await?))
}

/// POST /api/v1/repositories/{name}/lifecycle/run: runs the saved policy now.
async fn run_lifecycle(call: OpCall, Path(name): Path<String>) -> Reply {
    let request = RunLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    Ok(ok(call.run(request).await?))
}

/// GET /api/v1/lifecycle/audit?repository=&limit=&after=: images expired by lifecycle policies,
/// oldest first.
async fn lifecycle_audit(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = ListLifecycleEventsRequest {
        repository_name: query_param(&pairs, "repository").map(str::to_owned),
        image_digest: query_param(&pairs, "imageDigest").map(str::to_owned),
        next_token: query_param(&pairs, "after").map(str::to_owned),
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
    };
    let page = call.run(request).await?;
    Ok(ok(LifecycleEventPage {
        entries: page.entries,
        next: page.next_token,
    }))
}

// ---- settings, the policy simulator, signing keys, the audit log, garbage collection ----

/// GET /api/v1/settings
async fn get_settings(call: OpCall) -> Reply {
    Ok(ok(call.run(GetSettingsRequest {}).await?))
}

/// PUT /api/v1/settings: changes the settings present in the body.
async fn put_settings(call: OpCall, Payload(body): Payload) -> Reply {
    Ok(ok(call.run(decode::<PutSettingsRequest>(&body)?).await?))
}

/// POST /api/v1/policy-simulator
async fn simulate(call: OpCall, Payload(body): Payload) -> Reply {
    Ok(ok(call
        .run(decode::<SimulatePolicyRequest>(&body)?)
        .await?))
}

/// GET /api/v1/signing-keys: the key ids tokens are verified with, the signing one first.
async fn signing_keys(call: OpCall) -> Reply {
    Ok(ok(call.run(ListSigningKeysRequest {}).await?))
}

/// GET /api/v1/federation/registries: the registries this one trusts and their keys.
async fn trusted_registries(call: OpCall) -> Reply {
    Ok(ok(call.run(ListTrustedRegistriesRequest {}).await?))
}

/// POST /api/v1/federation/passwords: GetAuthorizationToken for one trusted registry, as a
/// user name and password ready for `docker login`.
async fn federated_password(call: OpCall, Payload(body): Payload) -> Reply {
    use base64::Engine as _;
    let FederatedPasswordRequest { registry_id } = decode(&body)?;
    let mut answer = call
        .run(GetAuthorizationTokenRequest {
            registry_ids: Some(vec![registry_id.clone()]),
        })
        .await?;
    let data = answer
        .authorization_data
        .pop()
        .ok_or_else(|| Error::internal("GetAuthorizationToken answered no password"))?;
    let basic = base64::engine::general_purpose::STANDARD
        .decode(&data.authorization_token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| Error::internal("GetAuthorizationToken answered no Basic pair"))?;
    let (username, password) = basic.split_once(':').unwrap_or(("AWS", ""));
    Ok(ok(FederatedPassword {
        registry_id,
        proxy_endpoint: data.proxy_endpoint,
        username: username.to_owned(),
        password: password.to_owned(),
        expires_at: (data.expires_at * 1000.0) as i64,
    }))
}

/// GET /api/v1/replication: the replication configuration (DescribeRegistry's).
async fn get_replication(call: OpCall) -> Reply {
    Ok(ok(call
        .run(DescribeRegistryRequest {})
        .await?
        .replication_configuration))
}

/// PUT /api/v1/replication: PutReplicationConfiguration with Berth's filter types allowed.
async fn put_replication(call: OpCall, Payload(body): Payload) -> Reply {
    let configuration: Value = decode(&body)?;
    let answer = call
        .run(PutReplicationConfigurationRequest {
            replication_configuration: Some(configuration),
            grammar: ReplicationGrammar(Grammar::Berth),
        })
        .await?;
    Ok(ok(answer.replication_configuration))
}

/// GET /api/v1/replication/tasks: what lags and what failed, oldest first.
async fn replication_tasks(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = ListReplicationTasksRequest {
        after: parse_number("after", query_param(&pairs, "after"))?,
        limit: parse_number("limit", query_param(&pairs, "limit"))?,
    };
    Ok(ok(call.run(request).await?))
}

/// GET /api/v1/replication/status?repository=&digest= (or `tag=`): DescribeImageReplicationStatus,
/// with the non-Berth targets named.
async fn replication_status(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribeImageReplicationStatusRequest {
        repository_name: query_param(&pairs, "repository")
            .unwrap_or_default()
            .to_owned(),
        image_id: ImageIdentifier {
            image_digest: query_param(&pairs, "digest").map(str::to_owned),
            image_tag: query_param(&pairs, "tag").map(str::to_owned),
        },
        registry_id: None,
    };
    Ok(ok(call.run(request).await?))
}

/// POST /api/v1/replication/backfill: replicates what was pushed before the rules.
async fn backfill_replication(call: OpCall) -> Reply {
    Ok(ok(call.run(StartReplicationBackfillRequest {}).await?))
}

/// POST /api/v1/replication/retry: starts failed tasks again.
async fn retry_replication(call: OpCall, Payload(body): Payload) -> Reply {
    Ok(ok(call
        .run(decode::<RetryReplicationRequest>(&body)?)
        .await?))
}

/// POST /api/v1/signing-keys/rotate
async fn rotate_signing_key(call: OpCall) -> Reply {
    Ok(ok(call.run(RotateSigningKeyRequest {}).await?))
}

/// GET /api/v1/audit?limit=&before=&principal=&action=&resource=&outcome=&since=&until=: newest
/// first; `before` is an entry id (from `next`).
async fn audit_log(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = ListAuditEventsRequest {
        limit: parse_number("limit", query_param(&pairs, "limit"))?,
        before: parse_number("before", query_param(&pairs, "before"))?,
        principal: query_param(&pairs, "principal").map(str::to_owned),
        action: query_param(&pairs, "action").map(str::to_owned),
        resource: query_param(&pairs, "resource").map(str::to_owned),
        outcome: query_param(&pairs, "outcome").map(str::to_owned),
        since: query_param(&pairs, "since").map(str::to_owned),
        until: query_param(&pairs, "until").map(str::to_owned),
    };
    Ok(ok(call.run(request).await?))
}

/// GET /api/v1/gc: garbage collection queues and what this process reclaimed.
async fn gc_status(call: OpCall) -> Reply {
    Ok(ok(call.run(GetGcStatusRequest {}).await?))
}

/// GET /api/v1/events?after=&limit=: outbox records (scan results, ...) oldest first, for
/// administrators and event consumers; `after` is the last `id` seen.
async fn list_events(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = ListEventsRequest {
        after: parse_number("after", query_param(&pairs, "after"))?,
        limit: parse_number("limit", query_param(&pairs, "limit"))?,
    };
    Ok(ok(call.run(request).await?))
}

// ---- event rules ----

/// POST /api/v1/event-rules
async fn create_event_rule(call: OpCall, Payload(body): Payload) -> Reply {
    let rule: EventRuleInput = decode(&body)?;
    Ok(created(call.run(CreateEventRuleRequest { rule }).await?))
}

/// GET /api/v1/event-rules
async fn list_event_rules(call: OpCall) -> Reply {
    Ok(ok(call.run(ListEventRulesRequest {}).await?))
}

/// GET /api/v1/event-rules/{name}
async fn get_event_rule(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(ok(call.run(GetEventRuleRequest { name }).await?))
}

/// PUT /api/v1/event-rules/{name}: creates (201) or replaces (200) the rule.
async fn put_event_rule(call: OpCall, Path(name): Path<String>, Payload(body): Payload) -> Reply {
    let rule: EventRuleInput = decode(&body)?;
    let answer = call.run(PutEventRuleRequest { name, rule }).await?;
    Ok(if answer.created {
        created(answer.rule)
    } else {
        ok(answer.rule)
    })
}

/// DELETE /api/v1/event-rules/{name}
async fn delete_event_rule(call: OpCall, Path(name): Path<String>) -> Reply {
    call.run(DeleteEventRuleRequest { name }).await?;
    Ok(no_content())
}

/// POST /api/v1/event-rules/{name}/test: does the pattern match this event, and what would the
/// targets receive.
async fn test_event_rule(call: OpCall, Path(name): Path<String>, Payload(body): Payload) -> Reply {
    let mut request: TestEventRuleRequest = if body.is_empty() {
        TestEventRuleRequest::default()
    } else {
        decode(&body)?
    };
    request.name = name;
    Ok(ok(call.run(request).await?))
}

/// GET /api/v1/event-rules/{name}/status: deliveries per target.
async fn event_delivery_status(call: OpCall, Path(name): Path<String>) -> Reply {
    Ok(ok(call.run(GetEventDeliveryStatusRequest { name }).await?))
}

/// GET /api/v1/event-rules/{name}/dead-letters?target=&after=&limit=
async fn list_dead_letters(
    call: OpCall,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = ListDeadLettersRequest {
        name,
        target: query_param(&pairs, "target").map(str::to_owned),
        after: parse_number("after", query_param(&pairs, "after"))?,
        limit: parse_number("limit", query_param(&pairs, "limit"))?,
    };
    Ok(ok(call.run(request).await?))
}

/// POST /api/v1/event-rules/{name}/redrive: dead letters pending again.
async fn redrive_dead_letters(
    call: OpCall,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let mut request: RedriveDeadLettersRequest = if body.is_empty() {
        RedriveDeadLettersRequest::default()
    } else {
        decode(&body)?
    };
    request.name = name;
    Ok(ok(call.run(request).await?))
}

// ---- scanning ----

/// GET /api/v1/repositories/{name}/scanning-configuration: PutImageScanningConfiguration's
/// shape, read with DescribeRepositories.
async fn get_scanning_configuration(call: OpCall, Path(name): Path<String>) -> Reply {
    let repository = one_repository(&call, name).await?;
    Ok(ok(PutImageScanningConfigurationResponse {
        registry_id: repository.registry_id,
        repository_name: repository.repository_name,
        image_scanning_configuration: repository.image_scanning_configuration,
    }))
}

/// PUT /api/v1/repositories/{name}/scanning-configuration
async fn put_scanning_configuration(
    call: OpCall,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let body: PutScanningConfiguration = decode(&body)?;
    let request = PutImageScanningConfigurationRequest {
        registry_id: None,
        repository_name: name,
        image_scanning_configuration: body.image_scanning_configuration.unwrap_or(
            ImageScanningConfiguration {
                scan_on_push: body.scan_on_push.unwrap_or(false),
            },
        ),
    };
    Ok(ok(call.run(request).await?))
}

/// GET /api/v1/repositories/{name}/pull-gate
async fn get_pull_gate(call: OpCall, Path(name): Path<String>) -> Reply {
    let request = GetPullGateRequest {
        repository_name: name,
    };
    Ok(ok(call.run(request).await?))
}

/// PUT /api/v1/repositories/{name}/pull-gate: `{"severityThreshold": "HIGH", "allowlist":
/// [...], "allowUnscanned": false}`.
async fn put_pull_gate(call: OpCall, Path(name): Path<String>, Payload(body): Payload) -> Reply {
    let body: PutPullGate = decode(&body)?;
    let request = PutPullGateRequest {
        repository_name: name,
        severity_threshold: body.severity_threshold,
        allowlist: body.allowlist,
        allow_unscanned: body.allow_unscanned,
    };
    Ok(ok(call.run(request).await?))
}

/// DELETE /api/v1/repositories/{name}/pull-gate
async fn delete_pull_gate(call: OpCall, Path(name): Path<String>) -> Reply {
    let request = DeletePullGateRequest {
        repository_name: name,
    };
    call.run(request).await?;
    Ok(no_content())
}

impl ImageParam {
    fn from_query(pairs: &[(String, String)]) -> ImageParam {
        ImageParam {
            image_id: None,
            image_digest: query_param(pairs, "imageDigest").map(str::to_owned),
            image_tag: query_param(pairs, "imageTag").map(str::to_owned),
        }
    }

    fn image_id(self) -> ImageIdentifier {
        self.image_id.unwrap_or(ImageIdentifier {
            image_digest: self.image_digest,
            image_tag: self.image_tag,
        })
    }
}

/// POST /api/v1/repositories/{name}/image-scans: `{"imageDigest": ...}` or `{"imageTag":
/// ...}` (or ECR's `{"imageId": {...}}`) queues a scan now (no daily limit); 202 with
/// StartImageScan's answer.
async fn start_image_scan(call: OpCall, Path(name): Path<String>, Payload(body): Payload) -> Reply {
    let image: ImageParam = decode(&body)?;
    let request = StartImageScanRequest {
        registry_id: None,
        repository_name: name,
        image_id: image.image_id(),
    };
    let started = call.run(request).await?;
    Ok((StatusCode::ACCEPTED, Json(started)).into_response())
}

/// GET /api/v1/repositories/{name}/scan-findings?imageDigest=|imageTag=&maxResults=&nextToken=:
/// DescribeImageScanFindings, the same answer and the same page tokens as the ECR API's.
async fn scan_findings(call: OpCall, Path(name): Path<String>, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribeImageScanFindingsRequest {
        registry_id: None,
        repository_name: name,
        image_id: ImageParam::from_query(&pairs).image_id(),
        next_token: query_param(&pairs, "nextToken").map(str::to_owned),
        max_results: parse_number("maxResults", query_param(&pairs, "maxResults"))?,
        severity: query_param(&pairs, "severity").map(str::to_owned),
    };
    Ok(ok(call.run(request).await?))
}

/// GET /api/v1/registry/scanning-configuration
async fn get_registry_scanning(call: OpCall) -> Reply {
    let request = GetRegistryScanningConfigurationRequest {};
    Ok(ok(call.run(request).await?))
}

/// PUT /api/v1/registry/scanning-configuration: ECR's `{"scanType", "rules"}`; answers
/// PutRegistryScanningConfiguration's `{"registryScanningConfiguration"}`.
async fn put_registry_scanning(call: OpCall, Payload(body): Payload) -> Reply {
    let request: PutRegistryScanningConfigurationRequest = decode(&body)?;
    Ok(ok(call.run(request).await?))
}

// ---- repository creation templates ----

/// A JSON body for the thing the path names by `member` (a template's `prefix`, a rule's
/// `ecrRepositoryPrefix`): the path's value goes into the request. A body that names another
/// one (a trailing `/` aside) is a malformed request, refused before the gate as invalid JSON
/// is: a prefix cannot change.
fn decode_for<T: DeserializeOwned>(
    body: &[u8],
    member: &str,
    from_path: &str,
) -> std::result::Result<T, super::ApiError> {
    let mut object: serde_json::Map<String, Value> = decode(body)?;
    match object.get(member) {
        None | Some(Value::Null) => {}
        Some(Value::String(given))
            if given.trim_end_matches('/') == from_path.trim_end_matches('/') => {}
        Some(_) => {
            return Err(Error::InvalidParameter(format!(
                "{member}: the body names another {member} than the path; it cannot change"
            ))
            .into())
        }
    }
    object.insert(member.to_owned(), Value::String(from_path.to_owned()));
    serde_json::from_value(Value::Object(object))
        .map_err(|e| Error::InvalidParameter(format!("invalid JSON body: {e}")).into())
}

/// The `prefix` query parameters (repeatable), if any.
fn prefixes(pairs: &[(String, String)]) -> Option<Vec<String>> {
    let given: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "prefix")
        .map(|(_, v)| v.clone())
        .collect();
    (!given.is_empty()).then_some(given)
}

/// The `after` query parameter: the previous page's `next` token (empty: the first page).
fn after(pairs: &[(String, String)]) -> Option<String> {
    query_param(pairs, "after")
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

/// POST /api/v1/repository-creation-templates: CreateRepositoryCreationTemplate (201).
async fn create_creation_template(call: OpCall, Payload(body): Payload) -> Reply {
    let request: CreateRepositoryCreationTemplateRequest = decode(&body)?;
    let created = call.run(request).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// GET /api/v1/repository-creation-templates?prefix=&after=&limit=:
/// DescribeRepositoryCreationTemplates; `prefix` (repeatable) keeps only those prefixes, `next`
/// is the `after` of the next page.
async fn list_creation_templates(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribeRepositoryCreationTemplatesRequest {
        prefixes: prefixes(&pairs),
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
        next_token: after(&pairs),
    };
    let page = call.run(request).await?;
    Ok(ok(CreationTemplatePage {
        registry_id: page.registry_id,
        repository_creation_templates: page.repository_creation_templates,
        next: page.next_token,
    }))
}

/// GET /api/v1/repository-creation-templates/{prefix}: DescribeRepositoryCreationTemplates of
/// this prefix; 404 if it has no template.
async fn get_creation_template(call: OpCall, Path(prefix): Path<String>) -> Reply {
    let request = DescribeRepositoryCreationTemplatesRequest {
        prefixes: Some(vec![prefix.clone()]),
        ..Default::default()
    };
    let found = call.run(request).await?;
    let template = found
        .repository_creation_templates
        .into_iter()
        .next()
        .ok_or_else(|| {
            crate::service::template_not_found(
                &crate::service::template_prefix(&prefix).unwrap_or(prefix),
            )
        })?;
    Ok(ok(CreationTemplateAnswer {
        registry_id: found.registry_id,
        repository_creation_template: template,
    }))
}

/// PUT /api/v1/repository-creation-templates/{prefix}: UpdateRepositoryCreationTemplate of the
/// path's prefix.
async fn update_creation_template(
    call: OpCall,
    Path(prefix): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request: UpdateRepositoryCreationTemplateRequest = decode_for(&body, "prefix", &prefix)?;
    Ok(ok(call.run(request).await?))
}

/// DELETE /api/v1/repository-creation-templates/{prefix}: answers the deleted template.
async fn delete_creation_template(call: OpCall, Path(prefix): Path<String>) -> Reply {
    let request = DeleteRepositoryCreationTemplateRequest { prefix };
    Ok(ok(call.run(request).await?))
}

// ---- pull-through cache rules ----

/// POST /api/v1/pull-through-rules: CreatePullThroughCacheRule (with Berth's `revalidateSecs`
/// and `quotaBytes`); 201 with the rule.
async fn create_pull_through_rule(call: OpCall, Payload(body): Payload) -> Reply {
    let request: CreatePullThroughCacheRuleRequest = decode(&body)?;
    let rule = call.run(request).await?;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

/// GET /api/v1/pull-through-rules?prefix=&after=&limit=: DescribePullThroughCacheRules;
/// `prefix` (repeatable) names rules that must exist, `next` is the `after` of the next page.
async fn list_pull_through_rules(call: OpCall, RawQuery(query): RawQuery) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribePullThroughCacheRulesRequest {
        registry_id: None,
        ecr_repository_prefixes: prefixes(&pairs),
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
        next_token: after(&pairs),
    };
    let page = call.run(request).await?;
    Ok(ok(PullThroughRulePage {
        pull_through_cache_rules: page.pull_through_cache_rules,
        next: page.next_token,
    }))
}

/// GET /api/v1/pull-through-rules/{prefix}[?validate=true]: the rule
/// (DescribePullThroughCacheRules of its prefix); with `validate`, ValidatePullThroughCacheRule
/// (reaches the upstream with the rule's credential: `isValid`, `failure`).
async fn get_pull_through_rule(
    call: OpCall,
    Path(prefix): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    if parse_bool("validate", query_param(&query_pairs(&query), "validate"))? {
        let request = ValidatePullThroughCacheRuleRequest {
            ecr_repository_prefix: prefix,
            registry_id: None,
        };
        return Ok(ok(call.run(request).await?));
    }
    let request = DescribePullThroughCacheRulesRequest {
        ecr_repository_prefixes: Some(vec![prefix]),
        ..Default::default()
    };
    let mut found = call.run(request).await?;
    Ok(ok(found.pull_through_cache_rules.remove(0)))
}

/// PUT /api/v1/pull-through-rules/{prefix}: UpdatePullThroughCacheRule of the path's prefix
/// (`credentialArn`, `customRoleArn`, `revalidateSecs`, `quotaBytes`; the upstream cannot
/// change).
async fn update_pull_through_rule(
    call: OpCall,
    Path(prefix): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request: UpdatePullThroughCacheRuleRequest =
        decode_for(&body, "ecrRepositoryPrefix", &prefix)?;
    Ok(ok(call.run(request).await?))
}

/// DELETE /api/v1/pull-through-rules/{prefix}: DeletePullThroughCacheRule; answers the deleted
/// rule (its cached repositories stay).
async fn delete_pull_through_rule(call: OpCall, Path(prefix): Path<String>) -> Reply {
    let request = DeletePullThroughCacheRuleRequest {
        ecr_repository_prefix: prefix,
        registry_id: None,
    };
    Ok(ok(call.run(request).await?))
}
