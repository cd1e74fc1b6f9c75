//! Pull-through cache rules (pure, no I/O): ECR's rule shape and validation, and the mapping from
//! a local repository name (or a mirror request's `ns` host) to the upstream registry and the
//! upstream repository name.
//!
//! Choices where ECR leaves room:
//! * Any OCI registry may be an upstream, not only ECR's list; `upstreamRegistry` is inferred from
//!   the host (`docker-hub`, `github-container-registry`, `quay`, `k8s`, `ecr-public`, `ecr`,
//!   `azure-container-registry`, `gitlab-container-registry`, `chainguard`) and is `oci` for the
//!   rest.
//! * `upstreamRepositoryPrefix` works with every upstream (ECR allows it for ECR upstreams only).
//! * `ROOT` is refused as a local prefix: it would proxy every repository of the registry.
//! * `https://` is the default scheme; `http://` is accepted for upstreams inside a private
//!   network (the caller logs a warning).

use serde::Serialize;

/// The upstream of a rule: scheme and authority, e.g. `https://registry-1.docker.io`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Upstream {
    /// `https` or `http`.
    pub scheme: String,
    /// `host[:port]`, lowercase.
    pub authority: String,
}

impl Upstream {
    /// The registry's base URL (`https://ghcr.io`).
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The host without the port.
    pub fn host(&self) -> &str {
        match self.authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(']') => h,
            _ => &self.authority,
        }
    }

    pub fn is_docker_hub(&self) -> bool {
        self.authority == DOCKER_HUB
    }
}

/// Where Docker Hub's registry API lives; `docker.io` and `index.docker.io` mean it too.
pub const DOCKER_HUB: &str = "registry-1.docker.io";

/// The longest local prefix (ECR's limit).
pub const MAX_PREFIX: usize = 30;

/// Parses `upstreamRegistryUrl`: a host with an optional port and an optional `https://` or
/// `http://` scheme, nothing else (no path, query or credentials).
pub fn parse_upstream_url(url: &str) -> Result<Upstream, String> {
    let invalid = |why: &str| {
        Err(format!(
            "Invalid parameter at 'upstreamRegistryUrl': {why}, got {:?}",
            url.chars().take(300).collect::<String>()
        ))
    };
    let trimmed = url.trim().trim_end_matches('/');
    let (scheme, rest) = match trimmed.split_once("://") {
        Some((s, r)) if s.eq_ignore_ascii_case("https") => ("https", r),
        Some((s, r)) if s.eq_ignore_ascii_case("http") => ("http", r),
        Some(_) => return invalid("the scheme must be https:// or http://"),
        None => ("https", trimmed),
    };
    if rest.is_empty() || rest.len() > 253 {
        return invalid("a registry host is required");
    }
    if rest.contains(['/', '?', '#', '@', ' ']) {
        return invalid("give only the registry's host (and port), no path or credentials");
    }
    let authority = rest.to_ascii_lowercase();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority.as_str(), None),
    };
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |p| p == 0) {
            return invalid("the port must be a number from 1 to 65535");
        }
    }
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !host_ok {
        return invalid("the host is not a valid DNS name or IPv4 address");
    }
    let authority = match host {
        "docker.io" | "index.docker.io" if port.is_none() => DOCKER_HUB.to_owned(),
        _ => authority,
    };
    Ok(Upstream {
        scheme: scheme.to_owned(),
        authority,
    })
}

/// ECR's `upstreamRegistry` name for a host (`oci` for registries ECR has no name for).
pub fn upstream_registry_kind(upstream: &Upstream) -> &'static str {
    let host = upstream.host();
    if upstream.is_docker_hub() {
        "docker-hub"
    } else if host == "ghcr.io" {
        "github-container-registry"
    } else if host == "quay.io" {
        "quay"
    } else if host == "registry.k8s.io" {
        "k8s"
    } else if host == "public.ecr.aws" {
        "ecr-public"
    } else if host.ends_with(".amazonaws.com") && host.contains(".dkr.ecr.") {
        "ecr"
    } else if host.ends_with(".azurecr.io") {
        "azure-container-registry"
    } else if host == "registry.gitlab.com" {
        "gitlab-container-registry"
    } else if host == "cgr.dev" {
        "chainguard"
    } else {
        "oci"
    }
}

/// Validates a repository prefix (`ecrRepositoryPrefix`, `upstreamRepositoryPrefix`) by ECR's
/// pattern and length; returns it without its trailing `/`.
pub fn validate_prefix(field: &str, prefix: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "Invalid parameter at '{field}': {why}, got {:?}",
            prefix.chars().take(100).collect::<String>()
        ))
    };
    if prefix == "ROOT" {
        return bad("ROOT would send every repository of this registry upstream; use a prefix");
    }
    if !(2..=MAX_PREFIX).contains(&prefix.len()) {
        return bad("must be 2 to 30 characters");
    }
    let p = prefix.strip_suffix('/').unwrap_or(prefix);
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !c.is_empty()
            && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
            && b[b.len() - 1].is_ascii_lowercase() | b[b.len() - 1].is_ascii_digit()
            && c.bytes().all(|ch| {
                ch.is_ascii_lowercase() || ch.is_ascii_digit() || matches!(ch, b'.' | b'_' | b'-')
            })
            && !c.contains("..")
            && !c.contains("._")
            && !c.contains("_.")
            && !c.contains("___")
    };
    if p.split('/').all(component_ok) {
        Ok(p.to_owned())
    } else {
        bad("must be lowercase repository name components (a-z, 0-9, '.', '_', '-') separated by '/'")
    }
}

/// The secret name a `credentialArn` names
/// (`arn:aws:secretsmanager:<region>:<registryId>:secret:ecr-pullthroughcache/<name>`), checked
/// against this registry's region and id as ECR checks them.
pub fn credential_name(arn: &str, region: &str, registry_id: &str) -> Result<String, String> {
    let bad = |why: String| Err(format!("Invalid parameter at 'credentialArn': {why}"));
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let [a, partition, service, arn_region, account, kind, rest] = parts.as_slice() else {
        return bad(format!(
            "expected arn:aws:secretsmanager:{region}:{registry_id}:secret:ecr-pullthroughcache/<name>"
        ));
    };
    if *a != "arn"
        || !partition.starts_with("aws")
        || *service != "secretsmanager"
        || *kind != "secret"
    {
        return bad(format!(
            "expected arn:aws:secretsmanager:{region}:{registry_id}:secret:ecr-pullthroughcache/<name>"
        ));
    }
    if *arn_region != region || *account != registry_id {
        return bad(format!(
            "the secret must be in this registry's region and account ({region}, {registry_id})"
        ));
    }
    let Some(name) = rest.strip_prefix("ecr-pullthroughcache/") else {
        return bad("the secret's name must start with ecr-pullthroughcache/".into());
    };
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
    if !name_ok {
        return bad("the secret name may hold letters, digits and /_+=.@-".into());
    }
    Ok(name.to_owned())
}

/// A stored rule, as the APIs show it.
#[derive(Debug, Clone, PartialEq)]
pub struct PullThroughRule {
    /// Without a trailing `/`.
    pub prefix: String,
    pub upstream: Upstream,
    /// The URL as given (shown back as `upstreamRegistryUrl`).
    pub upstream_url: String,
    pub upstream_registry: String,
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    /// Without a trailing `/`.
    pub upstream_repository_prefix: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PullThroughRule {
    /// The upstream repository for a local repository under this rule's prefix: the rest of the
    /// name, under `upstream_repository_prefix` when set, and under Docker Hub's `library/`
    /// when it is a one-segment Docker Hub name. `None` if `local` is not under the prefix.
    pub fn upstream_repository(&self, local: &str) -> Option<String> {
        let rest = local.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        if rest.is_empty() {
            return None;
        }
        Some(upstream_name(
            &self.upstream,
            self.upstream_repository_prefix.as_deref(),
            rest,
        ))
    }

    /// The local repository that caches upstream repository `name` (mirror mode).
    pub fn local_repository(&self, upstream_repository: &str) -> Option<String> {
        let rest = match &self.upstream_repository_prefix {
            Some(p) => upstream_repository
                .strip_prefix(p.as_str())?
                .strip_prefix('/')?,
            None => upstream_repository,
        };
        let rest = if self.upstream.is_docker_hub() && !rest.contains('/') {
            format!("library/{rest}")
        } else {
            rest.to_owned()
        };
        Some(format!("{}/{rest}", self.prefix))
    }
}

fn upstream_name(upstream: &Upstream, prefix: Option<&str>, rest: &str) -> String {
    let name = match prefix {
        Some(p) => format!("{p}/{rest}"),
        None => rest.to_owned(),
    };
    if upstream.is_docker_hub() && !name.contains('/') {
        format!("library/{name}")
    } else {
        name
    }
}

impl AsRef<PullThroughRule> for PullThroughRule {
    fn as_ref(&self) -> &PullThroughRule {
        self
    }
}

/// The rule whose prefix covers `repository` (the longest one, when prefixes nest).
pub fn rule_for<'a, R: AsRef<PullThroughRule>>(rules: &'a [R], repository: &str) -> Option<&'a R> {
    rules
        .iter()
        .filter(|r| {
            repository
                .strip_prefix(r.as_ref().prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/') && rest.len() > 1)
        })
        .max_by_key(|r| r.as_ref().prefix.len())
}

/// The rule for a mirror request's `ns` (the upstream host clients were configured for:
/// `docker.io`, `ghcr.io`, `registry.example:5000`); the first one by prefix when several rules
/// name the same upstream.
pub fn rule_for_mirror<'a, R: AsRef<PullThroughRule>>(rules: &'a [R], ns: &str) -> Option<&'a R> {
    let wanted = parse_upstream_url(ns).ok()?;
    rules
        .iter()
        .filter(|r| r.as_ref().upstream.authority == wanted.authority)
        .min_by(|a, b| a.as_ref().prefix.cmp(&b.as_ref().prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, url: &str, upstream_prefix: Option<&str>) -> PullThroughRule {
        let upstream = parse_upstream_url(url).unwrap();
        PullThroughRule {
            prefix: prefix.into(),
            upstream_registry: upstream_registry_kind(&upstream).into(),
            upstream,
            upstream_url: url.into(),
            credential_arn: None,
            custom_role_arn: None,
            upstream_repository_prefix: upstream_prefix.map(str::to_owned),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn upstream_urls() {
        let u = parse_upstream_url("registry-1.docker.io").unwrap();
        assert_eq!(u.base_url(), "https://registry-1.docker.io");
        assert_eq!(upstream_registry_kind(&u), "docker-hub");
        assert!(parse_upstream_url("docker.io").unwrap().is_docker_hub());
        let u = parse_upstream_url("http://127.0.0.1:5001/").unwrap();
        assert_eq!(
            (u.scheme.as_str(), u.authority.as_str()),
            ("http", "127.0.0.1:5001")
        );
        assert_eq!(u.host(), "127.0.0.1");
        assert_eq!(upstream_registry_kind(&u), "oci");
        for (url, kind) in [
            ("ghcr.io", "github-container-registry"),
            ("https://quay.io", "quay"),
            ("registry.k8s.io", "k8s"),
            ("public.ecr.aws", "ecr-public"),
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "ecr"),
        ] {
            assert_eq!(
                upstream_registry_kind(&parse_upstream_url(url).unwrap()),
                kind,
                "{url}"
            );
        }
        for bad in [
            "",
            "ftp://x.io",
            "https://x.io/v2/",
            "https://user:pw@x.io",
            "x.io:0",
            "x.io:99999",
            "-x.io",
            "x..io",
        ] {
            let e = parse_upstream_url(bad).unwrap_err();
            assert!(e.contains("upstreamRegistryUrl"), "{bad}: {e}");
        }
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            validate_prefix("ecrRepositoryPrefix", "hub/").unwrap(),
            "hub"
        );
        assert_eq!(
            validate_prefix("ecrRepositoryPrefix", "cache/ghcr").unwrap(),
            "cache/ghcr"
        );
        for bad in [
            "ROOT",
            "x",
            "Hub",
            "hub//x",
            "-hub",
            "hub-",
            "a..b",
            &"a".repeat(31),
        ] {
            let e = validate_prefix("ecrRepositoryPrefix", bad).unwrap_err();
            assert!(e.contains("'ecrRepositoryPrefix'"), "{bad}: {e}");
        }
    }

    #[test]
    fn credential_arns() {
        let arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:ecr-pullthroughcache/hub";
        assert_eq!(
            credential_name(arn, "us-east-1", "000000000000").unwrap(),
            "hub"
        );
        assert!(credential_name(arn, "eu-west-1", "000000000000")
            .unwrap_err()
            .contains("region and account"));
        let other = "arn:aws:secretsmanager:us-east-1:000000000000:secret:other/hub";
        assert!(credential_name(other, "us-east-1", "000000000000")
            .unwrap_err()
            .contains("ecr-pullthroughcache/"));
        assert!(credential_name("hub", "us-east-1", "000000000000").is_err());
    }

    #[test]
    fn names_map_to_upstream_repositories_and_back() {
        let hub = rule("hub", "registry-1.docker.io", None);
        assert_eq!(
            hub.upstream_repository("hub/alpine").as_deref(),
            Some("library/alpine")
        );
        assert_eq!(
            hub.upstream_repository("hub/bitnami/redis").as_deref(),
            Some("bitnami/redis")
        );
        assert_eq!(hub.upstream_repository("hub"), None);
        assert_eq!(hub.upstream_repository("hubx/alpine"), None);
        assert_eq!(
            hub.local_repository("alpine").as_deref(),
            Some("hub/library/alpine")
        );
        assert_eq!(
            hub.local_repository("library/alpine").as_deref(),
            Some("hub/library/alpine")
        );
        let ecr = rule(
            "team-cache",
            "123456789012.dkr.ecr.us-east-1.amazonaws.com",
            Some("team"),
        );
        assert_eq!(
            ecr.upstream_repository("team-cache/app").as_deref(),
            Some("team/app")
        );
        assert_eq!(
            ecr.local_repository("team/app").as_deref(),
            Some("team-cache/app")
        );
        assert_eq!(ecr.local_repository("other/app"), None);

        let rules = vec![
            hub.clone(),
            rule("hub/mirror", "http://127.0.0.1:5001", None),
            rule("ghcr", "ghcr.io", None),
        ];
        assert_eq!(rule_for(&rules, "hub/alpine").unwrap().prefix, "hub");
        assert_eq!(
            rule_for(&rules, "hub/mirror/x").unwrap().prefix,
            "hub/mirror"
        );
        assert!(rule_for(&rules, "local/app").is_none());
        assert!(rule_for(&rules, "ghcr").is_none());
        assert_eq!(rule_for_mirror(&rules, "docker.io").unwrap().prefix, "hub");
        assert_eq!(
            rule_for_mirror(&rules, "127.0.0.1:5001").unwrap().prefix,
            "hub/mirror"
        );
        assert!(rule_for_mirror(&rules, "quay.io").is_none());
    }
}
