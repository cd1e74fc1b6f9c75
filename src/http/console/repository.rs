//! One repository's pages under `/console/repositories/<name>`: the repository (its images,
//! settings and pull commands) and, after `/-/`, its images, lifecycle policy and repository
//! policy (dispatched to `image`, `lifecycle` and `policy`).

use axum::extract::{Path, RawQuery};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use maud::{html, Markup};

use super::layout::{self, Nav};
use super::{encode, redirect, split_repository_path, ConsoleForm, Session, PREFIX};
use crate::access::Resource;
use crate::error::Error;
use crate::http::AppState;
use crate::ops::images::{DescribeImageReferencesRequest, ImageReferences};
use crate::ops::shapes::{
    DescribeImagesRequest, DescribeRepositoriesRequest, ImageDetail, ImageScanningConfiguration,
    PutImageScanningConfigurationRequest, PutImageTagMutabilityRequest, Repository,
};
use crate::policy::Action;

/// Images per page of the repository page.
const IMAGES_PAGE: i64 = 50;

/// The tag mutability modes (ECR's), as the settings form offers them.
const MUTABILITY_MODES: &[(&str, &str)] = &[
    ("MUTABLE", "Mutable: every tag may move"),
    ("IMMUTABLE", "Immutable: no tag may move"),
    (
        "IMMUTABLE_WITH_EXCLUSION",
        "Immutable, except tags matching the filters",
    ),
    (
        "MUTABLE_WITH_EXCLUSION",
        "Mutable, except tags matching the filters",
    ),
];

pub fn routes(router: Router<AppState>) -> Router<AppState> {
    router.route("/console/repositories/{*path}", get(show).post(submit))
}

/// GET: the repository page, or the page after `/-/`.
async fn show(session: Session, Path(path): Path<String>, RawQuery(query): RawQuery) -> Response {
    let (name, rest) = split_repository_path(&path);
    let (section, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let query = Query::parse(query.as_deref());
    match section {
        "" => overview(&session, name, &query, None).await,
        "images" => super::image::show(&session, name, tail, &query).await,
        "lifecycle" => super::lifecycle::show(&session, name, tail).await,
        "policy" => super::policy::show(&session, name, tail).await,
        _ => not_here(&session),
    }
}

/// POST: a form of the repository page or of the page after `/-/`.
async fn submit(Path(path): Path<String>, form: ConsoleForm) -> Response {
    let (name, rest) = split_repository_path(&path);
    let (section, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match section {
        "settings" => settings(&form, name, tail).await,
        "images" => super::image::submit(&form, name, tail).await,
        "lifecycle" => super::lifecycle::submit(&form, name, tail).await,
        "policy" => super::policy::submit(&form, name, tail).await,
        _ => not_here(&form.session),
    }
}

pub fn not_here(session: &Session) -> Response {
    layout::error_page(
        Some(session),
        &Error::NotFound("There is no console page at this address.".into()),
    )
}

/// A page's query string, parsed.
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: Option<&str>) -> Query {
        Query(super::parse_form(query.unwrap_or("").as_bytes()))
    }

    /// The first non-empty value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }
}

/// What a `?done=` key says happened.
pub fn done_message(key: &str) -> Option<&'static str> {
    Some(match key {
        "mutability" => "Tag mutability saved.",
        "scan_on_push" => "Scan on push saved.",
        "scan" => "Scan queued. Findings appear here when it completes.",
        _ => return None,
    })
}

/// The repository `name` as DescribeRepositories answers it (refused when the caller may not
/// describe it).
pub async fn describe(session: &Session, name: &str) -> Result<Repository, Error> {
    let mut answer = session
        .run(DescribeRepositoriesRequest {
            repository_names: Some(vec![name.to_owned()]),
            ..Default::default()
        })
        .await?;
    answer
        .repositories
        .pop()
        .ok_or_else(|| Error::NotFound(format!("repository '{name}' does not exist")))
}

/// A settings form refused by its operation: which field and why, with the refusal's status.
struct SettingError {
    field: &'static str,
    message: String,
    status: StatusCode,
    /// What the refused tag mutability form said (shown again for correction).
    mode: String,
    filters: String,
}

async fn overview(
    session: &Session,
    name: &str,
    query: &Query,
    refused: Option<SettingError>,
) -> Response {
    let repository = match describe(session, name).await {
        Ok(r) => r,
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let images = session
        .run(DescribeImagesRequest {
            registry_id: None,
            repository_name: name.to_owned(),
            image_ids: None,
            next_token: query.get("next").map(str::to_owned),
            max_results: Some(IMAGES_PAGE),
            filter: None,
        })
        .await;
    let images = match images {
        Ok(page) => Ok(page),
        Err(e @ Error::Denied(_)) => Err(e.message()),
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let references = match &images {
        Ok(page) if !page.image_details.is_empty() => session
            .run(DescribeImageReferencesRequest {
                repository_name: name.to_owned(),
                image_digests: page
                    .image_details
                    .iter()
                    .map(|d| d.image_digest.clone())
                    .collect(),
            })
            .await
            .map(|a| a.images)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let may_mutability = session
        .may(Action::PutImageTagMutability, Resource::Repository(name))
        .await;
    let may_scanning = session
        .may(
            Action::PutImageScanningConfiguration,
            Resource::Repository(name),
        )
        .await;
    let here = format!("{PREFIX}/repositories/{name}");
    let host = session.endpoint.host.clone();
    let status = refused.as_ref().map_or(StatusCode::OK, |r| r.status);
    let error_for = |field: &str| {
        refused
            .as_ref()
            .filter(|r| r.field == field)
            .map(|r| r.message.as_str())
    };
    let stored_filters = repository
        .image_tag_mutability_exclusion_filters
        .iter()
        .map(|f| f.filter.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let (mode, filters) = match refused.as_ref().filter(|r| r.field != "scan_on_push") {
        Some(r) => (r.mode.as_str(), r.filters.as_str()),
        None => (
            repository.image_tag_mutability.as_str(),
            stored_filters.as_str(),
        ),
    };
    let markup = html! {
        nav aria-label="Breadcrumb" class="muted" {
            a href={ (PREFIX) "/repositories" } { "Repositories" } " / "
        }
        h1 { (name) }
        @if let Some(text) = query.get("done").and_then(done_message) {
            (layout::notice(text))
        }
        dl class="facts" {
            dt { "URI" } dd { code { (repository.repository_uri) } }
            dt { "Created" } dd { (layout::time_secs(repository.created_at)) }
            dt { "Tag mutability" } dd {
                (repository.image_tag_mutability)
                @for f in &repository.image_tag_mutability_exclusion_filters {
                    " " span class="badge" { "except " (f.filter) }
                }
            }
            dt { "Scan on push" } dd { (if repository.image_scanning_configuration.scan_on_push { "on" } else { "off" }) }
        }
        p {
            a href={ (here) "/-/lifecycle" } { "Lifecycle policy" }
            " · "
            a href={ (here) "/-/policy" } { "Repository policy" }
        }
        h2 { "Images" }
        @match &images {
            Err(message) => { p class="error" role="alert" { (message) } }
            Ok(page) => {
                @if page.image_details.is_empty() {
                    p { "No images in this repository." }
                } @else {
                    (image_table(name, &host, &page.image_details, &references))
                }
                @if query.get("next").is_some() || page.next_token.is_some() {
                    nav class="pager" aria-label="Image pages" {
                        @if query.get("next").is_some() {
                            a href=(here) { "First page" }
                        }
                        @if let Some(next) = &page.next_token {
                            a href={ (here) "?next=" (encode(next)) } { "Next page" }
                        }
                    }
                }
            }
        }
        @if may_mutability || may_scanning {
            h2 { "Settings" }
        }
        @if may_mutability {
            form class="panel" method="post" action={ (here) "/-/settings" } {
                (layout::csrf(session))
                input type="hidden" name="setting" value="mutability";
                h3 { "Tag mutability" }
                label for="mutability" { "Mode" }
                select id="mutability" name="mutability"
                    aria-invalid=[error_for("mutability").map(|_| "true")]
                    aria-describedby=[error_for("mutability").map(|_| "mutability-error")] {
                    @for (value, label) in MUTABILITY_MODES {
                        option value=(value) selected[*value == mode] { (label) }
                    }
                }
                (layout::field_error("mutability", error_for("mutability")))
                label for="exclusion_filters" { "Exclusion filters (comma separated wildcards, for the modes with exclusions)" }
                input type="text" id="exclusion_filters" name="exclusion_filters"
                    value=(filters)
                    aria-invalid=[error_for("exclusion_filters").map(|_| "true")]
                    aria-describedby=[error_for("exclusion_filters").map(|_| "exclusion_filters-error")];
                (layout::field_error("exclusion_filters", error_for("exclusion_filters")))
                p { button type="submit" { "Save tag mutability" } }
            }
        }
        @if may_scanning {
            form class="panel" method="post" action={ (here) "/-/settings" } {
                (layout::csrf(session))
                input type="hidden" name="setting" value="scan_on_push";
                h3 { "Scanning" }
                label class="check" for="scan_on_push" {
                    input type="checkbox" id="scan_on_push" name="scan_on_push" value="on"
                        checked[repository.image_scanning_configuration.scan_on_push]
                        aria-invalid=[error_for("scan_on_push").map(|_| "true")]
                        aria-describedby=[error_for("scan_on_push").map(|_| "scan_on_push-error")];
                    "Scan images when they are pushed"
                }
                (layout::field_error("scan_on_push", error_for("scan_on_push")))
                p { button type="submit" { "Save scanning" } }
            }
        }
    };
    layout::page_with_status(status, Some(session), name, Nav::Repositories, markup)
}

/// A name Kubernetes accepts for a pod: the repository's last component, lower-case letters,
/// digits and `-`.
fn pod_name(repository: &str) -> String {
    let last = repository.rsplit('/').next().unwrap_or(repository);
    let cleaned: String = last
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect::<String>()
        .trim_matches('-')
        .chars()
        .take(50)
        .collect();
    if cleaned.is_empty() {
        "app".into()
    } else {
        cleaned
    }
}

/// Pull commands for an image: by tag when it has one (docker, podman), by digest for
/// Kubernetes (what runs is then exactly this image).
pub fn pull_commands(host: &str, name: &str, tag: Option<&str>, digest: &str) -> Markup {
    let by_digest = format!("{host}/{name}@{digest}");
    let reference = match tag {
        Some(tag) => format!("{host}/{name}:{tag}"),
        None => by_digest.clone(),
    };
    html! {
        (layout::copyable("docker", &format!("docker pull {reference}")))
        (layout::copyable("podman", &format!("podman pull {reference}")))
        (layout::copyable("kubectl", &format!("kubectl run {} --image={by_digest}", pod_name(name))))
        (layout::copyable("Kubernetes", &format!("image: {by_digest}")))
    }
}

/// The scan column: the status, and for a complete scan the findings per severity (in words,
/// not only colour).
pub fn scan_summary(detail: &ImageDetail) -> Markup {
    html! {
        @match &detail.image_scan_status {
            None => { span class="muted" { "not scanned" } }
            Some(status) => {
                (status.status)
                @if let Some(summary) = &detail.image_scan_findings_summary {
                    @if summary.finding_severity_counts.is_empty() {
                        " " span class="muted" { "no findings" }
                    }
                    @for severity in crate::ops::scanning::SEVERITIES {
                        @if let Some(n) = summary.finding_severity_counts.get(*severity) {
                            " " span class={ "sev sev-" (severity) } { (severity) ": " (n) }
                        }
                    }
                }
            }
        }
    }
}

fn image_table(
    name: &str,
    host: &str,
    images: &[ImageDetail],
    references: &[ImageReferences],
) -> Markup {
    let empty = ImageReferences {
        image_digest: String::new(),
        platforms: Vec::new(),
        referrers: Vec::new(),
    };
    html! {
        div class="table-wrap" {
            table id="images" {
                caption class="muted" { "Images by digest, " (IMAGES_PAGE) " a page" }
                thead {
                    tr {
                        th scope="col" { "Tags" }
                        th scope="col" { "Digest" }
                        th scope="col" { "Kind" }
                        th scope="col" { "Size" }
                        th scope="col" { "Pushed" }
                        th scope="col" { "Last pull" }
                        th scope="col" { "Scan" }
                        th scope="col" { "Referrers" }
                        th scope="col" { "Pull" }
                    }
                }
                tbody {
                    @for d in images {
                        @let refs = references.iter().find(|r| r.image_digest == d.image_digest).unwrap_or(&empty);
                        tr {
                            td {
                                @if d.image_tags.is_empty() { span class="muted" { "untagged" } }
                                @for tag in &d.image_tags { span class="badge" { (tag) } " " }
                            }
                            td {
                                a href={ (PREFIX) "/repositories/" (name) "/-/images/" (d.image_digest) } {
                                    (layout::short_digest(&d.image_digest))
                                }
                            }
                            td {
                                (kind(d))
                                @if !refs.platforms.is_empty() {
                                    br;
                                    @for p in &refs.platforms { span class="badge" { (p.label()) } " " }
                                }
                                @if let Some(subject) = &d.subject_manifest_digest {
                                    br;
                                    "refers to "
                                    a href={ (PREFIX) "/repositories/" (name) "/-/images/" (subject) } { (layout::short_digest(subject)) }
                                }
                            }
                            td { (layout::bytes(d.image_size_in_bytes)) }
                            td { (layout::time_secs(d.image_pushed_at)) }
                            td { (layout::maybe_time_secs(d.last_recorded_pull_time, "never")) }
                            td { (scan_summary(d)) }
                            td {
                                @if refs.referrers.is_empty() { span class="muted" { "none" } }
                                @for r in &refs.referrers {
                                    a href={ (PREFIX) "/repositories/" (name) "/-/images/" (r.image_digest) } {
                                        (artifact_label(r.artifact_type.as_deref().unwrap_or(&r.image_manifest_media_type)))
                                    }
                                    br;
                                }
                            }
                            td {
                                details {
                                    summary { "Pull commands" }
                                    (pull_commands(host, name, d.image_tags.first().map(String::as_str), &d.image_digest))
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What kind of manifest an image is, in words.
pub fn kind(d: &ImageDetail) -> &'static str {
    match crate::oci::manifest::kind_of(&d.image_manifest_media_type) {
        Some(crate::oci::manifest::ManifestKind::Index) => "Multi-platform index",
        _ if d.subject_manifest_digest.is_some() => "Artifact",
        _ => match d.artifact_media_type.as_deref() {
            None
            | Some("application/vnd.oci.image.config.v1+json")
            | Some("application/vnd.docker.container.image.v1+json") => "Image",
            Some(_) => "Artifact",
        },
    }
}

/// A referrer's artifact type as people call it (signatures, SBOMs, attestations).
pub fn artifact_label(artifact_type: &str) -> String {
    let t = artifact_type.to_ascii_lowercase();
    let what = if t.contains("cosign") || t.contains("signature") || t.contains("notary") {
        "Signature"
    } else if t.contains("spdx") || t.contains("cyclonedx") || t.contains("sbom") {
        "SBOM"
    } else if t.contains("in-toto") || t.contains("attestation") || t.contains("provenance") {
        "Attestation"
    } else {
        return artifact_type.to_owned();
    };
    format!("{what} ({artifact_type})")
}

/// POST `/-/settings`: tag mutability or scan on push, by the form's `setting`.
async fn settings(form: &ConsoleForm, name: &str, tail: &str) -> Response {
    let session = &form.session;
    if !tail.is_empty() {
        return not_here(session);
    }
    let here = format!("{PREFIX}/repositories/{name}");
    let (key, result) = match form.get("setting") {
        "mutability" => {
            let filters: Vec<serde_json::Value> = form
                .get("exclusion_filters")
                .split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(|f| serde_json::json!({"filterType": "WILDCARD", "filter": f}))
                .collect();
            let result = session
                .run(PutImageTagMutabilityRequest {
                    registry_id: None,
                    repository_name: name.to_owned(),
                    image_tag_mutability: serde_json::Value::String(
                        form.get("mutability").to_owned(),
                    ),
                    image_tag_mutability_exclusion_filters: (!filters.is_empty())
                        .then_some(serde_json::Value::Array(filters)),
                })
                .await
                .map(|_| ());
            ("mutability", result)
        }
        "scan_on_push" => {
            let result = session
                .run(PutImageScanningConfigurationRequest {
                    registry_id: None,
                    repository_name: name.to_owned(),
                    image_scanning_configuration: ImageScanningConfiguration {
                        scan_on_push: form.get("scan_on_push") == "on",
                    },
                })
                .await
                .map(|_| ());
            ("scan_on_push", result)
        }
        _ => return not_here(session),
    };
    match result {
        Ok(()) => redirect(&format!("{here}?done={key}")),
        // Refusals and missing repositories are whole-page answers; a validation message goes
        // next to its field.
        Err(e @ (Error::Denied(_) | Error::NameUnknown(_))) => {
            layout::error_page(Some(session), &e)
        }
        Err(e) => {
            let (status, _) = crate::http::error::status_and_code(&e);
            let message = e.message();
            let field = if key == "mutability" && message.contains("ExclusionFilters") {
                "exclusion_filters"
            } else {
                key
            };
            overview(
                session,
                name,
                &Query(Vec::new()),
                Some(SettingError {
                    field,
                    message,
                    status,
                    mode: form.get("mutability").to_owned(),
                    filters: form.get("exclusion_filters").to_owned(),
                }),
            )
            .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_names_are_dns_labels() {
        assert_eq!(pod_name("team/my_app"), "my-app");
        assert_eq!(pod_name("team/app.v2"), "app-v2");
        assert_eq!(pod_name("__"), "app");
    }

    #[test]
    fn pull_commands_use_the_tag_and_the_digest() {
        let m = pull_commands("reg:5000", "team/app", Some("v1"), "sha256:ab").into_string();
        assert!(m.contains("docker pull reg:5000/team/app:v1"), "{m}");
        assert!(m.contains("podman pull reg:5000/team/app:v1"), "{m}");
        assert!(
            m.contains("kubectl run app --image=reg:5000/team/app@sha256:ab"),
            "{m}"
        );
        let m = pull_commands("reg", "team/app", None, "sha256:ab").into_string();
        assert!(m.contains("docker pull reg/team/app@sha256:ab"), "{m}");
    }

    #[test]
    fn referrers_are_named_by_what_they_are() {
        assert_eq!(
            artifact_label("application/vnd.dev.cosign.simplesigning.v1+json"),
            "Signature (application/vnd.dev.cosign.simplesigning.v1+json)"
        );
        assert_eq!(
            artifact_label("application/spdx+json"),
            "SBOM (application/spdx+json)"
        );
        assert_eq!(artifact_label("text/plain"), "text/plain");
    }
}
