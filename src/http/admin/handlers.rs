//! The admin API's handlers: parse, [`Caller::begin`], one call into the access layer or the
//! registry service, [`Call::finish`], JSON. Each names the method and path it serves.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{decode, run_op, Call, Caller, Payload, Permission, Routes};
use crate::access::{
    GroupInfo, PrincipalInfo, PrincipalKind, RequestFacts, Resource, SimulationRequest,
};
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::meta::{now_millis, RepositoryRow};
use crate::oci::{Digest, Reference, RepoName, Tag};
use crate::ops::shapes::{
    CreatePullThroughCacheRuleRequest, CreateRepositoryCreationTemplateRequest,
    CreateRepositoryRequest, DeleteLifecyclePolicyRequest, DeletePullThroughCacheRuleRequest,
    DeleteRegistryPolicyRequest, DeleteRepositoryCreationTemplateRequest,
    DeleteRepositoryPolicyRequest, DeleteRepositoryRequest, DescribePullThroughCacheRulesRequest,
    DescribeRepositoriesRequest, DescribeRepositoryCreationTemplatesRequest,
    GetLifecyclePolicyPreviewRequest, GetLifecyclePolicyRequest, GetRegistryPolicyRequest,
    GetRepositoryPolicyRequest, ImageScanningConfiguration, ListLifecycleEventsRequest,
    PutImageTagMutabilityRequest, PutImageTagMutabilityResponse, PutLifecyclePolicyRequest,
    PutRegistryPolicyRequest, Repository, RunLifecyclePolicyRequest, SetRepositoryPolicyRequest,
    StartLifecyclePolicyPreviewRequest, TagStatusFilter, UpdatePullThroughCacheRuleRequest,
    UpdateRepositoryCreationTemplateRequest, ValidatePullThroughCacheRuleRequest,
};
use crate::policy::scanning::{PullGate, RegistryScanningConfiguration};
use crate::policy::{group_arn, repository_arn, robot_arn, user_arn, Action, PolicySource};

type Reply = std::result::Result<Response, super::ApiError>;

/// The routes users and robot accounts share, with their kind's paths.
struct PrincipalPaths {
    collection: &'static str,
    item: &'static str,
    policy: &'static str,
    keys: &'static str,
    key: &'static str,
}

const USER_PATHS: PrincipalPaths = PrincipalPaths {
    collection: "/api/v1/users",
    item: "/api/v1/users/{name}",
    policy: "/api/v1/users/{name}/policy",
    keys: "/api/v1/users/{name}/access-keys",
    key: "/api/v1/users/{name}/access-keys/{key_id}",
};

const ROBOT_PATHS: PrincipalPaths = PrincipalPaths {
    collection: "/api/v1/robots",
    item: "/api/v1/robots/{name}",
    policy: "/api/v1/robots/{name}/policy",
    keys: "/api/v1/robots/{name}/access-keys",
    key: "/api/v1/robots/{name}/access-keys/{key_id}",
};

/// Listing, reading, deleting, the identity policy and access keys of one principal kind.
fn principal_routes(r: Routes, kind: PrincipalKind, paths: &PrincipalPaths) -> Routes {
    r.get(paths.collection, move |s: State<AppState>, c: Caller| {
        list_principals(s, c, kind)
    })
    .get(
        paths.item,
        move |s: State<AppState>, c: Caller, p: Path<String>| get_principal(s, c, kind, p),
    )
    .delete(
        paths.item,
        move |s: State<AppState>, c: Caller, p: Path<String>| delete_principal(s, c, kind, p),
    )
    .get(
        paths.policy,
        move |s: State<AppState>, c: Caller, p: Path<String>| get_principal_policy(s, c, kind, p),
    )
    .put(
        paths.policy,
        move |s: State<AppState>, c: Caller, p: Path<String>, b: Payload| {
            put_principal_policy(s, c, kind, p, b)
        },
    )
    .delete(
        paths.policy,
        move |s: State<AppState>, c: Caller, p: Path<String>| {
            delete_principal_policy(s, c, kind, p)
        },
    )
    .post(
        paths.keys,
        move |s: State<AppState>, c: Caller, p: Path<String>| create_access_key(s, c, kind, p),
    )
    .get(
        paths.keys,
        move |s: State<AppState>, c: Caller, p: Path<String>| list_access_keys(s, c, kind, p),
    )
    .delete(
        paths.key,
        move |s: State<AppState>, c: Caller, p: Path<(String, String)>| {
            delete_access_key(s, c, kind, p)
        },
    )
    .put(
        paths.key,
        move |s: State<AppState>, c: Caller, p: Path<(String, String)>, b: Payload| {
            update_access_key(s, c, kind, p, b)
        },
    )
}

/// Mounts every admin route (full paths; `{*name}` segments may contain `/`).
pub(super) fn mount(r: Routes) -> Routes {
    let r = r.get("/api/v1/openapi.json", openapi);
    // users and robot accounts
    let r = principal_routes(r, PrincipalKind::User, &USER_PATHS)
        .post(USER_PATHS.collection, create_user)
        .put("/api/v1/users/{name}/password", change_password);
    principal_routes(r, PrincipalKind::Robot, &ROBOT_PATHS)
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
        .get("/api/v1/groups/{name}/policy", get_group_policy)
        .put("/api/v1/groups/{name}/policy", put_group_policy)
        .delete("/api/v1/groups/{name}/policy", delete_group_policy)
        // repositories
        .post("/api/v1/repositories", create_repository)
        .get("/api/v1/repositories", list_repositories)
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
        .get("/api/v1/audit", audit_log)
        .get("/api/v1/gc", gc_status)
}

// ---- shapes ----

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn noun(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => "User",
        PrincipalKind::Robot => "Robot",
    }
}

fn principal_arn(app: &AppState, kind: PrincipalKind, name: &str) -> String {
    match kind {
        PrincipalKind::User => user_arn(&app.access.registry_id, name),
        PrincipalKind::Robot => robot_arn(&app.access.registry_id, name),
    }
}

fn principal_json(p: &PrincipalInfo) -> Value {
    let mut v = json!({
        "name": p.name,
        "loginName": p.login_name(),
        "arn": p.arn,
        "createdAt": time(p.created_at),
        "groups": p.groups,
    });
    if p.kind == PrincipalKind::Robot {
        v["expiresAt"] = p.expires_at.map(time).into();
        v["expired"] = p.expired(now_millis()).into();
    }
    v
}

fn group_json(g: &GroupInfo) -> Value {
    json!({
        "name": g.name,
        "arn": g.arn,
        "createdAt": time(g.created_at),
        "members": g.members,
    })
}

fn ok(value: Value) -> Response {
    Json(value).into_response()
}

fn created(value: Value) -> Response {
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

fn repo_name(name: &str) -> Result<RepoName> {
    RepoName::parse(name)
}

// ---- the document ----

/// GET /api/v1/openapi.json
async fn openapi(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:GetOpenApiDocument",
            Permission::SignedIn,
            "openapi",
        )
        .await?;
    let doc = super::openapi::document();
    call.finish(Ok(ok(doc)), "").await
}

// ---- users and robot accounts ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateUser {
    name: String,
    password: String,
}

/// POST /api/v1/users
async fn create_user(State(app): State<AppState>, caller: Caller, Payload(body): Payload) -> Reply {
    let call = caller
        .begin(&app, "berth:CreateUser", Permission::Admin, "users")
        .await?;
    let (call, req): (Call, CreateUser) = call.body(&body).await?;
    let result = app.access.create_user(&req.name, &req.password).await;
    let detail = format!("created user {:?}", req.name);
    let user = call.finish(result, &detail).await?;
    Ok(created(principal_json(&user)))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRobot {
    name: String,
    /// RFC 3339; absent or null: never expires.
    #[serde(default, alias = "expires_at")]
    expires_at: Option<String>,
}

fn parse_time(field: &str, value: &str) -> Result<i64> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|e| {
            Error::InvalidParameter(format!(
                "{field}: {:?} is not an RFC 3339 time ({e})",
                value.chars().take(60).collect::<String>()
            ))
        })
}

/// POST /api/v1/robots
async fn create_robot(
    State(app): State<AppState>,
    caller: Caller,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin(&app, "berth:CreateRobot", Permission::Admin, "robots")
        .await?;
    let (call, req): (Call, CreateRobot) = call.body(&body).await?;
    let result = async {
        let expires_at = req
            .expires_at
            .as_deref()
            .map(|t| parse_time("expiresAt", t))
            .transpose()?;
        app.access.create_robot(&req.name, expires_at).await
    }
    .await;
    let detail = format!(
        "created robot {:?}, expires {}",
        req.name,
        req.expires_at.as_deref().unwrap_or("never")
    );
    let (robot, secret) = call.finish(result, &detail).await?;
    let mut v = principal_json(&robot);
    v["secret"] = secret.into();
    Ok(created(v))
}

/// GET /api/v1/users, GET /api/v1/robots
async fn list_principals(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
) -> Reply {
    let (action, resource, key) = match kind {
        PrincipalKind::User => ("berth:ListUsers", "users", "users"),
        PrincipalKind::Robot => ("berth:ListRobots", "robots", "robots"),
    };
    let call = caller
        .begin(&app, action, Permission::Admin, resource)
        .await?;
    let list = call
        .finish(app.access.principal_infos(kind).await, "")
        .await?;
    let items: Vec<Value> = list.iter().map(principal_json).collect();
    Ok(ok(json!({ key: items })))
}

/// GET /api/v1/users/{name}, GET /api/v1/robots/{name}
async fn get_principal(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            &format!("berth:Get{}", noun(kind)),
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    let info = call
        .finish(app.access.principal_info(kind, &name).await, "")
        .await?;
    Ok(ok(principal_json(&info)))
}

/// DELETE /api/v1/users/{name}, DELETE /api/v1/robots/{name}
async fn delete_principal(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            &format!("berth:Delete{}", noun(kind)),
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    call.finish(app.access.delete_principal(kind, &name).await, "")
        .await?;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ChangePassword {
    password: String,
}

/// PUT /api/v1/users/{name}/password
async fn change_password(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:ChangePassword",
            Permission::Admin,
            principal_arn(&app, PrincipalKind::User, &name),
        )
        .await?;
    let (call, req): (Call, ChangePassword) = call.body(&body).await?;
    let result = app.access.change_password(&name, &req.password).await;
    call.finish(result, "password changed; credential version bumped")
        .await?;
    Ok(no_content())
}

/// POST /api/v1/robots/{name}/secret
async fn regenerate_robot_secret(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:RegenerateRobotSecret",
            Permission::Admin,
            principal_arn(&app, PrincipalKind::Robot, &name),
        )
        .await?;
    let secret = call
        .finish(
            app.access.regenerate_robot_secret(&name).await,
            "secret regenerated; credential version bumped",
        )
        .await?;
    Ok(ok(json!({
        "name": name,
        "loginName": format!("robot/{name}"),
        "secret": secret,
    })))
}

/// GET /api/v1/{users|robots}/{name}/policy
async fn get_principal_policy(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            &format!("berth:Get{}Policy", noun(kind)),
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    let result = async {
        let target = app.access.principal_policy_target(kind, &name).await?;
        app.access.attached_policy(&target).await
    }
    .await;
    Ok(document(call.finish(result, "").await?))
}

/// PUT /api/v1/{users|robots}/{name}/policy
async fn put_principal_policy(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin(
            &app,
            &format!("berth:Put{}Policy", noun(kind)),
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    let (call, text) = call.text(&body).await?;
    let result = async {
        let target = app.access.principal_policy_target(kind, &name).await?;
        app.access.attach_policy(&target, &text).await
    }
    .await;
    call.finish(result, "identity policy attached").await?;
    Ok(no_content())
}

/// DELETE /api/v1/{users|robots}/{name}/policy
async fn delete_principal_policy(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            &format!("berth:Delete{}Policy", noun(kind)),
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    let result = async {
        let target = app.access.principal_policy_target(kind, &name).await?;
        app.access.detach_policy(&target).await
    }
    .await;
    call.finish(result, "identity policy removed").await?;
    Ok(no_content())
}

/// POST /api/v1/{users|robots}/{name}/access-keys
async fn create_access_key(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:CreateAccessKey",
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    let result = app.access.create_access_key(kind, &name).await;
    let detail = match &result {
        Ok(key) => format!("created access key {}", key.access_key_id),
        Err(_) => String::new(),
    };
    let key = call.finish(result, &detail).await?;
    Ok(created(json!({
        "accessKeyId": key.access_key_id,
        "secretAccessKey": key.secret_access_key,
    })))
}

/// GET /api/v1/{users|robots}/{name}/access-keys
async fn list_access_keys(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:ListAccessKeys",
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    let keys = call
        .finish(app.access.access_keys(kind, &name).await, "")
        .await?;
    let keys: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "accessKeyId": k.access_key_id,
                "status": access_key_status(k.active),
                "createdAt": time(k.created_at),
            })
        })
        .collect();
    Ok(ok(json!({ "accessKeys": keys })))
}

/// DELETE /api/v1/{users|robots}/{name}/access-keys/{keyId}
async fn delete_access_key(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path((name, key_id)): Path<(String, String)>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:DeleteAccessKey",
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    let detail = format!("deleted access key {key_id}");
    call.finish(
        app.access.delete_access_key(kind, &name, &key_id).await,
        &detail,
    )
    .await?;
    Ok(no_content())
}

fn access_key_status(active: bool) -> &'static str {
    if active {
        "Active"
    } else {
        "Inactive"
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct UpdateAccessKey {
    status: String,
}

/// PUT /api/v1/{users|robots}/{name}/access-keys/{keyId} `{"status": "Active" | "Inactive"}`
/// (IAM's UpdateAccessKey).
async fn update_access_key(
    State(app): State<AppState>,
    caller: Caller,
    kind: PrincipalKind,
    Path((name, key_id)): Path<(String, String)>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:UpdateAccessKey",
            Permission::Admin,
            principal_arn(&app, kind, &name),
        )
        .await?;
    let (call, req): (Call, UpdateAccessKey) = call.body(&body).await?;
    let active = match req.status.as_str() {
        "Active" => true,
        "Inactive" => false,
        other => {
            return Err(call
                .fail(Error::InvalidParameter(format!(
                    "status: {:?} is not Active or Inactive",
                    other.chars().take(40).collect::<String>()
                )))
                .await)
        }
    };
    let detail = format!(
        "access key {key_id} set {}",
        access_key_status(active).to_ascii_lowercase()
    );
    call.finish(
        app.access
            .set_access_key_active(kind, &name, &key_id, active)
            .await,
        &detail,
    )
    .await?;
    Ok(no_content())
}

// ---- groups ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateGroup {
    name: String,
}

fn group_resource(app: &AppState, name: &str) -> String {
    group_arn(&app.access.registry_id, name)
}

/// POST /api/v1/groups
async fn create_group(
    State(app): State<AppState>,
    caller: Caller,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin(&app, "berth:CreateGroup", Permission::Admin, "groups")
        .await?;
    let (call, req): (Call, CreateGroup) = call.body(&body).await?;
    let detail = format!("created group {:?}", req.name);
    let group = call
        .finish(app.access.create_group(&req.name).await, &detail)
        .await?;
    Ok(created(group_json(&group)))
}

/// GET /api/v1/groups
async fn list_groups(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin(&app, "berth:ListGroups", Permission::Admin, "groups")
        .await?;
    let groups = call.finish(app.access.group_infos().await, "").await?;
    let items: Vec<Value> = groups.iter().map(group_json).collect();
    Ok(ok(json!({ "groups": items })))
}

/// GET /api/v1/groups/{name}
async fn get_group(State(app): State<AppState>, caller: Caller, Path(name): Path<String>) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:GetGroup",
            Permission::Admin,
            group_resource(&app, &name),
        )
        .await?;
    let group = call.finish(app.access.group(&name).await, "").await?;
    Ok(ok(group_json(&group)))
}

/// DELETE /api/v1/groups/{name}
async fn delete_group(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:DeleteGroup",
            Permission::Admin,
            group_resource(&app, &name),
        )
        .await?;
    call.finish(app.access.delete_group(&name).await, "")
        .await?;
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AddMember {
    /// A login name: `alice` or `robot/ci`.
    member: String,
}

/// POST /api/v1/groups/{name}/members
async fn add_group_member(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:AddGroupMember",
            Permission::Admin,
            group_resource(&app, &name),
        )
        .await?;
    let (call, req): (Call, AddMember) = call.body(&body).await?;
    let detail = format!("added member {:?}", req.member);
    let group = call
        .finish(
            app.access.add_group_member(&name, &req.member).await,
            &detail,
        )
        .await?;
    Ok(ok(group_json(&group)))
}

/// DELETE /api/v1/groups/{name}/members/{member}
async fn remove_group_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((name, member)): Path<(String, String)>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:RemoveGroupMember",
            Permission::Admin,
            group_resource(&app, &name),
        )
        .await?;
    let detail = format!("removed member {member:?}");
    call.finish(
        app.access.remove_group_member(&name, &member).await,
        &detail,
    )
    .await?;
    Ok(no_content())
}

/// GET /api/v1/groups/{name}/policy
async fn get_group_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:GetGroupPolicy",
            Permission::Admin,
            group_resource(&app, &name),
        )
        .await?;
    let result = async {
        let target = app.access.group_policy_target(&name).await?;
        app.access.attached_policy(&target).await
    }
    .await;
    Ok(document(call.finish(result, "").await?))
}

/// PUT /api/v1/groups/{name}/policy
async fn put_group_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:PutGroupPolicy",
            Permission::Admin,
            group_resource(&app, &name),
        )
        .await?;
    let (call, text) = call.text(&body).await?;
    let result = async {
        let target = app.access.group_policy_target(&name).await?;
        app.access.attach_policy(&target, &text).await
    }
    .await;
    call.finish(result, "identity policy attached").await?;
    Ok(no_content())
}

/// DELETE /api/v1/groups/{name}/policy
async fn delete_group_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:DeleteGroupPolicy",
            Permission::Admin,
            group_resource(&app, &name),
        )
        .await?;
    let result = async {
        let target = app.access.group_policy_target(&name).await?;
        app.access.detach_policy(&target).await
    }
    .await;
    call.finish(result, "identity policy removed").await?;
    Ok(no_content())
}

// ---- repositories ----

fn repo_resource(app: &AppState, name: &str) -> String {
    repository_arn(&app.access.region, &app.access.registry_id, name)
}

impl Caller {
    /// [`Caller::begin`] for a call that needs the ECR action of the same name on repository
    /// `name`, audited as `ecr:<Action>` on the repository's ARN.
    async fn begin_on_repository<'a>(
        &'a self,
        app: &'a AppState,
        action: Action,
        name: &str,
    ) -> Result<Call<'a>, super::ApiError> {
        self.begin(
            app,
            &format!("ecr:{}", action.name()),
            Permission::Ecr(action, Resource::Repository(name)),
            repo_resource(app, name),
        )
        .await
    }

    /// [`Caller::begin`] for a call that needs the ECR action of the same name on the registry,
    /// audited as `ecr:<Action>` on `resource`.
    async fn begin_on_registry<'a>(
        &'a self,
        app: &'a AppState,
        action: Action,
        resource: impl Into<String>,
    ) -> Result<Call<'a>, super::ApiError> {
        self.begin(
            app,
            &format!("ecr:{}", action.name()),
            Permission::Ecr(action, Resource::Registry),
            resource,
        )
        .await
    }
}

/// POST /api/v1/repositories: ECR's CreateRepository members (`name` is accepted for
/// `repositoryName`); answers the repository.
async fn create_repository(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Payload(body): Payload,
) -> Reply {
    let request: CreateRepositoryRequest = decode(&body)?;
    let created = run_op(&app, &caller, &headers, request).await?;
    Ok((StatusCode::CREATED, Json(created.repository)).into_response())
}

/// GET /api/v1/repositories?limit=&after=: the repositories the caller may describe, by name,
/// a full page at a time; `next` is the `after` of the next page.
async fn list_repositories(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribeRepositoriesRequest {
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
        next_token: query_param(&pairs, "after").map(str::to_owned),
        ..Default::default()
    };
    let page = run_op(&app, &caller, &headers, request).await?;
    Ok(ok(
        json!({ "repositories": page.repositories, "next": page.next_token }),
    ))
}

/// The one repository `name` (DescribeRepositories with one name).
async fn one_repository(
    app: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    name: String,
) -> std::result::Result<Repository, super::ApiError> {
    let request = DescribeRepositoriesRequest {
        repository_names: Some(vec![name]),
        ..Default::default()
    };
    let mut found = run_op(app, caller, headers, request).await?;
    Ok(found.repositories.remove(0))
}

/// GET /api/v1/repositories/{name}
async fn describe_repository(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    Ok(ok(json!(
        one_repository(&app, &caller, &headers, name).await?
    )))
}

/// DELETE /api/v1/repositories/{name}?force=true
async fn delete_repository(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = DeleteRepositoryRequest {
        registry_id: None,
        repository_name: name,
        force: Some(parse_bool("force", query_param(&pairs, "force"))?),
    };
    let deleted = run_op(&app, &caller, &headers, request).await?;
    Ok(ok(json!(deleted.repository)))
}

/// GET /api/v1/repositories/{name}/tag-mutability
async fn get_tag_mutability(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let repository = one_repository(&app, &caller, &headers, name).await?;
    Ok(ok(json!(PutImageTagMutabilityResponse {
        registry_id: repository.registry_id,
        repository_name: repository.repository_name,
        image_tag_mutability: repository.image_tag_mutability,
        image_tag_mutability_exclusion_filters: repository.image_tag_mutability_exclusion_filters,
    })))
}

/// The body of `PUT .../tag-mutability`: PutImageTagMutability's members but the name (other
/// members are ignored, as ECR ignores them, so that the gate decides before anything else).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutTagMutability {
    #[serde(default)]
    image_tag_mutability: Value,
    #[serde(default)]
    image_tag_mutability_exclusion_filters: Option<Value>,
}

/// PUT /api/v1/repositories/{name}/tag-mutability
async fn put_tag_mutability(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
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
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

// ---- policies ----

/// A policy document sent as the request body: UTF-8 text, stored exactly as sent.
fn document_text(body: &[u8]) -> Result<String> {
    String::from_utf8(body.to_vec())
        .map_err(|_| Error::InvalidParameter("the body is not UTF-8 text".into()))
}

/// GET /api/v1/repository-policies/{name}: the document as stored (GetRepositoryPolicy's
/// `policyText`).
async fn get_repository_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let request = GetRepositoryPolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    let found = run_op(&app, &caller, &headers, request).await?;
    Ok(document(found.policy_text))
}

/// PUT /api/v1/repository-policies/{name}: the body is the document (SetRepositoryPolicy).
async fn put_repository_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request = SetRepositoryPolicyRequest {
        registry_id: None,
        repository_name: name,
        policy_text: document_text(&body)?,
        force: None,
    };
    run_op(&app, &caller, &headers, request).await?;
    Ok(no_content())
}

/// DELETE /api/v1/repository-policies/{name}
async fn delete_repository_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let request = DeleteRepositoryPolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    run_op(&app, &caller, &headers, request).await?;
    Ok(no_content())
}

/// GET /api/v1/registry-policy: the document as stored (GetRegistryPolicy's `policyText`).
async fn get_registry_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Reply {
    let found = run_op(&app, &caller, &headers, GetRegistryPolicyRequest {}).await?;
    Ok(document(found.policy_text))
}

/// PUT /api/v1/registry-policy: the body is the document (PutRegistryPolicy).
async fn put_registry_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Payload(body): Payload,
) -> Reply {
    let request = PutRegistryPolicyRequest {
        policy_text: document_text(&body)?,
    };
    run_op(&app, &caller, &headers, request).await?;
    Ok(no_content())
}

/// DELETE /api/v1/registry-policy
async fn delete_registry_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Reply {
    run_op(&app, &caller, &headers, DeleteRegistryPolicyRequest {}).await?;
    Ok(no_content())
}

// ---- lifecycle policies ----

/// A listing's answer with ECR's `nextToken` as `next` (null on the last page), as every REST
/// listing answers; the client passes it back as `after`.
fn with_next(answer: impl Serialize) -> Value {
    let mut value = json!(answer);
    if let Some(object) = value.as_object_mut() {
        let next = object.remove("nextToken").unwrap_or(Value::Null);
        object.insert("next".into(), next);
    }
    value
}

/// GET /api/v1/repositories/{name}/lifecycle-policy: the policy text as saved
/// (GetLifecyclePolicy's `lifecyclePolicyText`).
async fn get_lifecycle_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let request = GetLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    let found = run_op(&app, &caller, &headers, request).await?;
    Ok(document(found.lifecycle_policy_text))
}

/// PUT /api/v1/repositories/{name}/lifecycle-policy: the body is the policy (PutLifecyclePolicy).
async fn put_lifecycle_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request = PutLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
        lifecycle_policy_text: Some(document_text(&body)?),
    };
    run_op(&app, &caller, &headers, request).await?;
    Ok(no_content())
}

/// DELETE /api/v1/repositories/{name}/lifecycle-policy
async fn delete_lifecycle_policy(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let request = DeleteLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    run_op(&app, &caller, &headers, request).await?;
    Ok(no_content())
}

/// POST /api/v1/repositories/{name}/lifecycle/preview: StartLifecyclePolicyPreview of the policy
/// in the body, or of the saved one when the body is empty; the result is at GET.
async fn start_lifecycle_preview(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let text = document_text(&body)?;
    let request = StartLifecyclePolicyPreviewRequest {
        registry_id: None,
        repository_name: name,
        lifecycle_policy_text: Some(text).filter(|t| !t.trim().is_empty()),
    };
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// GET /api/v1/repositories/{name}/lifecycle/preview?limit=&after=&tagStatus=: the last preview
/// (GetLifecyclePolicyPreview), a page of results at a time.
async fn get_lifecycle_preview(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
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
    Ok(ok(with_next(
        run_op(&app, &caller, &headers, request).await?,
    )))
}

/// POST /api/v1/repositories/{name}/lifecycle/run: runs the saved policy now.
async fn run_lifecycle(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let request = RunLifecyclePolicyRequest {
        registry_id: None,
        repository_name: name,
    };
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// GET /api/v1/lifecycle/audit?repository=&limit=&after=: images expired by lifecycle policies,
/// oldest first.
async fn lifecycle_audit(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = ListLifecycleEventsRequest {
        repository_name: query_param(&pairs, "repository").map(str::to_owned),
        next_token: query_param(&pairs, "after").map(str::to_owned),
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
    };
    Ok(ok(with_next(
        run_op(&app, &caller, &headers, request).await?,
    )))
}

// ---- settings ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    create_on_push: Option<bool>,
}

async fn settings_json(app: &AppState) -> Result<Value> {
    Ok(json!({ "createOnPush": app.access.create_on_push().await? }))
}

/// GET /api/v1/gc: garbage collection queues and what this process reclaimed.
async fn gc_status(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin(&app, "berth:GetGcStatus", Permission::Admin, "gc")
        .await?;
    let result = async {
        let s = app.registry.gc_status().await?;
        let pass = |p: &crate::service::GcReport| {
            json!({
                "blobsDeleted": p.blobs_deleted,
                "bytesDeleted": p.bytes_deleted,
                "manifestsDeleted": p.manifests_deleted,
                "blobsKept": p.blobs_kept,
                "manifestsKept": p.manifests_kept,
                "storageErrors": p.storage_errors,
                "startedAt": time(p.started_at),
                "finishedAt": time(p.finished_at),
            })
        };
        Ok(json!({
            "gracePeriodSecs": s.grace_period_secs,
            "intervalSecs": app.config.gc.interval().map(|i| i.as_secs_f64()),
            "queue": {
                "blobs": s.queue.blob_queue,
                "blobsDue": s.queue.blob_due,
                "manifests": s.queue.manifest_queue,
                "manifestsDue": s.queue.manifest_due,
            },
            "sinceStart": {
                "passes": s.since_start.passes,
                "blobsDeleted": s.since_start.blobs_deleted,
                "bytesDeleted": s.since_start.bytes_deleted,
                "manifestsDeleted": s.since_start.manifests_deleted,
                "storageErrors": s.since_start.storage_errors,
            },
            "lastPass": s.last_pass.as_ref().map(pass),
        }))
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

/// GET /api/v1/settings
async fn get_settings(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin(&app, "berth:GetSettings", Permission::Admin, "settings")
        .await?;
    Ok(ok(call.finish(settings_json(&app).await, "").await?))
}

/// PUT /api/v1/settings: changes the settings present in the body.
async fn put_settings(
    State(app): State<AppState>,
    caller: Caller,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin(&app, "berth:PutSettings", Permission::Admin, "settings")
        .await?;
    let (call, req): (Call, Settings) = call.body(&body).await?;
    let result = async {
        if let Some(on) = req.create_on_push {
            app.access.set_create_on_push(on).await?;
        }
        settings_json(&app).await
    }
    .await;
    let detail = match req.create_on_push {
        Some(on) => format!("createOnPush={on}"),
        None => "no change".into(),
    };
    Ok(ok(call.finish(result, &detail).await?))
}

// ---- policy simulator ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Simulate {
    principal: String,
    action: String,
    #[serde(default)]
    repository: Option<String>,
    #[serde(default)]
    source_ip: Option<String>,
    #[serde(default)]
    secure_transport: Option<bool>,
}

/// POST /api/v1/policy-simulator
async fn simulate(State(app): State<AppState>, caller: Caller, Payload(body): Payload) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:SimulatePolicy",
            Permission::Admin,
            "policy-simulator",
        )
        .await?;
    let (call, req): (Call, Simulate) = call.body(&body).await?;
    let result = async {
        let source_ip = req
            .source_ip
            .as_deref()
            .map(|ip| {
                ip.parse().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "sourceIp: {:?} is not an IP address",
                        ip.chars().take(60).collect::<String>()
                    ))
                })
            })
            .transpose()?;
        let request = SimulationRequest {
            principal: req.principal.clone(),
            action: req.action.clone(),
            repository: req.repository.clone(),
            facts: RequestFacts {
                source_ip,
                secure_transport: req.secure_transport.unwrap_or(false),
            },
        };
        app.access.simulate(&request).await
    }
    .await;
    let detail = match &result {
        Ok(s) => format!(
            "{} {} on {}: {}",
            req.principal.chars().take(200).collect::<String>(),
            s.action,
            req.repository.as_deref().unwrap_or("the registry"),
            s.decision
        ),
        Err(_) => String::new(),
    };
    let sim = call.finish(result, &detail).await?;
    let (word, statement) = match &sim.decision {
        crate::policy::Decision::Allow(s) => ("allow", Some(s)),
        crate::policy::Decision::ExplicitDeny(s) => ("explicitDeny", Some(s)),
        crate::policy::Decision::ImplicitDeny(_) => ("implicitDeny", None),
    };
    let statement = statement.map(|s| {
        let (source, policy) = match &s.source {
            PolicySource::Identity(name) => ("identity", Some(name.as_str())),
            PolicySource::Repository => ("repository", None),
            PolicySource::Registry => ("registry", None),
        };
        json!({
            "source": source,
            "policy": policy,
            "sid": s.statement.sid,
            "index": s.statement.index,
            "description": s.to_string(),
        })
    });
    Ok(ok(json!({
        "decision": word,
        "statement": statement,
        "explanation": sim.explanation,
        "principalArn": sim.principal_arn,
        "action": sim.action.iam_name(),
        "repository": req.repository,
    })))
}

// ---- signing keys ----

fn keys_json(app: &AppState) -> Value {
    let keys: Vec<Value> = app
        .access
        .signing_key_ids()
        .into_iter()
        .enumerate()
        .map(|(i, kid)| json!({ "kid": kid, "signing": i == 0 }))
        .collect();
    json!({ "keys": keys })
}

/// GET /api/v1/signing-keys: the key ids tokens are verified with, the signing one first.
async fn signing_keys(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:ListSigningKeys",
            Permission::Admin,
            "signing-keys",
        )
        .await?;
    call.finish(Ok(()), "").await?;
    Ok(ok(keys_json(&app)))
}

/// POST /api/v1/signing-keys/rotate
async fn rotate_signing_key(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:RotateSigningKey",
            Permission::Admin,
            "signing-keys",
        )
        .await?;
    let result = app.access.rotate_signing_key().await;
    let detail = match &result {
        Ok(kid) => format!("now signing with {kid}"),
        Err(_) => String::new(),
    };
    let kid = call.finish(result, &detail).await?;
    let mut v = keys_json(&app);
    v["kid"] = kid.into();
    Ok(ok(v))
}

// ---- audit log ----

/// GET /api/v1/audit?limit=&before=: newest first; `before` is an entry id (from `next`).
async fn audit_log(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Reply {
    let call = caller
        .begin(
            &app,
            "berth:ListAuditEvents",
            Permission::Admin,
            "audit-log",
        )
        .await?;
    let pairs = query_pairs(&query);
    let result = async {
        let limit: u32 = parse_number("limit", query_param(&pairs, "limit"))?.unwrap_or(100);
        let before: Option<i64> = parse_number("before", query_param(&pairs, "before"))?;
        let entries = app.access.audit_log(before, limit).await?;
        let full = entries.len() == limit.clamp(1, crate::access::MAX_AUDIT_PAGE) as usize;
        let next = full.then(|| entries.last().map(|e| e.id)).flatten();
        let entries: Vec<Value> = entries
            .iter()
            .map(|e| {
                json!({
                    "id": e.id,
                    "time": time(e.at),
                    "principal": e.principal,
                    "action": e.action,
                    "resource": e.resource,
                    "outcome": e.outcome,
                    "detail": e.detail,
                    "sourceIp": e.source_ip,
                    "credential": (!e.credential.is_empty()).then_some(&e.credential),
                })
            })
            .collect();
        Ok(json!({ "entries": entries, "next": next }))
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

// ---- scanning ----

fn scanning_json(row: &RepositoryRow) -> Value {
    json!({
        "repositoryName": row.name,
        "imageScanningConfiguration": {"scanOnPush": row.scan_on_push},
    })
}

/// GET /api/v1/repositories/{name}/scanning-configuration
async fn get_scanning_configuration(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::DescribeRepositories, &name)
        .await?;
    let result = async { app.registry.describe_repository(&repo_name(&name)?).await }.await;
    let row = call.finish(result, "").await?;
    Ok(ok(scanning_json(&row)))
}

/// PUT /api/v1/repositories/{name}/scanning-configuration: `{"scanOnPush": true}`.
async fn put_scanning_configuration(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::PutImageScanningConfiguration, &name)
        .await?;
    let (call, req): (_, ImageScanningConfiguration) = call.body(&body).await?;
    let result = async {
        app.registry
            .set_scan_on_push(&repo_name(&name)?, req.scan_on_push)
            .await
    }
    .await;
    let row = call
        .finish(result, &format!("scanOnPush={}", req.scan_on_push))
        .await?;
    Ok(ok(scanning_json(&row)))
}

fn pull_gate_json(name: &str, gate: &PullGate) -> Value {
    json!({
        "repositoryName": name,
        "severityThreshold": gate.severity_threshold,
        "allowlist": gate.allowlist,
        "allowUnscanned": gate.allow_unscanned,
    })
}

/// GET /api/v1/repositories/{name}/pull-gate
async fn get_pull_gate(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::DescribeRepositories, &name)
        .await?;
    let result = async {
        let name = repo_name(&name)?;
        match app.registry.pull_gate(&name).await? {
            Some(gate) => Ok(pull_gate_json(name.as_str(), &gate)),
            None => Err(Error::NotFound(format!(
                "repository '{name}' has no pull gate"
            ))),
        }
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

/// PUT /api/v1/repositories/{name}/pull-gate: `{"severityThreshold": "HIGH", "allowlist":
/// [...], "allowUnscanned": false}`. Changing it is a repository setting like scanning, so it
/// needs `ecr:PutImageScanningConfiguration`.
async fn put_pull_gate(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::PutImageScanningConfiguration, &name)
        .await?;
    let (call, gate): (_, PullGate) = call.body(&body).await?;
    let result = async {
        let name = repo_name(&name)?;
        app.registry.set_pull_gate(&name, Some(&gate)).await?;
        Ok(pull_gate_json(name.as_str(), &gate))
    }
    .await;
    let detail = format!(
        "pull gate severityThreshold={} allowlist={} allowUnscanned={}",
        gate.severity_threshold,
        gate.allowlist.len(),
        gate.allow_unscanned
    );
    Ok(ok(call.finish(result, &detail).await?))
}

/// DELETE /api/v1/repositories/{name}/pull-gate
async fn delete_pull_gate(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::PutImageScanningConfiguration, &name)
        .await?;
    let result = async {
        let name = repo_name(&name)?;
        if app.registry.set_pull_gate(&name, None).await? {
            Ok(())
        } else {
            Err(Error::NotFound(format!(
                "repository '{name}' has no pull gate"
            )))
        }
    }
    .await;
    call.finish(result, "pull gate removed").await?;
    Ok(no_content())
}

/// An image named by `imageDigest` or `imageTag` (query or body).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ImageRef {
    #[serde(default)]
    image_digest: Option<String>,
    #[serde(default)]
    image_tag: Option<String>,
}

/// The digest an image reference names in a repository.
async fn image_digest(app: &AppState, name: &RepoName, image: &ImageRef) -> Result<Digest> {
    let reference = match (&image.image_digest, &image.image_tag) {
        (Some(d), _) => Reference::Digest(Digest::parse(d)?),
        (None, Some(t)) => Reference::Tag(Tag::parse(t)?),
        (None, None) => {
            return Err(Error::InvalidParameter(
                "name the image with imageDigest or imageTag".into(),
            ))
        }
    };
    let found = app
        .registry
        .lookup_image(
            name,
            image
                .image_digest
                .as_ref()
                .and_then(|d| Digest::parse(d).ok())
                .as_ref(),
            match &reference {
                Reference::Tag(t) => Some(t),
                Reference::Digest(_) => None,
            },
            false,
        )
        .await?;
    match found {
        crate::service::ImageLookup::Found(m) => Digest::parse(&m.digest),
        crate::service::ImageLookup::TagDigestMismatch => Err(Error::InvalidParameter(format!(
            "tag {} does not point at {}",
            image.image_tag.as_deref().unwrap_or_default(),
            image.image_digest.as_deref().unwrap_or_default()
        ))),
        crate::service::ImageLookup::NotFound => Err(Error::ManifestUnknown(format!(
            "image {reference} is not in repository {name}"
        ))),
    }
}

/// POST /api/v1/repositories/{name}/image-scans: `{"imageDigest": ...}` or `{"imageTag":
/// ...}` queues a scan now (no daily limit); 202 with the digest and status.
async fn start_image_scan(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::StartImageScan, &name)
        .await?;
    let (call, image): (_, ImageRef) = call.body(&body).await?;
    let result = async {
        let name = repo_name(&name)?;
        let digest = image_digest(&app, &name, &image).await?;
        app.registry.start_image_scan(&name, &digest).await?;
        Ok(json!({
            "repositoryName": name.as_str(),
            "imageDigest": digest.to_string(),
            "imageScanStatus": {"status": "IN_PROGRESS"},
        }))
    }
    .await;
    let value = call.finish(result, "scan queued").await?;
    Ok((StatusCode::ACCEPTED, Json(value)).into_response())
}

/// GET /api/v1/repositories/{name}/scan-findings?imageDigest=|imageTag=&maxResults=&nextToken=:
/// ECR's DescribeImageScanFindings shape.
async fn scan_findings(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::DescribeImageScanFindings, &name)
        .await?;
    let result = async {
        let pairs = query_pairs(&query);
        let limit: usize = parse_number("maxResults", query_param(&pairs, "maxResults"))?.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(Error::InvalidParameter(format!(
                "maxResults must be between 1 and 1000, got {limit}"
            )));
        }
        let after = match query_param(&pairs, "nextToken") {
            Some(t) => t.parse::<i64>().map_err(|_| {
                Error::InvalidParameter("nextToken is not a token this API returned".into())
            })?,
            None => -1,
        };
        let name = repo_name(&name)?;
        let image = ImageRef {
            image_digest: query_param(&pairs, "imageDigest").map(str::to_owned),
            image_tag: query_param(&pairs, "imageTag").map(str::to_owned),
        };
        let digest = image_digest(&app, &name, &image).await?;
        let page = app
            .registry
            .scan_findings_page(&name, &digest, after, limit)
            .await?
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "image {digest} of repository {name} has not been scanned"
                ))
            })?;
        let complete = page.state.status == "COMPLETE";
        let next = match (page.more, page.findings.last()) {
            (true, Some((seq, _))) => Some(seq.to_string()),
            _ => None,
        };
        let counts: serde_json::Map<String, Value> = page
            .severity_counts
            .into_iter()
            .map(|(s, n)| (s, json!(n)))
            .collect();
        let findings: Vec<Value> = page
            .findings
            .into_iter()
            .map(|(_, f)| {
                json!({
                    "name": f.name,
                    "severity": f.severity,
                    "description": f.description,
                    "uri": f.uri,
                    "attributes": f.attributes.into_iter()
                        .map(|(k, v)| json!({"key": k, "value": v}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        let mut out = json!({
            "repositoryName": name.as_str(),
            "imageId": {"imageDigest": digest.to_string()},
            "imageScanStatus": {
                "status": page.state.status,
                "description": page.state.description,
            },
        });
        if complete {
            out["imageScanFindings"] = json!({
                "imageScanCompletedAt": page.state.completed_at.map(time),
                "vulnerabilitySourceUpdatedAt": page.state.vulnerability_source_updated_at.map(time),
                "findingSeverityCounts": counts,
                "findings": findings,
            });
        }
        if let Some(next) = next {
            out["nextToken"] = json!(next);
        }
        Ok(out)
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

/// GET /api/v1/registry/scanning-configuration
async fn get_registry_scanning(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::GetRegistryScanningConfiguration,
            "registry-scanning-configuration",
        )
        .await?;
    let result = app.registry.registry_scanning().await;
    let config = call.finish(result, "").await?;
    Ok(ok(json!({
        "registryId": app.access.registry_id,
        "scanningConfiguration": config,
    })))
}

/// PUT /api/v1/registry/scanning-configuration: ECR's `{"scanType", "rules"}`.
async fn put_registry_scanning(
    State(app): State<AppState>,
    caller: Caller,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::PutRegistryScanningConfiguration,
            "registry-scanning-configuration",
        )
        .await?;
    let (call, config): (_, RegistryScanningConfiguration) = call.body(&body).await?;
    let result = app.registry.put_registry_scanning(&config).await;
    call.finish(result, &format!("{} rules", config.rules.len()))
        .await?;
    Ok(ok(json!({
        "registryId": app.access.registry_id,
        "scanningConfiguration": config,
    })))
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
async fn create_creation_template(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Payload(body): Payload,
) -> Reply {
    let request: CreateRepositoryCreationTemplateRequest = decode(&body)?;
    let created = run_op(&app, &caller, &headers, request).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// GET /api/v1/repository-creation-templates?prefix=&after=&limit=:
/// DescribeRepositoryCreationTemplates; `prefix` (repeatable) keeps only those prefixes, `next`
/// is the `after` of the next page.
async fn list_creation_templates(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribeRepositoryCreationTemplatesRequest {
        prefixes: prefixes(&pairs),
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
        next_token: after(&pairs),
    };
    let page = run_op(&app, &caller, &headers, request).await?;
    Ok(ok(json!({
        "registryId": page.registry_id,
        "repositoryCreationTemplates": page.repository_creation_templates,
        "next": page.next_token,
    })))
}

/// GET /api/v1/repository-creation-templates/{prefix}: DescribeRepositoryCreationTemplates of
/// this prefix; 404 if it has no template.
async fn get_creation_template(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(prefix): Path<String>,
) -> Reply {
    let request = DescribeRepositoryCreationTemplatesRequest {
        prefixes: Some(vec![prefix.clone()]),
        ..Default::default()
    };
    let found = run_op(&app, &caller, &headers, request).await?;
    let template = found
        .repository_creation_templates
        .into_iter()
        .next()
        .ok_or_else(|| {
            crate::service::template_not_found(
                &crate::service::template_prefix(&prefix).unwrap_or(prefix),
            )
        })?;
    Ok(ok(json!({
        "registryId": found.registry_id,
        "repositoryCreationTemplate": template,
    })))
}

/// PUT /api/v1/repository-creation-templates/{prefix}: UpdateRepositoryCreationTemplate of the
/// path's prefix.
async fn update_creation_template(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(prefix): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request: UpdateRepositoryCreationTemplateRequest = decode_for(&body, "prefix", &prefix)?;
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// DELETE /api/v1/repository-creation-templates/{prefix}: answers the deleted template.
async fn delete_creation_template(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(prefix): Path<String>,
) -> Reply {
    let request = DeleteRepositoryCreationTemplateRequest { prefix };
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// GET /api/v1/events?after=&limit=: outbox records (scan results, ...) oldest first, for
/// administrators and event consumers; `after` is the last `id` seen.
async fn list_events(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Reply {
    let call = caller
        .begin(&app, "berth:ListEvents", Permission::Admin, "events")
        .await?;
    let result = async {
        let pairs = query_pairs(&query);
        let limit: usize = parse_number("limit", query_param(&pairs, "limit"))?.unwrap_or(100);
        let after: i64 = parse_number("after", query_param(&pairs, "after"))?.unwrap_or(0);
        let events = app
            .registry
            .outbox_events(after, limit.clamp(1, 1000))
            .await?;
        Ok(json!({
            "events": events.iter().map(|e| json!({
                "id": e.id,
                "detailType": e.kind,
                "detail": e.detail,
                "createdAt": time(e.created_at),
                "deliveredAt": e.delivered_at.map(time),
            })).collect::<Vec<_>>(),
        }))
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

// ---- pull-through cache rules ----

/// POST /api/v1/pull-through-rules: CreatePullThroughCacheRule (with Berth's `revalidateSecs`
/// and `quotaBytes`); 201 with the rule.
async fn create_pull_through_rule(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Payload(body): Payload,
) -> Reply {
    let request: CreatePullThroughCacheRuleRequest = decode(&body)?;
    let rule = run_op(&app, &caller, &headers, request).await?;
    Ok((StatusCode::CREATED, Json(rule)).into_response())
}

/// GET /api/v1/pull-through-rules?prefix=&after=&limit=: DescribePullThroughCacheRules;
/// `prefix` (repeatable) names rules that must exist, `next` is the `after` of the next page.
async fn list_pull_through_rules(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribePullThroughCacheRulesRequest {
        registry_id: None,
        ecr_repository_prefixes: prefixes(&pairs),
        max_results: parse_number("limit", query_param(&pairs, "limit"))?,
        next_token: after(&pairs),
    };
    let page = run_op(&app, &caller, &headers, request).await?;
    Ok(ok(json!({
        "pullThroughCacheRules": page.pull_through_cache_rules,
        "next": page.next_token,
    })))
}

/// GET /api/v1/pull-through-rules/{prefix}[?validate=true]: the rule
/// (DescribePullThroughCacheRules of its prefix); with `validate`, ValidatePullThroughCacheRule
/// (reaches the upstream with the rule's credential: `isValid`, `failure`).
async fn get_pull_through_rule(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(prefix): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    if parse_bool("validate", query_param(&query_pairs(&query), "validate"))? {
        let request = ValidatePullThroughCacheRuleRequest {
            ecr_repository_prefix: prefix,
            registry_id: None,
        };
        return Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)));
    }
    let request = DescribePullThroughCacheRulesRequest {
        ecr_repository_prefixes: Some(vec![prefix]),
        ..Default::default()
    };
    let mut found = run_op(&app, &caller, &headers, request).await?;
    Ok(ok(json!(found.pull_through_cache_rules.remove(0))))
}

/// PUT /api/v1/pull-through-rules/{prefix}: UpdatePullThroughCacheRule of the path's prefix
/// (`credentialArn`, `customRoleArn`, `revalidateSecs`, `quotaBytes`; the upstream cannot
/// change).
async fn update_pull_through_rule(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(prefix): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let request: UpdatePullThroughCacheRuleRequest =
        decode_for(&body, "ecrRepositoryPrefix", &prefix)?;
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// DELETE /api/v1/pull-through-rules/{prefix}: DeletePullThroughCacheRule; answers the deleted
/// rule (its cached repositories stay).
async fn delete_pull_through_rule(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(prefix): Path<String>,
) -> Reply {
    let request = DeletePullThroughCacheRuleRequest {
        ecr_repository_prefix: prefix,
        registry_id: None,
    };
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}
