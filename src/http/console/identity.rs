//! The identity pages, for administrators: users (passwords, access keys), robot accounts
//! (expiry, secrets, access keys) and groups (members), through the identity operations. A new
//! secret is shown once, on the page that answers the form that made it.

use std::marker::PhantomData;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Invalid, Nav};
use super::{encode, redirect, ConsoleForm, Session, PREFIX};
use crate::error::Error;
use crate::http::AppState;
use crate::ops::identity::{AccountKind, Robots, Users};
use crate::ops::shapes::{
    Account, AddGroupMemberRequest, ChangePasswordRequest, CreateAccessKeyRequest,
    CreateGroupRequest, CreateRobotRequest, CreateUserRequest, DeleteAccessKeyRequest,
    DeleteAccountRequest, DeleteGroupRequest, GetAccountRequest, ListAccessKeysRequest,
    ListAccountsRequest, ListGroupsRequest, RegenerateRobotSecretRequest, RemoveGroupMemberRequest,
    RobotList, UpdateAccessKeyRequest, UserList,
};

/// Users and robot accounts as the console shows them.
trait Kind: AccountKind {
    /// The listing's path.
    const PATH: &'static str;
    /// The listing's title and table id.
    const TITLE: &'static str;
    const TABLE: &'static str;
    /// "user", "robot account".
    const ONE: &'static str;
    fn accounts(list: Self::List) -> Vec<Account>;
}

impl Kind for Users {
    const PATH: &'static str = "/console/users";
    const TITLE: &'static str = "Users";
    const TABLE: &'static str = "users";
    const ONE: &'static str = "user";
    fn accounts(list: UserList) -> Vec<Account> {
        list.users
    }
}

impl Kind for Robots {
    const PATH: &'static str = "/console/robots";
    const TITLE: &'static str = "Robot accounts";
    const TABLE: &'static str = "robots";
    const ONE: &'static str = "robot account";
    fn accounts(list: RobotList) -> Vec<Account> {
        list.robots
    }
}

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    let router = router
        .route("/console/users", get(list::<Users>).post(create_user))
        .route("/console/robots", get(list::<Robots>).post(create_robot))
        .route("/console/users/{name}/password", post(change_password))
        .route("/console/robots/{name}/secret", post(regenerate_secret))
        .route("/console/groups", get(groups).post(create_group))
        .route("/console/groups/{name}/delete", post(delete_group))
        .route("/console/groups/{name}/members", post(add_member))
        .route("/console/groups/{name}/members/remove", post(remove_member));
    let router = account_routes::<Users>(router, "/console/users");
    account_routes::<Robots>(router, "/console/robots")
}

fn account_routes<K: Kind>(router: Router<AppState>, base: &str) -> Router<AppState> {
    router
        .route(&format!("{base}/{{name}}"), get(account::<K>))
        .route(
            &format!("{base}/{{name}}/delete"),
            post(delete_account::<K>),
        )
        .route(
            &format!("{base}/{{name}}/access-keys"),
            post(create_key::<K>),
        )
        .route(
            &format!("{base}/{{name}}/access-keys/{{key}}/status"),
            post(key_status::<K>),
        )
        .route(
            &format!("{base}/{{name}}/access-keys/{{key}}/delete"),
            post(delete_key::<K>),
        )
}

#[derive(Deserialize, Default)]
struct Done {
    done: Option<String>,
}

/// The notice for `?done=<key>` (keys only: a link cannot put words in the page).
fn done_notice(done: Option<&str>) -> Markup {
    let text = match done {
        Some("created") => "Created.",
        Some("deleted") => "Deleted.",
        Some("password-changed") => {
            "The password was changed; tokens and registry passwords issued for the old one stop working."
        }
        Some("key-activated") => "The access key is active.",
        Some("key-deactivated") => {
            "The access key is inactive: it signs nothing until it is activated again."
        }
        Some("key-deleted") => "The access key was deleted.",
        Some("member-added") => "The member was added.",
        Some("member-removed") => "The member was removed.",
        _ => return html! {},
    };
    layout::notice(text)
}

fn subnav(current: &str) -> Markup {
    layout::subnav(
        "Identity",
        &[
            ("/console/users", "Users"),
            ("/console/groups", "Groups"),
            ("/console/robots", "Robot accounts"),
        ],
        current,
    )
}

/// An identity page: 200, or the status of the error its form shows.
fn page(session: &Session, status: StatusCode, title: &str, body: Markup) -> Response {
    layout::page_with_status(status, Some(session), title, Nav::Identity, body)
}

/// Which field an identity operation's message is about.
const MEMBERS: &[(&str, &str)] = &[
    ("password", "password"),
    ("expiresAt", "expires-at"),
    ("\"name\"", "name"),
    ("name", "name"),
    ("exists", "name"),
];

/// A refusal of the gate is a page of its own; other errors go next to a field.
fn refusal(session: &Session, e: &Error) -> Option<Response> {
    matches!(e, Error::Denied(_) | Error::Unauthorized(_))
        .then(|| layout::error_page(Some(session), e))
}

fn post_button(session: &Session, action: &str, label: &str, aria: &str, class: &str) -> Markup {
    html! {
        form class="inline" method="post" action=(action) {
            (layout::csrf(session))
            button type="submit" class=(class) aria-label=(aria) { (label) }
        }
    }
}

// ---- users and robot accounts ----

async fn list<K: Kind>(session: Session, Query(q): Query<Done>) -> Response {
    list_page::<K>(&session, q.done.as_deref(), None, None, None).await
}

async fn list_page<K: Kind>(
    session: &Session,
    done: Option<&str>,
    values: Option<&ConsoleForm>,
    invalid: Option<&Invalid>,
    secret: Option<Markup>,
) -> Response {
    let accounts = match session
        .run(ListAccountsRequest::<K> { kind: PhantomData })
        .await
    {
        Ok(l) => K::accounts(l),
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let robots = K::TABLE == "robots";
    let err = |f: &str| Invalid::on(invalid, f);
    let value = |f: &str| values.map_or(String::new(), |v| v.get(f).to_owned());
    let body = html! {
        h1 { (K::TITLE) }
        (subnav(K::PATH))
        (done_notice(done))
        @if let Some(secret) = secret { (secret) }
        @if accounts.is_empty() {
            p { "None yet." }
        } @else {
            label for="filter" hidden { "Filter" }
            input type="search" id="filter" data-filter=(K::TABLE) hidden;
            div class="table-wrap" {
                table id=(K::TABLE) {
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Groups" }
                        @if robots { th scope="col" { "Expires" } }
                        th scope="col" { "Created" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for a in &accounts {
                            @let href = format!("{}/{}", K::PATH, encode(&a.name));
                            tr data-name=(a.name) {
                                td { a href=(href) { (a.login_name) } }
                                td { @for g in &a.groups { span class="badge" { (g) } } }
                                @if robots {
                                    td {
                                        @match &a.expires_at {
                                            Some(Some(at)) => { (rfc3339_time(at)) @if a.expired == Some(true) { " " strong class="error" { "(expired)" } } },
                                            _ => { span class="muted" { "never" } },
                                        }
                                    }
                                }
                                td { (rfc3339_time(&a.created_at)) }
                                td { div class="actions" {
                                    a class="button secondary" href=(href) aria-label={ "Manage " (a.login_name) } { "Manage" }
                                    (post_button(session, &format!("{href}/delete"), "Delete", &format!("Delete {} {}", K::ONE, a.login_name), "danger"))
                                } }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New " (K::ONE) }
        form method="post" action=(K::PATH) class="panel" id={ "create-" (K::TABLE) } {
            (layout::csrf(session))
            (layout::field_error("form", err("form").as_deref()))
            (layout::input("text", "name", "Name", &value("name"), err("name").as_deref()))
            @if robots {
                (layout::input("datetime-local", "expires-at", "Expires at, UTC (optional; empty: never)", &value("expires-at"), err("expires-at").as_deref()))
            } @else {
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="new-password"
                    aria-invalid=[err("password").map(|_| "true")]
                    aria-describedby=[err("password").map(|_| "password-error")];
                (layout::field_error("password", err("password").as_deref()))
            }
            p { button type="submit" { "Create " (K::ONE) } }
        }
    };
    page(
        session,
        invalid.map_or(StatusCode::OK, |i| i.status),
        K::TITLE,
        body,
    )
}

/// An RFC 3339 time of the identity answers as a `<time>`.
fn rfc3339_time(at: &str) -> Markup {
    match chrono::DateTime::parse_from_rfc3339(at) {
        Ok(t) => layout::time_ms(t.timestamp_millis()),
        Err(_) => html! { (at) },
    }
}

async fn create_user(form: ConsoleForm) -> Response {
    let request = CreateUserRequest {
        name: Some(form.get("name").trim().to_owned()),
        password: Some(form.get("password").to_owned()),
        unknown: Default::default(),
    };
    match form.session.run(request).await {
        Ok(a) => redirect(&format!("{PREFIX}/users/{}?done=created", encode(&a.name))),
        Err(e) => match refusal(&form.session, &e) {
            Some(r) => r,
            None => {
                let invalid = Invalid::of(&e, MEMBERS, "form");
                list_page::<Users>(&form.session, None, Some(&form), Some(&invalid), None).await
            }
        },
    }
}

/// A `datetime-local` value (UTC) as RFC 3339; other text is passed on for the operation to
/// judge.
fn expiry(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    for format in ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, format) {
            return Some(t.and_utc().to_rfc3339());
        }
    }
    Some(value.to_owned())
}

async fn create_robot(form: ConsoleForm) -> Response {
    let request = CreateRobotRequest {
        name: Some(form.get("name").trim().to_owned()),
        expires_at: expiry(form.get("expires-at")),
        unknown: Default::default(),
    };
    match form.session.run(request).await {
        Ok(created) => {
            let secret = layout::new_secret(
                &format!("Secret of {}", created.robot.login_name),
                &[
                    ("User name", &created.robot.login_name),
                    ("Secret", &created.secret),
                ],
            );
            list_page::<Robots>(&form.session, Some("created"), None, None, Some(secret)).await
        }
        Err(e) => match refusal(&form.session, &e) {
            Some(r) => r,
            None => {
                let invalid = Invalid::of(&e, MEMBERS, "form");
                list_page::<Robots>(&form.session, None, Some(&form), Some(&invalid), None).await
            }
        },
    }
}

async fn delete_account<K: Kind>(Path(name): Path<String>, form: ConsoleForm) -> Response {
    match form
        .session
        .run(DeleteAccountRequest::<K>::from(name))
        .await
    {
        Ok(()) => redirect(&format!("{}?done=deleted", K::PATH)),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

async fn account<K: Kind>(
    session: Session,
    Path(name): Path<String>,
    Query(q): Query<Done>,
) -> Response {
    account_page::<K>(&session, &name, q.done.as_deref(), None, None).await
}

async fn account_page<K: Kind>(
    session: &Session,
    name: &str,
    done: Option<&str>,
    invalid: Option<&Invalid>,
    secret: Option<Markup>,
) -> Response {
    let account = match session
        .run(GetAccountRequest::<K>::from(name.to_owned()))
        .await
    {
        Ok(a) => a,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let keys = match session
        .run(ListAccessKeysRequest::<K>::from(name.to_owned()))
        .await
    {
        Ok(k) => k.access_keys,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let base = format!("{}/{}", K::PATH, encode(&account.name));
    let robot = K::TABLE == "robots";
    let err = |f: &str| Invalid::on(invalid, f);
    let body = html! {
        h1 { (K::ONE) " " (account.login_name) }
        (subnav(K::PATH))
        p { a href=(K::PATH) { "← " (K::TITLE) } }
        (done_notice(done))
        @if let Some(secret) = secret { (secret) }
        dl class="facts" {
            dt { "Login name" } dd { code { (account.login_name) } }
            dt { "ARN" } dd { code { (account.arn) } }
            dt { "Created" } dd { (rfc3339_time(&account.created_at)) }
            dt { "Groups" } dd {
                @if account.groups.is_empty() { span class="muted" { "none" } }
                @for g in &account.groups { span class="badge" { (g) } }
            }
            @if robot {
                dt { "Expires" } dd {
                    @match &account.expires_at {
                        Some(Some(at)) => { (rfc3339_time(at)) @if account.expired == Some(true) { " " strong class="error" { "(expired)" } } },
                        _ => { span class="muted" { "never" } },
                    }
                }
            }
        }
        @if robot {
            h2 { "Secret" }
            p { "A new secret replaces the old one at once; the old secret and what was obtained with it stop working." }
            (post_button(session, &format!("{base}/secret"), "Regenerate secret", &format!("Regenerate secret of {}", account.login_name), "secondary"))
        } @else {
            h2 { "Password" }
            form method="post" action={ (base) "/password" } class="panel" id="change-password" {
                (layout::csrf(session))
                label for="password" { "New password" }
                input type="password" id="password" name="password" autocomplete="new-password"
                    aria-invalid=[err("password").map(|_| "true")]
                    aria-describedby=[err("password").map(|_| "password-error")];
                (layout::field_error("password", err("password").as_deref()))
                p { button type="submit" { "Change password" } }
            }
        }
        h2 { "Access keys" }
        @if keys.is_empty() {
            p { "No access keys." }
        } @else {
            div class="table-wrap" {
                table id="access-keys" {
                    thead { tr {
                        th scope="col" { "Access key id" }
                        th scope="col" { "Status" }
                        th scope="col" { "Created" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for k in &keys {
                            @let key_base = format!("{base}/access-keys/{}", encode(&k.access_key_id));
                            tr data-key=(k.access_key_id) {
                                td { code { (k.access_key_id) } }
                                td { (k.status) }
                                td { (rfc3339_time(&k.created_at)) }
                                td { div class="actions" {
                                    form class="inline" method="post" action={ (key_base) "/status" } {
                                        (layout::csrf(session))
                                        @if k.status == "Active" {
                                            input type="hidden" name="status" value="Inactive";
                                            button type="submit" class="secondary" aria-label={ "Deactivate " (k.access_key_id) } { "Deactivate" }
                                        } @else {
                                            input type="hidden" name="status" value="Active";
                                            button type="submit" class="secondary" aria-label={ "Activate " (k.access_key_id) } { "Activate" }
                                        }
                                    }
                                    (post_button(session, &format!("{key_base}/delete"), "Delete", &format!("Delete access key {}", k.access_key_id), "danger"))
                                } }
                            }
                        }
                    }
                }
            }
        }
        (post_button(session, &format!("{base}/access-keys"), "Create access key", "Create access key", ""))
        h2 { "Delete" }
        (post_button(session, &format!("{base}/delete"), &format!("Delete {}", K::ONE), &format!("Delete {} {}", K::ONE, account.login_name), "danger"))
    };
    page(
        session,
        invalid.map_or(StatusCode::OK, |i| i.status),
        &account.login_name,
        body,
    )
}

async fn change_password(Path(name): Path<String>, form: ConsoleForm) -> Response {
    let request = ChangePasswordRequest {
        name: name.clone(),
        password: Some(form.get("password").to_owned()),
        unknown: Default::default(),
    };
    match form.session.run(request).await {
        Ok(()) => redirect(&format!(
            "{PREFIX}/users/{}?done=password-changed",
            encode(&name)
        )),
        Err(e) => match refusal(&form.session, &e) {
            Some(r) => r,
            None if matches!(e, Error::NotFound(_)) => layout::error_page(Some(&form.session), &e),
            None => {
                let invalid = Invalid::of(&e, &[], "password");
                account_page::<Users>(&form.session, &name, None, Some(&invalid), None).await
            }
        },
    }
}

async fn regenerate_secret(Path(name): Path<String>, form: ConsoleForm) -> Response {
    match form
        .session
        .run(RegenerateRobotSecretRequest { name: name.clone() })
        .await
    {
        Ok(s) => {
            let secret = layout::new_secret(
                &format!("New secret of {}", s.login_name),
                &[("User name", &s.login_name), ("Secret", &s.secret)],
            );
            account_page::<Robots>(&form.session, &name, None, None, Some(secret)).await
        }
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

async fn create_key<K: Kind>(Path(name): Path<String>, form: ConsoleForm) -> Response {
    match form
        .session
        .run(CreateAccessKeyRequest::<K>::from(name.clone()))
        .await
    {
        Ok(key) => {
            let secret = layout::new_secret(
                &format!("New access key {}", key.access_key_id),
                &[
                    ("Access key id", &key.access_key_id),
                    ("Secret access key", &key.secret_access_key),
                ],
            );
            account_page::<K>(&form.session, &name, None, None, Some(secret)).await
        }
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

async fn key_status<K: Kind>(
    Path((name, key)): Path<(String, String)>,
    form: ConsoleForm,
) -> Response {
    let status = form.get("status").to_owned();
    let request = UpdateAccessKeyRequest::<K> {
        name: name.clone(),
        access_key_id: key,
        status: Some(status.clone()),
        unknown: Default::default(),
        kind: PhantomData,
    };
    match form.session.run(request).await {
        Ok(()) => redirect(&format!(
            "{}/{}?done={}",
            K::PATH,
            encode(&name),
            if status == "Active" {
                "key-activated"
            } else {
                "key-deactivated"
            }
        )),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

async fn delete_key<K: Kind>(
    Path((name, key)): Path<(String, String)>,
    form: ConsoleForm,
) -> Response {
    let request = DeleteAccessKeyRequest::<K> {
        name: name.clone(),
        access_key_id: key,
        kind: PhantomData,
    };
    match form.session.run(request).await {
        Ok(()) => redirect(&format!("{}/{}?done=key-deleted", K::PATH, encode(&name))),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

// ---- groups ----

/// A refused member change, shown next to its group's member field.
struct MemberError {
    group: String,
    message: String,
    status: StatusCode,
}

async fn groups(session: Session, Query(q): Query<Done>) -> Response {
    groups_page(&session, q.done.as_deref(), None, None, None).await
}

async fn groups_page(
    session: &Session,
    done: Option<&str>,
    values: Option<&ConsoleForm>,
    invalid: Option<&Invalid>,
    member_error: Option<&MemberError>,
) -> Response {
    let groups = match session.run(ListGroupsRequest {}).await {
        Ok(l) => l.groups,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let err = |f: &str| Invalid::on(invalid, f);
    let body = html! {
        h1 { "Groups" }
        (subnav("/console/groups"))
        (done_notice(done))
        @if groups.is_empty() {
            p { "No groups." }
        } @else {
            div class="table-wrap" {
                table id="groups" {
                    thead { tr {
                        th scope="col" { "Name" }
                        th scope="col" { "Members" }
                        th scope="col" { "Add a member" }
                        th scope="col" { "Created" }
                        th scope="col" { "Actions" }
                    } }
                    tbody {
                        @for g in &groups {
                            @let base = format!("{PREFIX}/groups/{}", encode(&g.name));
                            @let field = format!("member-{}", g.name);
                            @let error = member_error.filter(|m| m.group == g.name).map(|m| m.message.as_str());
                            tr data-name=(g.name) {
                                td { strong { (g.name) } }
                                td {
                                    @if g.members.is_empty() { span class="muted" { "none" } }
                                    ul class="members" {
                                        @for m in &g.members {
                                            li {
                                                (m) " "
                                                form class="inline" method="post" action={ (base) "/members/remove" } {
                                                    (layout::csrf(session))
                                                    input type="hidden" name="member" value=(m);
                                                    button type="submit" class="secondary" aria-label={ "Remove " (m) " from " (g.name) } { "Remove" }
                                                }
                                            }
                                        }
                                    }
                                }
                                td {
                                    form class="actions" method="post" action={ (base) "/members" } {
                                        (layout::csrf(session))
                                        label for=(field) class="sr-only" { "Member to add to " (g.name) " (alice, robot/ci)" }
                                        input type="text" id=(field) name="member" placeholder="alice or robot/ci"
                                            aria-invalid=[error.map(|_| "true")]
                                            aria-describedby=[error.map(|_| format!("{field}-error"))];
                                        button type="submit" aria-label={ "Add member to " (g.name) } { "Add" }
                                    }
                                    (layout::field_error(&field, error))
                                }
                                td { (rfc3339_time(&g.created_at)) }
                                td { (post_button(session, &format!("{base}/delete"), "Delete", &format!("Delete group {}", g.name), "danger")) }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New group" }
        form method="post" action={ (PREFIX) "/groups" } class="panel" id="create-group" {
            (layout::csrf(session))
            (layout::field_error("form", err("form").as_deref()))
            (layout::input("text", "name", "Name", values.map_or("", |v| v.get("name")), err("name").as_deref()))
            p { button type="submit" { "Create group" } }
        }
    };
    let status = invalid
        .map(|i| i.status)
        .or(member_error.map(|m| m.status))
        .unwrap_or(StatusCode::OK);
    page(session, status, "Groups", body)
}

async fn create_group(form: ConsoleForm) -> Response {
    let request = CreateGroupRequest {
        name: Some(form.get("name").trim().to_owned()),
        unknown: Default::default(),
    };
    match form.session.run(request).await {
        Ok(_) => redirect(&format!("{PREFIX}/groups?done=created")),
        Err(e) => match refusal(&form.session, &e) {
            Some(r) => r,
            None => {
                let invalid = Invalid::of(&e, &[], "name");
                groups_page(&form.session, None, Some(&form), Some(&invalid), None).await
            }
        },
    }
}

async fn delete_group(Path(name): Path<String>, form: ConsoleForm) -> Response {
    match form.session.run(DeleteGroupRequest { name }).await {
        Ok(()) => redirect(&format!("{PREFIX}/groups?done=deleted")),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

async fn add_member(Path(name): Path<String>, form: ConsoleForm) -> Response {
    let request = AddGroupMemberRequest {
        name: name.clone(),
        member: Some(form.get("member").trim().to_owned()),
        unknown: Default::default(),
    };
    match form.session.run(request).await {
        Ok(_) => redirect(&format!("{PREFIX}/groups?done=member-added")),
        Err(e) => match refusal(&form.session, &e) {
            Some(r) => r,
            None => {
                let member_error = MemberError {
                    group: name,
                    message: e.message(),
                    status: layout::status_of(&e),
                };
                groups_page(&form.session, None, None, None, Some(&member_error)).await
            }
        },
    }
}

async fn remove_member(Path(name): Path<String>, form: ConsoleForm) -> Response {
    let request = RemoveGroupMemberRequest {
        name,
        member: form.get("member").to_owned(),
    };
    match form.session.run(request).await {
        Ok(()) => redirect(&format!("{PREFIX}/groups?done=member-removed")),
        Err(e) => layout::error_page(Some(&form.session), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_from_a_datetime_local_field_is_utc() {
        assert_eq!(
            expiry("2030-01-02T03:04").as_deref(),
            Some("2030-01-02T03:04:00+00:00")
        );
        assert_eq!(expiry("  "), None);
        assert_eq!(expiry("tomorrow").as_deref(), Some("tomorrow"));
    }

    #[test]
    fn identity_errors_name_their_fields() {
        let e = Error::InvalidParameter("password: must be 12 to 256 characters long".into());
        assert_eq!(Invalid::of(&e, MEMBERS, "form").field, "password");
        let e = Error::InvalidParameter("invalid user name \"a b\": use 1 to 64 of ...".into());
        assert_eq!(Invalid::of(&e, MEMBERS, "form").field, "name");
    }
}
