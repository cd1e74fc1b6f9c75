//! End-to-end access control with real clients: a non-admin user created through the admin API
//! logs in with docker, podman, skopeo and containerd, and gets exactly what its policy allows
//! (pull and push under `ci/`, nothing elsewhere); anonymous docker pulls work only where a
//! repository policy says so; `aws ecr get-login-password | docker login -u AWS` works.

use crate::support::e2e;

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
    curl(reg, &["-u", &admin_creds()], method, path, body_args)
}

/// One call with curl and the given credential arguments (`-u user:password`, `-H ...`);
/// returns (status, body).
fn curl(
    reg: &Registry,
    auth: &[&str],
    method: &str,
    path: &str,
    body_args: &[&str],
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args(["-sS", "--noproxy", "*", "-o", "-", "-w", "\n%{http_code}"])
        .args(auth)
        .args(["-X", method])
        .args(["-H", "content-type: application/json"])
        .args(body_args)
        .arg(format!("http://{}{path}", reg.addr));
    let out = run_ok(c).stdout;
    let (body, status) = out.trim_end().rsplit_once('\n').unwrap_or(("", out.trim()));
    (status.parse().unwrap(), body.to_owned())
}

/// A new access key of `principal` (`users/<name>`), through the admin API.
fn create_access_key(reg: &Registry, principal: &str) -> serde_json::Value {
    let (status, body) = admin_api(
        reg,
        "POST",
        &format!("/api/v1/{principal}/access-keys"),
        &[],
    );
    assert_eq!(status, 201, "access key: {body}");
    serde_json::from_str(&body).unwrap()
}

/// `aws ecr get-login-password` (the AWS CLI from the test venv) with `key`.
fn get_login_password(reg: &Registry, key: &serde_json::Value) -> String {
    let venv = std::env::var_os("BERTH_E2E_VENV")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/berth-venv")
        });
    let mut aws = Command::new(venv.join("bin/aws"));
    aws.args(["ecr", "get-login-password", "--endpoint-url"])
        .arg(format!("http://{}", reg.addr))
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
    password
}

/// The claims of a JWT (without verifying it: the server does that).
fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// The identity token `docker login` stored for `addr` in the client's config.json.
fn docker_identity_token(dockerd: &Dockerd, addr: &str) -> String {
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dockerd.config_file()).unwrap()).unwrap();
    config["auths"][addr]["identitytoken"]
        .as_str()
        .unwrap_or_else(|| panic!("docker kept no identity token for {addr}: {config}"))
        .to_owned()
}

/// `docker login ADDR -u USER --password-stdin`, which must succeed.
fn docker_login(dockerd: &Dockerd, addr: &str, user: &str, password: &str) {
    let mut login = dockerd.docker();
    login.args(["login", addr, "--username", user, "--password-stdin"]);
    let out = run_with_input(login, password.as_bytes()).ok();
    e2e::assert_contains(
        &out.combined(),
        "Login Succeeded",
        &format!("docker login -u {user}"),
    );
}

/// Polls `check` until it holds, for at most five seconds (the revocation rule).
fn within_five_seconds(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !check() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within five seconds"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
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
    let key = create_access_key(&s.reg, &format!("users/{USER}"));
    let password = get_login_password(&s.reg, &key);

    let dockerd = Dockerd::start(&[&s.reg.addr]);
    docker_login(&dockerd, &s.reg.addr, "AWS", &password);
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

/// The credentials docker and the AWS CLI leave on a build host (the identity token docker keeps
/// in config.json after any login, and a 12-hour ECR password) are registry credentials: with an
/// administrator's, neither opens the admin API, and the one docker keeps after
/// `get-login-password | docker login -u AWS` ends with that password and with its access key.
#[test]
fn registry_credentials_never_open_the_admin_api_and_end_with_their_access_key() {
    let s = setup();
    let (admin_user, admin_password) = admin_creds()
        .split_once(':')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .unwrap();
    let dockerd = Dockerd::start(&[&s.reg.addr]);
    let docker = |args: &[&str]| {
        let mut c = dockerd.docker();
        c.args(args);
        run(c)
    };
    let mallory = r#"{"name":"mallory","password":"mallory-password-1"}"#;
    let refused_by_admin_api = |auth: &[&str], kind: &str| {
        let (status, body) = curl(&s.reg, auth, "POST", "/api/v1/users", &["-d", mallory]);
        assert_eq!(status, 401, "{kind} opened the admin API: {body}");
        assert!(body.contains(kind), "the refusal names {kind}: {body}");
        let (status, body) = admin_api(&s.reg, "GET", "/api/v1/users/mallory", &[]);
        assert_eq!(status, 404, "mallory exists: {body}");
    };

    // A password login: docker keeps the refresh token /token hands it.
    docker_login(&dockerd, &s.reg.addr, &admin_user, &admin_password);
    let identity = docker_identity_token(&dockerd, &s.reg.addr);
    let aws_identity = format!("AWS:{identity}");
    let (status, body) = curl(
        &s.reg,
        &["-u", &aws_identity],
        "POST",
        "/api/v1/users",
        &["-d", mallory],
    );
    assert_eq!(
        status, 401,
        "the identity token opened the admin API: {body}"
    );
    let bearer = format!("authorization: Bearer {identity}");
    let (status, _) = curl(&s.reg, &["-H", &bearer], "GET", "/api/v1/users", &[]);
    assert_eq!(status, 401);
    // Nor is it a password for the registry itself: only /token takes it.
    let (status, _) = curl(&s.reg, &["-u", &aws_identity], "GET", "/v2/", &[]);
    assert_eq!(status, 401);

    // The admin's ECR password.
    let key = create_access_key(&s.reg, &format!("users/{admin_user}"));
    let password = get_login_password(&s.reg, &key);
    refused_by_admin_api(&["-u", &format!("AWS:{password}")], "ecr_password");

    // docker login -u AWS: the refresh token docker keeps expires with the password...
    docker(&["logout", &s.reg.addr]).ok();
    docker_login(&dockerd, &s.reg.addr, "AWS", &password);
    let identity = docker_identity_token(&dockerd, &s.reg.addr);
    let password_exp = jwt_claims(&password)["exp"].as_i64().unwrap();
    let identity_exp = jwt_claims(&identity)["exp"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        password_exp <= now + 12 * 3600 + 60,
        "the ECR password lives 12 hours"
    );
    assert!(
        identity_exp <= password_exp,
        "the refresh token ({identity_exp}) outlives the ECR password ({password_exp})"
    );
    refused_by_admin_api(&["-u", &format!("AWS:{identity}")], "registry password");
    let ci = s.reg.reference(&s.ci, "v1");
    docker(&["pull", &ci]).ok();

    // ...and stops working within five seconds when its access key is deactivated, works again
    // when it is reactivated, and ends for good with the key's deletion.
    let key_id = key["accessKeyId"].as_str().unwrap();
    let key_path = format!("/api/v1/users/{admin_user}/access-keys/{key_id}");
    let refresh = |token: &str| {
        let form = format!("grant_type=refresh_token&service=berth&refresh_token={token}");
        let mut c = Command::new("curl");
        c.args([
            "-sS",
            "--noproxy",
            "*",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-d", &form])
        .arg(format!("http://{}/token", s.reg.addr));
        run_ok(c).stdout.trim().to_owned()
    };
    assert_eq!(refresh(&identity), "200");
    let (status, body) = admin_api(
        &s.reg,
        "PUT",
        &key_path,
        &["-d", r#"{"status":"Inactive"}"#],
    );
    assert_eq!(status, 204, "{body}");
    let (_, keys) = admin_api(
        &s.reg,
        "GET",
        &format!("/api/v1/users/{admin_user}/access-keys"),
        &[],
    );
    assert!(keys.contains(r#""status":"Inactive""#), "{keys}");
    within_five_seconds("refresh token of a deactivated key refused", || {
        refresh(&identity) == "401"
    });
    let (status, _) = curl(
        &s.reg,
        &["-u", &format!("AWS:{password}")],
        "GET",
        "/v2/",
        &[],
    );
    assert_eq!(status, 401, "the ECR password of a deactivated key");
    let (status, body) = admin_api(&s.reg, "PUT", &key_path, &["-d", r#"{"status":"Active"}"#]);
    assert_eq!(status, 204, "{body}");
    within_five_seconds("refresh token of a reactivated key accepted", || {
        refresh(&identity) == "200"
    });
    let (status, body) = admin_api(&s.reg, "DELETE", &key_path, &[]);
    assert_eq!(status, 204, "{body}");
    within_five_seconds("refresh token of a deleted key refused", || {
        refresh(&identity) == "401"
    });
    docker(&["rmi", &ci]).ok();
    refused(
        &docker(&["pull", &ci]),
        "docker pull with a deleted key's login",
    );

    // The audit log says which kind of credential each call used.
    let (status, body) = admin_api(&s.reg, "GET", "/api/v1/audit?limit=1000", &[]);
    assert_eq!(status, 200, "{body}");
    let log: serde_json::Value = serde_json::from_str(&body).unwrap();
    let kind_of = |action: &str| {
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == action)
            .unwrap_or_else(|| panic!("no {action} in {log}"))["credential"]
            .clone()
    };
    assert_eq!(kind_of("berth:CreateAccessKey"), "password");
    assert_eq!(kind_of("ecr:GetAuthorizationToken"), "access_key");
}

/// What real clients do with Berth's answers to a token that lacks a scope (see
/// `lacking_scope_answer` in src/http/auth.rs): 401 with an `insufficient_scope` challenge when
/// the token never asked for the action (a new token may carry it), 403 `DENIED` when it asked
/// and the policies refused (another token would not help), and 403 with the challenge for a
/// write with a token that never asked for push.
///
/// - docker, containerd, podman and skopeo ask for the scopes an operation needs before they
///   start, so they meet only the 403 of a refused scope, and stop with its reason (the tests
///   above).
/// - The OCI conformance suite reuses a pull token for an upload's status and cancel, gets 401,
///   asks for a new token and goes on (run by hand, see the README).
/// - oras (PyPI, 0.2.43) holds one token for every request: on a 401 it sends the same token
///   once more and gives up; on a 403 it fetches a new token with the challenge's scope. Its
///   push (a HEAD for each blob first, then the upload) works through the write rule; a push
///   after a pull of another repository too; but a pull of another repository after a push,
///   with the same client object, ends in that 401. Recorded here: use one client per
///   repository, as its CLI does.
#[test]
fn token_refusals_as_oras_meets_them() {
    let s = setup();
    let python = e2e::python_with_oras();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("notes.txt"), "oras and tokens\n").unwrap();
    let media = "application/vnd.berth.e2e.file";
    let oras = |args: &[&str]| {
        let mut c = Command::new(&python);
        c.current_dir(files.path())
            .arg(e2e::fixture("oras_roundtrip.py"))
            .args(args)
            .env("BERTH_E2E_USERNAME", USER)
            .env("BERTH_E2E_PASSWORD", PASSWORD);
        run(c)
    };
    // A fresh client's push: its HEAD of each blob gets a pull token, the upload with it a 403
    // with the challenge, and the token it fetches then carries push.
    let artifact = s.reg.reference(&format!("{}-oras", s.ci), "v1");
    oras(&["push", &artifact, media, "notes.txt"]).ok();

    // Asked for and refused (a push into secret/): 403; oras fetches one new token, is refused
    // again and stops with the reason.
    let secret = s.reg.reference(&format!("{}-oras", s.secret), "v1");
    refused(
        &oras(&["push", &secret, media, "notes.txt"]),
        "oras push into secret/",
    );

    // One client, two repositories: a push after a pull works...
    let second = s.reg.reference(&format!("{}-oras2", s.ci), "v1");
    let out = oras(&["pull-then-push", &artifact, &second, media, "notes.txt"]).ok();
    e2e::assert_contains(&out.stdout, "push: 201", "oras push after a pull");
    // ...a pull after a push meets the 401 and oras gives up.
    let third = s.reg.reference(&format!("{}-oras3", s.ci), "v1");
    let out = oras(&["push-then-pull", &third, &artifact, media, "notes.txt"]).ok();
    e2e::assert_contains(&out.stdout, "push: 201", "oras push");
    e2e::assert_contains(
        &out.stdout,
        "pull failed",
        "oras pull with another repository's token",
    );
    e2e::assert_contains(
        &out.stdout,
        "Unauthorized",
        "oras pull with another repository's token",
    );
}
