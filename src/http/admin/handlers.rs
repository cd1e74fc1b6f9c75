//! The admin API's handlers: parse, [`Caller::begin`], one call into the access layer or the
//! registry service, [`Call::finish`], JSON. Each names the method and path it serves.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{decode, run_op, Call, Caller, Payload, Permission, Routes};
use crate::access::{
    GroupInfo, PolicyTarget, PrincipalInfo, PrincipalKind, RequestFacts, Resource,
    SimulationRequest,
};
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::meta::now_millis;
use crate::oci::RepoName;
use crate::ops::shapes::{
    CreateRepositoryRequest, DeletePullGateRequest, DeleteRepositoryRequest,
    DescribeImageScanFindingsRequest, DescribeRepositoriesRequest, GetPullGateRequest,
    GetRegistryScanningConfigurationRequest, ImageIdentifier, ImageScanningConfiguration,
    PutImageScanningConfigurationRequest, PutImageScanningConfigurationResponse,
    PutImageTagMutabilityRequest, PutImageTagMutabilityResponse, PutPullGateRequest,
    PutRegistryScanningConfigurationRequest, Repository, StartImageScanRequest,
};
use crate::policy::templates::{Template, TemplateFields};
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

/// GET /api/v1/repository-policies/{name}
async fn get_repository_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::GetRepositoryPolicy, &name)
        .await?;
    let result = async {
        let repo = app.registry.describe_repository(&repo_name(&name)?).await?;
        app.access
            .attached_policy(&PolicyTarget::Repository(repo.name))
            .await
    }
    .await;
    Ok(document(call.finish(result, "").await?))
}

/// PUT /api/v1/repository-policies/{name}
async fn put_repository_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::SetRepositoryPolicy, &name)
        .await?;
    let (call, text) = call.text(&body).await?;
    let result = async {
        let repo = app.registry.describe_repository(&repo_name(&name)?).await?;
        app.access
            .attach_policy(&PolicyTarget::Repository(repo.name), &text)
            .await
    }
    .await;
    call.finish(result, "repository policy set").await?;
    Ok(no_content())
}

/// DELETE /api/v1/repository-policies/{name}
async fn delete_repository_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::DeleteRepositoryPolicy, &name)
        .await?;
    let result = async {
        let repo = app.registry.describe_repository(&repo_name(&name)?).await?;
        app.access
            .detach_policy(&PolicyTarget::Repository(repo.name))
            .await
    }
    .await;
    call.finish(result, "repository policy removed").await?;
    Ok(no_content())
}

// ---- lifecycle policies ----

/// GET /api/v1/repositories/{name}/lifecycle-policy: the policy text as saved.
async fn get_lifecycle_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::GetLifecyclePolicy, &name)
        .await?;
    let result = async {
        let name = repo_name(&name)?;
        match app.registry.lifecycle_policy(&name).await? {
            Some(row) => Ok(row.text),
            None => Err(Error::NotFound(format!(
                "repository '{name}' has no lifecycle policy"
            ))),
        }
    }
    .await;
    Ok(document(call.finish(result, "").await?))
}

/// PUT /api/v1/repositories/{name}/lifecycle-policy: validates (ECR's rules) and saves the text.
async fn put_lifecycle_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::PutLifecyclePolicy, &name)
        .await?;
    let (call, text) = call.text(&body).await?;
    let result = async {
        app.registry
            .put_lifecycle_policy(&repo_name(&name)?, &text)
            .await
    }
    .await;
    call.finish(result, "lifecycle policy set").await?;
    Ok(no_content())
}

/// DELETE /api/v1/repositories/{name}/lifecycle-policy
async fn delete_lifecycle_policy(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::DeleteLifecyclePolicy, &name)
        .await?;
    let result = async {
        let name = repo_name(&name)?;
        match app.registry.delete_lifecycle_policy(&name).await? {
            Some(_) => Ok(()),
            None => Err(Error::NotFound(format!(
                "repository '{name}' has no lifecycle policy"
            ))),
        }
    }
    .await;
    call.finish(result, "lifecycle policy removed").await?;
    Ok(no_content())
}

fn preview_json(p: &crate::service::LifecyclePreview) -> Value {
    json!({
        "repositoryName": p.repository,
        "status": "COMPLETE",
        "lifecyclePolicyText": p.policy_text,
        "evaluatedAt": time(p.evaluated_at),
        "expiring": p.expiring.iter().map(expiry_json).collect::<Vec<_>>(),
        "summary": {
            "expiringImageTotalCount": p.summary.expiring_image_total_count,
            "evaluatedImageCount": p.summary.evaluated_image_count,
            "perRule": p.summary.per_rule.iter().map(|(rule, n)| json!({
                "rulePriority": rule, "expiringImageCount": n,
            })).collect::<Vec<_>>(),
        },
    })
}

fn expiry_json(e: &crate::service::LifecycleExpiry) -> Value {
    json!({
        "imageDigest": e.digest,
        "imageTags": e.tags,
        "imagePushedAt": time(e.pushed_at),
        "lastRecordedPullTime": e.last_pulled_at.map(time),
        "appliedRulePriority": e.rule_priority,
    })
}

/// POST /api/v1/repositories/{name}/lifecycle/preview: evaluates the policy in the body, or the
/// saved one when the body is empty, now; nothing is expired. The result is kept as the
/// repository's last preview.
async fn start_lifecycle_preview(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::StartLifecyclePolicyPreview, &name)
        .await?;
    let (call, text) = call.text(&body).await?;
    let result = async {
        let text = Some(text.as_str()).filter(|t| !t.trim().is_empty());
        let preview = app
            .registry
            .lifecycle_preview(&repo_name(&name)?, text)
            .await?;
        Ok(preview_json(&preview))
    }
    .await;
    Ok(ok(call.finish(result, "lifecycle preview").await?))
}

/// GET /api/v1/repositories/{name}/lifecycle/preview: the last preview.
async fn get_lifecycle_preview(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::GetLifecyclePolicyPreview, &name)
        .await?;
    let result = async {
        let name = repo_name(&name)?;
        match app.registry.last_lifecycle_preview(&name).await? {
            Some(p) => Ok(preview_json(&p)),
            None => Err(Error::NotFound(format!(
                "repository '{name}' has no lifecycle policy preview"
            ))),
        }
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

/// POST /api/v1/repositories/{name}/lifecycle/run: runs the saved policy now.
async fn run_lifecycle(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_repository(&app, Action::PutLifecyclePolicy, &name)
        .await?;
    let result = async {
        let name = repo_name(&name)?;
        match app.registry.lifecycle_run(&name).await? {
            Some(run) => Ok(json!({
                "repositoryName": run.repository,
                "evaluatedAt": time(run.evaluated_at),
                "expired": run.expired.iter().map(expiry_json).collect::<Vec<_>>(),
                "expiredImageCount": run.expired.len(),
                "skippedImageCount": run.skipped,
                "removedArtifactCount": run.removed,
            })),
            None => Err(Error::NotFound(format!(
                "repository '{name}' has no lifecycle policy"
            ))),
        }
    }
    .await;
    let detail = match &result {
        Ok(v) => format!("lifecycle run expired {} image(s)", v["expiredImageCount"]),
        Err(_) => String::new(),
    };
    Ok(ok(call.finish(result, &detail).await?))
}

/// GET /api/v1/lifecycle/audit?repository=&after=&limit=: images expired by lifecycle policies,
/// oldest first; `after` is an entry id (the previous page's `next`). Needs
/// ecr:GetLifecyclePolicy on the repository, or on every repository without `repository`.
async fn lifecycle_audit(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let repository = query_param(&pairs, "repository").map(str::to_owned);
    let resource = match &repository {
        Some(r) => repo_resource(&app, r),
        None => "lifecycle-audit".to_owned(),
    };
    let call = caller
        .begin(
            &app,
            "berth:ListLifecycleEvents",
            Permission::Ecr(
                Action::GetLifecyclePolicy,
                repository
                    .as_deref()
                    .map_or(Resource::Registry, Resource::Repository),
            ),
            resource,
        )
        .await?;
    let result = async {
        let repository = repository.as_deref().map(repo_name).transpose()?;
        let limit: i64 = parse_number("limit", query_param(&pairs, "limit"))?.unwrap_or(100);
        let limit = limit.clamp(1, 1000);
        let after: i64 = parse_number("after", query_param(&pairs, "after"))?.unwrap_or(0);
        let rows = app
            .registry
            .lifecycle_audit(repository.as_ref(), after, limit)
            .await?;
        let next = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|r| r.id))
            .flatten();
        let entries: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "time": time(r.at),
                    "repositoryName": r.repository,
                    "imageDigest": r.digest,
                    "imageTags": r.tags,
                    "appliedRulePriority": r.rule_priority,
                    "removedWithImage": r.removed,
                })
            })
            .collect();
        Ok(json!({ "entries": entries, "next": next }))
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

/// GET /api/v1/registry-policy
async fn get_registry_policy(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin_on_registry(&app, Action::GetRegistryPolicy, "registry-policy")
        .await?;
    let result = app.access.attached_policy(&PolicyTarget::Registry).await;
    Ok(document(call.finish(result, "").await?))
}

/// PUT /api/v1/registry-policy
async fn put_registry_policy(
    State(app): State<AppState>,
    caller: Caller,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_registry(&app, Action::PutRegistryPolicy, "registry-policy")
        .await?;
    let (call, text) = call.text(&body).await?;
    let result = app
        .access
        .attach_policy(&PolicyTarget::Registry, &text)
        .await;
    call.finish(result, "registry policy set").await?;
    Ok(no_content())
}

/// DELETE /api/v1/registry-policy
async fn delete_registry_policy(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin_on_registry(&app, Action::DeleteRegistryPolicy, "registry-policy")
        .await?;
    let result = app.access.detach_policy(&PolicyTarget::Registry).await;
    call.finish(result, "registry policy removed").await?;
    Ok(no_content())
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

/// GET /api/v1/repositories/{name}/scanning-configuration: PutImageScanningConfiguration's
/// shape, read with DescribeRepositories.
async fn get_scanning_configuration(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let repository = one_repository(&app, &caller, &headers, name).await?;
    Ok(ok(json!(PutImageScanningConfigurationResponse {
        registry_id: repository.registry_id,
        repository_name: repository.repository_name,
        image_scanning_configuration: repository.image_scanning_configuration,
    })))
}

/// The body of `PUT .../scanning-configuration`: PutImageScanningConfiguration's
/// `imageScanningConfiguration`, or its one member `scanOnPush` alone.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutScanningConfiguration {
    #[serde(default)]
    image_scanning_configuration: Option<ImageScanningConfiguration>,
    #[serde(default)]
    scan_on_push: Option<bool>,
}

/// PUT /api/v1/repositories/{name}/scanning-configuration
async fn put_scanning_configuration(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
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
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// GET /api/v1/repositories/{name}/pull-gate
async fn get_pull_gate(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let request = GetPullGateRequest {
        repository_name: name,
    };
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// The body of `PUT .../pull-gate`: PutPullGate's members but the name.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutPullGate {
    #[serde(default)]
    severity_threshold: Option<String>,
    #[serde(default)]
    allowlist: Option<Vec<String>>,
    #[serde(default)]
    allow_unscanned: Option<bool>,
}

/// PUT /api/v1/repositories/{name}/pull-gate: `{"severityThreshold": "HIGH", "allowlist":
/// [...], "allowUnscanned": false}`.
async fn put_pull_gate(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let body: PutPullGate = decode(&body)?;
    let request = PutPullGateRequest {
        repository_name: name,
        severity_threshold: body.severity_threshold,
        allowlist: body.allowlist,
        allow_unscanned: body.allow_unscanned,
    };
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// DELETE /api/v1/repositories/{name}/pull-gate
async fn delete_pull_gate(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Reply {
    let request = DeletePullGateRequest {
        repository_name: name,
    };
    run_op(&app, &caller, &headers, request).await?;
    Ok(no_content())
}

/// An image as the REST API names it: ECR's `imageId`, or its members `imageDigest` and
/// `imageTag` directly (in a body or the query).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageParam {
    #[serde(default)]
    image_id: Option<ImageIdentifier>,
    #[serde(default)]
    image_digest: Option<String>,
    #[serde(default)]
    image_tag: Option<String>,
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
async fn start_image_scan(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let image: ImageParam = decode(&body)?;
    let request = StartImageScanRequest {
        registry_id: None,
        repository_name: name,
        image_id: image.image_id(),
    };
    let started = run_op(&app, &caller, &headers, request).await?;
    Ok((StatusCode::ACCEPTED, Json(started)).into_response())
}

/// GET /api/v1/repositories/{name}/scan-findings?imageDigest=|imageTag=&maxResults=&nextToken=:
/// DescribeImageScanFindings, the same answer and the same page tokens as the ECR API's.
async fn scan_findings(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let pairs = query_pairs(&query);
    let request = DescribeImageScanFindingsRequest {
        registry_id: None,
        repository_name: name,
        image_id: ImageParam::from_query(&pairs).image_id(),
        next_token: query_param(&pairs, "nextToken").map(str::to_owned),
        max_results: parse_number("maxResults", query_param(&pairs, "maxResults"))?,
    };
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// GET /api/v1/registry/scanning-configuration
async fn get_registry_scanning(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Reply {
    let request = GetRegistryScanningConfigurationRequest {};
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

/// PUT /api/v1/registry/scanning-configuration: ECR's `{"scanType", "rules"}`; answers
/// PutRegistryScanningConfiguration's `{"registryScanningConfiguration"}`.
async fn put_registry_scanning(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Payload(body): Payload,
) -> Reply {
    let request: PutRegistryScanningConfigurationRequest = decode(&body)?;
    Ok(ok(json!(run_op(&app, &caller, &headers, request).await?)))
}

// ---- repository creation templates ----

/// A template in ECR's shape, with RFC 3339 times as the other REST answers.
fn creation_template_json(app: &AppState, t: &Template) -> Value {
    let mut m = t.to_json();
    m.insert("createdAt".into(), time(t.created_at).into());
    m.insert("updatedAt".into(), time(t.updated_at).into());
    json!({
        "registryId": app.access.registry_id,
        "repositoryCreationTemplate": Value::Object(m),
    })
}

fn template_resource(prefix: &str) -> String {
    format!("repository-creation-template/{prefix}")
}

/// POST /api/v1/repository-creation-templates: ECR's CreateRepositoryCreationTemplate members.
async fn create_creation_template(
    State(app): State<AppState>,
    caller: Caller,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::CreateRepositoryCreationTemplate,
            "repository-creation-templates",
        )
        .await?;
    let (call, fields): (_, TemplateFields) = call.body(&body).await?;
    let result = app.registry.create_template(&fields).await;
    let detail = match &result {
        Ok(t) => format!("prefix={}", t.prefix),
        Err(_) => String::new(),
    };
    let t = call.finish(result, &detail).await?;
    Ok(created(creation_template_json(&app, &t)))
}

/// GET /api/v1/repository-creation-templates?prefix=&after=&limit=: templates by prefix (byte
/// order); `prefix` (repeatable) keeps only those prefixes; `next` is the `after` of the next
/// page.
async fn list_creation_templates(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::DescribeRepositoryCreationTemplates,
            "repository-creation-templates",
        )
        .await?;
    let pairs = query_pairs(&query);
    let result = async {
        let limit: usize = parse_number("limit", query_param(&pairs, "limit"))?
            .unwrap_or(100)
            .clamp(1, 1000);
        let after = query_param(&pairs, "after").unwrap_or("");
        let prefixes: Vec<String> = pairs
            .iter()
            .filter(|(k, _)| k == "prefix")
            .map(|(_, v)| v.clone())
            .collect();
        let filter = (!prefixes.is_empty()).then_some(prefixes.as_slice());
        let mut found = app
            .registry
            .describe_templates(filter, after, limit + 1)
            .await?;
        let next = (found.len() > limit).then(|| {
            found.truncate(limit);
            found[limit - 1].prefix.clone()
        });
        let items: Vec<Value> = found
            .iter()
            .map(|t| creation_template_json(&app, t)["repositoryCreationTemplate"].take())
            .collect();
        Ok(json!({
            "registryId": app.access.registry_id,
            "repositoryCreationTemplates": items,
            "next": next,
        }))
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

/// GET /api/v1/repository-creation-templates/{prefix}
async fn get_creation_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::DescribeRepositoryCreationTemplates,
            template_resource(&prefix),
        )
        .await?;
    let t = call
        .finish(app.registry.template(&prefix).await, "")
        .await?;
    Ok(ok(creation_template_json(&app, &t)))
}

/// PUT /api/v1/repository-creation-templates/{prefix}: UpdateRepositoryCreationTemplate's
/// members; those given replace the stored ones.
async fn update_creation_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::UpdateRepositoryCreationTemplate,
            template_resource(&prefix),
        )
        .await?;
    let (call, fields): (_, TemplateFields) = call.body(&body).await?;
    let result = async {
        if let Some(given) = &fields.prefix {
            let same = given
                .as_str()
                .and_then(|g| crate::service::template_prefix(g).ok())
                .is_some_and(|g| Some(g) == crate::service::template_prefix(&prefix).ok());
            if !same {
                return Err(Error::InvalidParameter(
                    "prefix: the body's prefix differs from the path's; a template's prefix cannot change".into(),
                ));
            }
        }
        app.registry.update_template(&prefix, &fields).await
    }
    .await;
    let t = call.finish(result, "").await?;
    Ok(ok(creation_template_json(&app, &t)))
}

/// DELETE /api/v1/repository-creation-templates/{prefix}: answers the deleted template.
async fn delete_creation_template(
    State(app): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::DeleteRepositoryCreationTemplate,
            template_resource(&prefix),
        )
        .await?;
    let t = call
        .finish(app.registry.delete_template(&prefix).await, "")
        .await?;
    Ok(ok(creation_template_json(&app, &t)))
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

fn rule_json(app: &AppState, r: &crate::meta::StoredRule) -> Value {
    json!({
        "ecrRepositoryPrefix": r.rule.prefix,
        "upstreamRegistryUrl": r.rule.upstream_url,
        "upstreamRegistry": r.rule.upstream_registry,
        "credentialArn": r.rule.credential_arn,
        "customRoleArn": r.rule.custom_role_arn,
        "upstreamRepositoryPrefix": r.rule.upstream_repository_prefix,
        "revalidateSecs": r.revalidate_secs.unwrap_or(app.config.pull_through.revalidate_secs as i64),
        "quotaBytes": r.quota_bytes,
        "registryId": app.access.registry_id,
        "createdAt": time(r.rule.created_at),
        "updatedAt": time(r.rule.updated_at),
    })
}

/// The body of `POST /api/v1/pull-through-rules` and `PUT .../{prefix}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleBody {
    #[serde(default)]
    ecr_repository_prefix: Option<String>,
    #[serde(default)]
    upstream_registry_url: Option<String>,
    #[serde(default)]
    upstream_registry: Option<String>,
    #[serde(default)]
    credential_arn: Option<String>,
    #[serde(default)]
    custom_role_arn: Option<String>,
    #[serde(default)]
    upstream_repository_prefix: Option<String>,
    #[serde(default)]
    revalidate_secs: Option<i64>,
    #[serde(default)]
    quota_bytes: Option<i64>,
}

/// POST /api/v1/pull-through-rules (as ECR's CreatePullThroughCacheRule, plus `revalidateSecs`
/// and `quotaBytes`).
async fn create_pull_through_rule(
    State(app): State<AppState>,
    caller: Caller,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::CreatePullThroughCacheRule,
            "pull-through-rules",
        )
        .await?;
    let (call, req): (_, RuleBody) = call.body(&body).await?;
    let result = async {
        let input =
            crate::proxy::RuleInput {
                ecr_repository_prefix: req.ecr_repository_prefix.clone().ok_or_else(|| {
                    Error::InvalidParameter("ecrRepositoryPrefix is required".into())
                })?,
                upstream_registry_url: req.upstream_registry_url.clone().ok_or_else(|| {
                    Error::InvalidParameter("upstreamRegistryUrl is required".into())
                })?,
                upstream_registry: req.upstream_registry.clone(),
                credential_arn: req.credential_arn.clone(),
                custom_role_arn: req.custom_role_arn.clone(),
                upstream_repository_prefix: req.upstream_repository_prefix.clone(),
                revalidate_secs: req.revalidate_secs,
                quota_bytes: req.quota_bytes,
            };
        Ok(app.pull_through.create_rule(&input).await?)
    }
    .await;
    let detail = format!(
        "prefix={} upstream={}",
        req.ecr_repository_prefix.as_deref().unwrap_or(""),
        req.upstream_registry_url.as_deref().unwrap_or("")
    );
    let rule = call.finish(result, &detail).await?;
    Ok(created(rule_json(&app, &rule)))
}

/// GET /api/v1/pull-through-rules
async fn list_pull_through_rules(State(app): State<AppState>, caller: Caller) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::DescribePullThroughCacheRules,
            "pull-through-rules",
        )
        .await?;
    let result = app.registry.meta.pull_through_rules().await;
    let rules = call.finish(result, "").await?;
    Ok(ok(json!({
        "pullThroughCacheRules": rules.iter().map(|r| rule_json(&app, r)).collect::<Vec<_>>(),
    })))
}

/// GET /api/v1/pull-through-rules/{prefix}[?validate=true]: with `validate`, also reaches the
/// upstream with the rule's credential (`isValid`, `failure`), as ValidatePullThroughCacheRule.
async fn get_pull_through_rule(
    State(app): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let validate = query_param(&query_pairs(&query), "validate") == Some("true");
    let (action, name) = if validate {
        (
            Action::ValidatePullThroughCacheRule,
            "ecr:ValidatePullThroughCacheRule",
        )
    } else {
        (
            Action::DescribePullThroughCacheRules,
            "ecr:DescribePullThroughCacheRules",
        )
    };
    let call = caller
        .begin(
            &app,
            name,
            Permission::Ecr(action, Resource::Registry),
            format!("pull-through-rule/{prefix}"),
        )
        .await?;
    let result = async {
        let rule = app.pull_through.find_rule(&prefix).await?;
        let mut out = rule_json(&app, &rule);
        if validate {
            let (valid, failure) =
                crate::proxy::manage::validation_outcome(app.pull_through.validate(&rule).await);
            out["isValid"] = json!(valid);
            out["failure"] = json!(failure);
        }
        Ok(out)
    }
    .await;
    Ok(ok(call.finish(result, "").await?))
}

/// PUT /api/v1/pull-through-rules/{prefix}: `credentialArn`, `customRoleArn`,
/// `revalidateSecs`, `quotaBytes` (the upstream and prefixes cannot change).
async fn update_pull_through_rule(
    State(app): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
    Payload(body): Payload,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::UpdatePullThroughCacheRule,
            format!("pull-through-rule/{prefix}"),
        )
        .await?;
    let (call, req): (_, RuleBody) = call.body(&body).await?;
    let result = async {
        if req.upstream_registry_url.is_some() || req.upstream_repository_prefix.is_some() {
            return Err(Error::InvalidParameter(
                "a rule's upstream cannot change; delete it and create a new one".into(),
            ));
        }
        let input = crate::proxy::RuleInput {
            ecr_repository_prefix: prefix.clone(),
            credential_arn: req.credential_arn.clone(),
            custom_role_arn: req.custom_role_arn.clone(),
            revalidate_secs: req.revalidate_secs,
            quota_bytes: req.quota_bytes,
            ..Default::default()
        };
        Ok(app.pull_through.update_rule(&input).await?)
    }
    .await;
    let rule = call.finish(result, "rule updated").await?;
    Ok(ok(rule_json(&app, &rule)))
}

/// DELETE /api/v1/pull-through-rules/{prefix}: cached repositories stay.
async fn delete_pull_through_rule(
    State(app): State<AppState>,
    caller: Caller,
    Path(prefix): Path<String>,
) -> Reply {
    let call = caller
        .begin_on_registry(
            &app,
            Action::DeletePullThroughCacheRule,
            format!("pull-through-rule/{prefix}"),
        )
        .await?;
    let result = async { Ok(app.pull_through.delete_rule(&prefix).await?) }.await;
    call.finish(result, "rule deleted").await?;
    Ok(no_content())
}
