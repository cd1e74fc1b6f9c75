//! The image page, `/console/repositories/<name>/-/images/<digest>`: the image's manifest and
//! config summarised, its scan findings (filtered by severity, a page at a time), its
//! referrers, pull commands, and what lifecycle policies did to it; and its "Scan now" form.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};

use super::layout::{self, Nav};
use super::repository::{
    artifact_label, done_message, kind, not_here, pull_commands, scan_summary, Query,
};
use super::{encode, redirect, ConsoleForm, Session, PREFIX};
use crate::access::Resource;
use crate::error::{Error, Missing};
use crate::ops::images::{
    DescribeImageDetailsRequest, DescribeImageDetailsResponse, DescribeImageReferencesRequest,
    ImageReferences,
};
use crate::ops::scanning::SEVERITIES;
use crate::ops::shapes::{
    DescribeImageScanFindingsRequest, DescribeImageScanFindingsResponse, DescribeImagesRequest,
    ImageIdentifier, ImageScanFinding, ListLifecycleEventsRequest, ListLifecycleEventsResponse,
    StartImageScanRequest,
};
use crate::policy::Action;

/// Findings per page.
const FINDINGS_PAGE: i64 = 50;

/// GET `<digest>`.
pub async fn show(session: &Session, name: &str, tail: &str, query: &Query) -> Response {
    if tail.is_empty() || tail.contains('/') {
        return not_here(session);
    }
    let digest = tail;
    let here = format!("{PREFIX}/repositories/{name}/-/images/{digest}");
    let id = ImageIdentifier {
        image_digest: Some(digest.to_owned()),
        image_tag: None,
    };
    let detail = session
        .run(DescribeImagesRequest {
            registry_id: None,
            repository_name: name.to_owned(),
            image_ids: Some(vec![id.clone()]),
            next_token: None,
            max_results: None,
            filter: None,
        })
        .await;
    // Lifecycle history outlives the image: an expired image's page says what expired it.
    let history = session
        .run(ListLifecycleEventsRequest {
            repository_name: Some(name.to_owned()),
            image_digest: Some(digest.to_owned()),
            next_token: None,
            max_results: Some(100),
        })
        .await;
    let detail = match detail {
        Ok(mut answer) => match answer.image_details.pop() {
            Some(d) => d,
            None => return not_here(session),
        },
        Err(e @ Error::Missing(Missing::Image, _)) => return gone(session, name, &e, history),
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let manifest = session
        .run(DescribeImageDetailsRequest {
            repository_name: name.to_owned(),
            image_digest: digest.to_owned(),
        })
        .await;
    let manifest = match manifest {
        Ok(m) => Ok(m),
        Err(e @ Error::Denied(_)) => Err(e.message()),
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let references = session
        .run(DescribeImageReferencesRequest {
            repository_name: name.to_owned(),
            image_digests: vec![digest.to_owned()],
        })
        .await
        .ok()
        .and_then(|mut a| a.images.pop());
    let severity = query.get("severity").filter(|s| SEVERITIES.contains(s));
    let findings = session
        .run(DescribeImageScanFindingsRequest {
            registry_id: None,
            repository_name: name.to_owned(),
            image_id: id.clone(),
            next_token: query.get("next").map(str::to_owned),
            max_results: Some(FINDINGS_PAGE),
            severity: severity.map(str::to_owned),
        })
        .await;
    let findings = match findings {
        Ok(f) => Findings::Page(Box::new(f)),
        Err(Error::Missing(Missing::Scan, _)) => Findings::NotScanned,
        Err(e @ Error::Denied(_)) => Findings::Refused(e.message()),
        Err(e) => return layout::error_page(Some(session), &e),
    };
    let may_scan = session
        .may(Action::StartImageScan, Resource::Repository(name))
        .await;
    let host = session.endpoint.host.clone();
    let title = format!("{name}@{}", short(digest));
    let markup = html! {
        nav aria-label="Breadcrumb" class="muted" {
            a href={ (PREFIX) "/repositories" } { "Repositories" } " / "
            a href={ (PREFIX) "/repositories/" (name) } { (name) } " / "
        }
        h1 { "Image " code { (short(digest)) } }
        @if let Some(text) = query.get("done").and_then(done_message) {
            (layout::notice(text))
        }
        dl class="facts" {
            dt { "Repository" } dd { a href={ (PREFIX) "/repositories/" (name) } { (name) } }
            dt { "Digest" } dd { code { (detail.image_digest) } }
            dt { "Tags" } dd {
                @if detail.image_tags.is_empty() { span class="muted" { "untagged" } }
                @for tag in &detail.image_tags { span class="badge" { (tag) } " " }
            }
            dt { "Kind" } dd { (kind(&detail)) }
            dt { "Media type" } dd { code { (detail.image_manifest_media_type) } }
            @if let Some(t) = &detail.artifact_media_type {
                dt { "Artifact type" } dd { code { (t) } }
            }
            @if let Some(subject) = &detail.subject_manifest_digest {
                dt { "Refers to" } dd { a href={ (PREFIX) "/repositories/" (name) "/-/images/" (subject) } { code { (subject) } } }
            }
            dt { "Size" } dd { (layout::bytes(detail.image_size_in_bytes)) }
            dt { "Pushed" } dd { (layout::time_secs(detail.image_pushed_at)) }
            dt { "Last pull" } dd { (layout::maybe_time_secs(detail.last_recorded_pull_time, "never")) }
            dt { "Scan" } dd { (scan_summary(&detail)) }
        }
        h2 { "Pull" }
        (pull_commands(&host, name, detail.image_tags.first().map(String::as_str), &detail.image_digest))
        h2 { "Manifest" }
        @match &manifest {
            Err(message) => { p class="error" role="alert" { (message) } }
            Ok(m) => { (manifest_section(name, m)) }
        }
        h2 { "Referrers" }
        (referrers_section(name, references.as_ref()))
        h2 { "Vulnerabilities" }
        @if may_scan {
            form class="inline" method="post" action={ (here) "/scan" } {
                (layout::csrf(session))
                button type="submit" { "Scan now" }
            }
        }
        (findings_section(&here, severity, &findings))
        h2 { "Lifecycle history" }
        (history_section(&history))
    };
    layout::page(session, &title, Nav::Repositories, markup)
}

/// The page of an image that is not (or no longer) in the repository: 404, with what lifecycle
/// policies recorded about it.
fn gone(
    session: &Session,
    name: &str,
    error: &Error,
    history: Result<ListLifecycleEventsResponse, Error>,
) -> Response {
    let markup = html! {
        h1 { "Image not found" }
        p class="error" role="alert" { (error.message()) }
        p { a href={ (PREFIX) "/repositories/" (name) } { "Back to " (name) } }
        h2 { "Lifecycle history" }
        (history_section(&history))
    };
    layout::page_with_status(
        StatusCode::NOT_FOUND,
        Some(session),
        "Image not found",
        Nav::Repositories,
        markup,
    )
}

fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.chars().take(12).collect::<String>()),
        None => digest.chars().take(19).collect(),
    }
}

fn command(words: &[String]) -> String {
    words.join(" ")
}

fn manifest_section(name: &str, m: &DescribeImageDetailsResponse) -> Markup {
    html! {
        dl class="facts" {
            dt { "Manifest size" } dd { (layout::bytes(m.manifest_size)) }
            @if let Some(c) = &m.config {
                dt { "Config" } dd { (layout::short_digest(&c.digest)) " " span class="muted" { (c.media_type) ", " (layout::bytes(c.size)) } }
                @if let Some(reason) = &c.not_read {
                    dt { "Config details" } dd { span class="muted" { "not shown: " (reason) } }
                }
                @if let Some(p) = &c.platform { dt { "Platform" } dd { (p.label()) } }
                @if let Some(created) = &c.created { dt { "Created" } dd { (created) } }
                @if let Some(e) = &c.entrypoint { dt { "Entrypoint" } dd { code { (command(e)) } } }
                @if let Some(cmd) = &c.cmd { dt { "Command" } dd { code { (command(cmd)) } } }
                @if let Some(w) = &c.working_dir { dt { "Working directory" } dd { code { (w) } } }
                @if let Some(u) = &c.user { dt { "User" } dd { code { (u) } } }
            }
        }
        @if !m.manifests.is_empty() {
            h3 { "Platforms" }
            div class="table-wrap" {
                table id="platforms" {
                    thead { tr { th scope="col" { "Platform" } th scope="col" { "Manifest" } th scope="col" { "Size" } } }
                    tbody {
                        @for c in &m.manifests {
                            tr {
                                td { @match &c.platform { Some(p) => (p.label()), None => span class="muted" { "unspecified" } } }
                                td { a href={ (PREFIX) "/repositories/" (name) "/-/images/" (c.digest) } { (layout::short_digest(&c.digest)) } }
                                td { (layout::bytes(c.size)) }
                            }
                        }
                    }
                }
            }
        }
        @if !m.layers.is_empty() {
            h3 { "Layers" }
            div class="table-wrap" {
                table id="layers" {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Digest" } th scope="col" { "Media type" } th scope="col" { "Size" } } }
                    tbody {
                        @for (i, l) in m.layers.iter().enumerate() {
                            tr {
                                td { (i + 1) }
                                td { (layout::short_digest(&l.digest)) }
                                td { code { (l.media_type) } }
                                td { (layout::bytes(l.size)) }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(c) = &m.config {
            @if !c.labels.is_empty() {
                h3 { "Labels" }
                div class="table-wrap" {
                    table id="labels" {
                        thead { tr { th scope="col" { "Label" } th scope="col" { "Value" } } }
                        tbody {
                            @for (k, v) in &c.labels { tr { td { code { (k) } } td { (v) } } }
                        }
                    }
                }
            }
        }
        @if !m.annotations.is_empty() {
            h3 { "Annotations" }
            div class="table-wrap" {
                table id="annotations" {
                    thead { tr { th scope="col" { "Annotation" } th scope="col" { "Value" } } }
                    tbody {
                        @for (k, v) in &m.annotations { tr { td { code { (k) } } td { (v) } } }
                    }
                }
            }
        }
    }
}

fn referrers_section(name: &str, references: Option<&ImageReferences>) -> Markup {
    let referrers = references.map(|r| r.referrers.as_slice()).unwrap_or(&[]);
    html! {
        @if referrers.is_empty() {
            p { "No signatures, SBOMs or other artifacts refer to this image." }
        } @else {
            div class="table-wrap" {
                table id="referrers" {
                    thead { tr { th scope="col" { "Artifact" } th scope="col" { "Digest" } th scope="col" { "Size" } } }
                    tbody {
                        @for r in referrers {
                            tr {
                                td { (artifact_label(r.artifact_type.as_deref().unwrap_or(&r.image_manifest_media_type))) }
                                td { a href={ (PREFIX) "/repositories/" (name) "/-/images/" (r.image_digest) } { (layout::short_digest(&r.image_digest)) } }
                                td { (layout::bytes(r.size)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

enum Findings {
    Page(Box<DescribeImageScanFindingsResponse>),
    NotScanned,
    Refused(String),
}

fn attribute<'a>(f: &'a ImageScanFinding, key: &str) -> Option<&'a str> {
    f.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.as_str())
}

fn findings_section(here: &str, severity: Option<&str>, findings: &Findings) -> Markup {
    let page = match findings {
        Findings::NotScanned => return html! { p { "This image has not been scanned." } },
        Findings::Refused(message) => return html! { p class="error" role="alert" { (message) } },
        Findings::Page(page) => page,
    };
    let Some(scan) = &page.image_scan_findings else {
        return html! {
            p {
                "Scan status: " (page.image_scan_status.status)
                @if let Some(d) = &page.image_scan_status.description { " — " (d) }
            }
        };
    };
    // Trivy's secret findings are stored with the file they were found in and no package.
    let (secrets, vulnerabilities): (Vec<&ImageScanFinding>, Vec<&ImageScanFinding>) =
        scan.findings.iter().partition(|f| {
            attribute(f, "file_path").is_some() && attribute(f, "package_name").is_none()
        });
    let severity_query = severity
        .map(|s| format!("severity={s}&"))
        .unwrap_or_default();
    html! {
        p {
            "Scanned "
            (layout::maybe_time_secs(scan.image_scan_completed_at, "at an unknown time"))
            @if let Some(at) = scan.vulnerability_source_updated_at {
                " with vulnerability data of " (layout::time_secs(at))
            }
            "."
        }
        @if scan.finding_severity_counts.is_empty() {
            p { "No findings." }
        } @else {
            p {
                "Findings: "
                @for s in SEVERITIES {
                    @if let Some(n) = scan.finding_severity_counts.get(*s) {
                        span class={ "sev sev-" (s) } { (s) ": " (n) } " "
                    }
                }
            }
            form class="toolbar" method="get" action=(here) {
                div {
                    label for="severity" { "Severity" }
                    select id="severity" name="severity" {
                        option value="" selected[severity.is_none()] { "All severities" }
                        @for s in SEVERITIES {
                            option value=(s) selected[severity == Some(*s)] { (s) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if vulnerabilities.is_empty() && secrets.is_empty() {
                p { "No findings of this severity." }
            }
            @if !vulnerabilities.is_empty() {
                div class="table-wrap" {
                    table id="findings" {
                        caption class="muted" { "Vulnerabilities in packages" }
                        thead {
                            tr {
                                th scope="col" { "ID" }
                                th scope="col" { "Severity" }
                                th scope="col" { "Package" }
                                th scope="col" { "Installed version" }
                                th scope="col" { "Fixed version" }
                            }
                        }
                        tbody {
                            @for f in &vulnerabilities {
                                tr {
                                    td {
                                        @match &f.uri {
                                            Some(uri) if uri.starts_with("https://") || uri.starts_with("http://") => {
                                                a href=(uri) rel="noreferrer noopener" { (f.name) }
                                            }
                                            _ => { (f.name) }
                                        }
                                    }
                                    td { span class={ "sev sev-" (f.severity) } { (f.severity) } }
                                    td { (attribute(f, "package_name").unwrap_or("—")) }
                                    td { (attribute(f, "package_version").unwrap_or("—")) }
                                    td {
                                        @match attribute(f, "fixed_in_version") {
                                            Some(v) => { (v) }
                                            None => { span class="muted" { "no fix" } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if !secrets.is_empty() {
                h3 { "Secrets" }
                div class="table-wrap" {
                    table id="secret-findings" {
                        caption class="muted" { "Secrets found in image files" }
                        thead {
                            tr {
                                th scope="col" { "Rule" }
                                th scope="col" { "Severity" }
                                th scope="col" { "File" }
                                th scope="col" { "Line" }
                                th scope="col" { "What" }
                            }
                        }
                        tbody {
                            @for f in &secrets {
                                tr {
                                    td { (f.name) }
                                    td { span class={ "sev sev-" (f.severity) } { (f.severity) } }
                                    td { code { (attribute(f, "file_path").unwrap_or("")) } }
                                    td { (attribute(f, "start_line").unwrap_or("—")) }
                                    td { (f.description.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next_token {
                nav class="pager" aria-label="Finding pages" {
                    a href={ (here) "?" (severity_query) "next=" (encode(next)) } { "Next page" }
                }
            }
        }
    }
}

fn history_section(history: &Result<ListLifecycleEventsResponse, Error>) -> Markup {
    html! {
        @match history {
            Err(e) => { p class="muted" { "Lifecycle history is not shown: " (e.message()) } }
            Ok(h) if h.entries.is_empty() => { p { "No lifecycle action on this image" } }
            Ok(h) => {
                div class="table-wrap" {
                    table id="lifecycle-history" {
                        thead {
                            tr {
                                th scope="col" { "Expired" }
                                th scope="col" { "Rule (priority)" }
                                th scope="col" { "Tags it had" }
                                th scope="col" { "Removed with it" }
                            }
                        }
                        tbody {
                            @for e in &h.entries {
                                tr {
                                    td { (layout::time_secs(e.time)) }
                                    td { (e.applied_rule_priority) }
                                    td {
                                        @if e.image_tags.is_empty() { span class="muted" { "untagged" } }
                                        @for t in &e.image_tags { span class="badge" { (t) } " " }
                                    }
                                    td {
                                        @if e.removed_with_image.is_empty() { span class="muted" { "nothing" } }
                                        @for d in &e.removed_with_image { (layout::short_digest(d)) " " }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// POST `<digest>/scan`: StartImageScan.
pub async fn submit(form: &ConsoleForm, name: &str, tail: &str) -> Response {
    let session = &form.session;
    let Some(digest) = tail.strip_suffix("/scan").filter(|d| !d.contains('/')) else {
        return not_here(session);
    };
    let result = session
        .run(StartImageScanRequest {
            registry_id: None,
            repository_name: name.to_owned(),
            image_id: ImageIdentifier {
                image_digest: Some(digest.to_owned()),
                image_tag: None,
            },
        })
        .await;
    match result {
        Ok(_) => redirect(&format!(
            "{PREFIX}/repositories/{name}/-/images/{digest}?done=scan"
        )),
        Err(e) => layout::error_page(Some(session), &e),
    }
}
