//! End-to-end access control with real clients: a non-admin user created through the admin API
//! logs in with docker, podman, skopeo and containerd, and gets exactly what its policy allows
//! (pull and push under `ci/`, nothing elsewhere); anonymous docker pulls work only where a
//! repository policy says so; `aws ecr get-login-password | docker login -u AWS` works.

mod common;
mod e2e;

use std::process::Command;

use e2e::daemons::{Containerd, Dockerd, HostCfg, Podman};
use e2e::{admin_creds, push_test_image, run, run_ok, run_with_input, unique, Registry};

const USER: &str = "builder";
const PASSWORD: &str = "builder-password-1";

fn policy_path(name: &str) -> String {
    format!("{}/policies/access/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// One admin API call with curl; returns (status, body).
fn admin_api(reg: &Registry, method: &str, path: &str, body_args: &[&str]) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-u", &admin_creds(), "-X", method])
        .args(["-H", "content-type: application/json"])
        .args(body_args)
        .arg(format!("http://{}{path}", reg.addr));
    let out = run_ok(c).stdout;
    let (body, status) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (status.parse().unwrap(), body.to_owned())
}

/// Repositories for one test: `ci/...` (the user may pull and push), `secret/...` (nothing)
/// and `public/...` (anyone may pull), each holding the test image as `v1`; and the user.
struct Setup {
    reg: Registry,
    ci: String,
    secret: String,
    public: String,
}

fn setup() -> Setup {
    let reg = Registry::start();
    assert_eq!(reg.kind, "berth", "access control tests need Berth itself");
    let id = unique("policy");
    let suffix = id.trim_start_matches("e2e/").to_owned();
    let s = Setup {
        ci: format!("ci/{suffix}"),
        secret: format!("secret/{suffix}"),
        public: format!("public/{suffix}"),
        reg,
    };
    for repo in [&s.ci, &s.secret, &s.public] {
        push_test_image(&s.reg, repo, "v1", None);
    }
    let user = format!(r#"{{"name":"{USER}","password":"{PASSWORD}"}}"#);
    let (status, body) = admin_api(&s.reg, "POST", "/api/v1/users", &["-d", &user]);
    assert_eq!(status, 201, "create user: {body}");
    let ci_policy = format!("@{}", policy_path("ci-pusher-prefix.json"));
    let (status, body) = admin_api(
        &s.reg,
        "PUT",
        &format!("/api/v1/users/{USER}/policy"),
        &["--data-binary", &ci_policy],
    );
    assert_eq!(status, 204, "attach policy: {body}");
    let anonymous = format!("@{}", policy_path("anonymous-pull.json"));
    let (status, body) = admin_api(
        &s.reg,
        "PUT",
        &format!("/api/v1/repository-policies/{}", s.public),
        &["--data-binary", &anonymous],
    );
    assert!(
        status == 200 || status == 204,
        "repository policy: {status} {body}"
    );
    s
}

fn refused(out: &e2e::Out, what: &str) {
    assert!(!out.success(), "{what} should have been refused");
    let text = out.combined().to_lowercase();
    assert!(
        text.contains("denied") || text.contains("unauthorized") || text.contains("403"),
        "{what}: refused for the wrong reason:\n{}",
        out.combined()
    );
}

#[test]
fn docker_login_push_and_pull_follow_policies() {
    let s = setup();
    let dockerd = Dockerd::start(&[&s.reg.addr]);
    let docker = |args: &[&str]| {
        let mut c = dockerd.docker();
        c.args(args);
        run(c)
    };
    let mut login = dockerd.docker();
    login.args(["login", &s.reg.addr, "--username", USER, "--password-stdin"]);
    let out = run_with_input(login, PASSWORD.as_bytes()).ok();
    e2e::assert_contains(&out.combined(), "Login Succeeded", "docker login");
    let mut bad = dockerd.docker();
    bad.args(["login", &s.reg.addr, "--username", USER, "--password-stdin"]);
    refused(
        &run_with_input(bad, b"wrong-password"),
        "docker login with a wrong password",
    );

    let ci = s.reg.reference(&s.ci, "v1");
    docker(&["pull", &ci]).ok();
    // Push to a new repository under ci/ (create-on-push is allowed there).
    let new_ci = s.reg.reference(&format!("{}-new", s.ci), "v1");
    docker(&["tag", &ci, &new_ci]).ok();
    e2e::assert_contains(
        &docker(&["push", &new_ci]).ok().stdout,
        "digest:",
        "docker push",
    );
    // Cross-repository: neither pull nor push outside ci/.
    let secret = s.reg.reference(&s.secret, "v1");
    refused(&docker(&["pull", &secret]), "docker pull of secret/");
    let secret_push = s.reg.reference(&s.secret, "v2");
    docker(&["tag", &ci, &secret_push]).ok();
    refused(&docker(&["push", &secret_push]), "docker push to secret/");

    // Logged out: the public repository's policy lets anyone pull; nothing else is open.
    docker(&["logout", &s.reg.addr]).ok();
    docker(&["rmi", &ci]).ok();
    docker(&["pull", &s.reg.reference(&s.public, "v1")]).ok();
    refused(&docker(&["pull", &ci]), "anonymous docker pull of ci/");
    refused(&docker(&["push", &new_ci]), "anonymous docker push");
}

#[test]
fn aws_ecr_get_login_password_logs_docker_in() {
    let s = setup();
    let (status, body) = admin_api(
        &s.reg,
        "POST",
        &format!("/api/v1/users/{USER}/access-keys"),
        &[],
    );
    assert_eq!(status, 201, "access key: {body}");
    let key: serde_json::Value = serde_json::from_str(&body).unwrap();
    let venv = std::env::var_os("BERTH_E2E_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/berth-venv")
        });
    let mut aws = Command::new(venv.join("bin/aws"));
    aws.args(["ecr", "get-login-password", "--endpoint-url"])
        .arg(format!("http://{}", s.reg.addr))
        .env("AWS_ACCESS_KEY_ID", key["accessKeyId"].as_str().unwrap())
        .env(
            "AWS_SECRET_ACCESS_KEY",
            key["secretAccessKey"].as_str().unwrap(),
        )
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("NO_PROXY", "127.0.0.1,localhost");
    let password = run_ok(aws).stdout.trim().to_owned();
    assert!(
        password.len() > 100,
        "a registry password, not {password:?}"
    );

    let dockerd = Dockerd::start(&[&s.reg.addr]);
    let mut login = dockerd.docker();
    login.args([
        "login",
        &s.reg.addr,
        "--username",
        "AWS",
        "--password-stdin",
    ]);
    let out = run_with_input(login, password.as_bytes()).ok();
    e2e::assert_contains(&out.combined(), "Login Succeeded", "docker login -u AWS");
    let mut pull = dockerd.docker();
    pull.args(["pull", &s.reg.reference(&s.ci, "v1")]);
    run(pull).ok();
    let mut pull = dockerd.docker();
    pull.args(["pull", &s.reg.reference(&s.secret, "v1")]);
    refused(
        &run(pull),
        "docker pull of secret/ with the user's ECR password",
    );
}

#[test]
fn podman_and_skopeo_with_credentials_follow_policies() {
    let s = setup();
    let creds = format!("{USER}:{PASSWORD}");
    let inspect = |creds: Option<&str>, repo: &str| {
        let mut c = e2e::skopeo();
        c.args(["inspect", "--tls-verify=false", "--raw"]);
        if let Some(creds) = creds {
            c.args(["--creds", creds]);
        }
        c.arg(format!("docker://{}", s.reg.reference(repo, "v1")));
        run(c)
    };
    inspect(Some(&creds), &s.ci).ok();
    refused(
        &inspect(Some(&creds), &s.secret),
        "skopeo inspect of secret/",
    );
    refused(
        &inspect(Some(&format!("{USER}:nope")), &s.ci),
        "skopeo with a wrong password",
    );
    inspect(None, &s.public).ok();
    refused(
        &inspect(None, &s.secret),
        "anonymous skopeo inspect of secret/",
    );
    // skopeo copy from ci/ to secret/ is refused at the destination.
    let mut copy = e2e::skopeo();
    copy.args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(["--src-creds", &creds, "--dest-creds", &creds])
        .arg(format!("docker://{}", s.reg.reference(&s.ci, "v1")))
        .arg(format!("docker://{}", s.reg.reference(&s.secret, "copied")));
    refused(&run(copy), "skopeo copy into secret/");

    let podman = Podman::new();
    let mut login = podman.podman();
    login
        .arg("login")
        .arg("--authfile")
        .arg(podman.authfile())
        .args(["--tls-verify=false", "--username", USER, "--password-stdin"])
        .arg(&s.reg.addr);
    let out = run_with_input(login, PASSWORD.as_bytes()).ok();
    e2e::assert_contains(&out.combined(), "Login Succeeded", "podman login");
    let ci = s.reg.reference(&s.ci, "v1");
    podman.run(&["pull", "--tls-verify=false", &ci]).ok();
    let out = podman.run(&[
        "pull",
        "--tls-verify=false",
        &s.reg.reference(&s.secret, "v1"),
    ]);
    refused(&out, "podman pull of secret/");
    let pushed = s.reg.reference(&format!("{}-podman", s.ci), "v1");
    podman.run(&["tag", &ci, &pushed]).ok();
    podman.run(&["push", "--tls-verify=false", &pushed]).ok();
}

#[test]
fn containerd_with_credentials_follows_policies() {
    let s = setup();
    let ctrd = Containerd::start(&[HostCfg {
        addr: &s.reg.addr,
        scheme: "http",
        ca: None,
    }]);
    let creds = format!("{USER}:{PASSWORD}");
    let pull = |repo: &str| {
        let mut c = ctrd.ctr("e2e-policy");
        c.args(["images", "pull", "--plain-http", "--user", &creds])
            .arg(s.reg.reference(repo, "v1"));
        run(c)
    };
    pull(&s.ci).ok();
    refused(&pull(&s.secret), "ctr pull of secret/");
    let mut c = ctrd.ctr("e2e-policy");
    let dst = s.reg.reference(&s.secret, "from-ctr");
    c.args(["images", "tag", &s.reg.reference(&s.ci, "v1"), &dst]);
    run_ok(c);
    let mut push = ctrd.ctr("e2e-policy");
    push.args(["images", "push", "--plain-http", "--user", &creds, &dst]);
    refused(&run(push), "ctr push to secret/");
}
