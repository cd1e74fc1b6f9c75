//! The server process as an operator meets it: configuration errors name the field, migrations are
//! idempotent, maintenance subcommands take the storage flags anywhere (and only `serve` the
//! server's), logs off a terminal have no colour codes, SIGTERM lets in-flight uploads finish,
//! slow clients are cut off, and S3 downloads can be redirected to presigned URLs.

use crate::support::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{berth_bin, TestServer};
use reqwest::{Client, StatusCode};
use sha2::{Digest as _, Sha256};

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn serve_fails(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(berth_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn invalid_configuration_stops_startup_naming_the_field() {
    let (code, err) = serve_fails(&["--listen", "nowhere"], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("listen"), "{err}");

    let (code, err) = serve_fails(&[], &[("BERTH_LIMITS_MAX_INDEX_DEPTH", "deep")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("BERTH_LIMITS_MAX_INDEX_DEPTH"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.toml");
    std::fs::write(&file, "[databse]\nurl = \"sqlite://x\"\n").unwrap();
    let (code, err) = serve_fails(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("databse"), "{err}");

    std::fs::write(&file, "[storage]\nurl = \"ftp://nope\"\n").unwrap();
    let (code, err) = serve_fails(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("storage.url"), "{err}");
}

#[test]
fn migrate_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = Command::new(berth_bin())
            .args(["migrate", "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
}

/// `berth <args>` with stdout and stderr captured (neither is a terminal).
fn berth(args: &[&str]) -> std::process::Output {
    Command::new(berth_bin()).args(args).output().unwrap()
}

/// The storage flags work on every maintenance subcommand, before or after a nested
/// subcommand; the server-only flags are refused there and listed only by `serve --help`.
#[test]
fn maintenance_subcommands_take_storage_flags_anywhere_and_only_serve_takes_server_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let runs: [(&[&str], &str); 7] = [
        (&["gc", "--data-dir", data, "run"], "gc: deleted"),
        (&["gc", "run", "--data-dir", data], "gc: deleted"),
        (&["--data-dir", data, "gc", "run"], "gc: deleted"),
        (
            &["lifecycle", "--data-dir", data, "run"],
            "lifecycle: 0 image(s)",
        ),
        (
            &["lifecycle", "run", "--data-dir", data],
            "lifecycle: 0 image(s)",
        ),
        (&["fsck", "--data-dir", data], "fsck: 0 problem(s)"),
        (&["--data-dir", data, "migrate"], "migrations applied"),
    ];
    for (args, expected) in runs {
        let out = berth(args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains(expected),
            "berth {args:?}: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let server_flags = ["--listen", "--tls-cert", "--tls-key", "--trivy-path"];
    let storage_flags = ["--config", "--data-dir", "--database-url", "--storage-url"];
    let help = |args: &[&str]| {
        let out = berth(args);
        assert!(out.status.success(), "berth {args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let serve = help(&["serve", "--help"]);
    for flag in server_flags.iter().chain(&storage_flags) {
        assert!(serve.contains(flag), "serve --help lacks {flag}:\n{serve}");
    }
    for sub in [
        &["gc", "--help"][..],
        &["gc", "run", "--help"],
        &["lifecycle", "--help"],
        &["lifecycle", "run", "--help"],
        &["fsck", "--help"],
        &["migrate", "--help"],
    ] {
        let text = help(sub);
        for flag in storage_flags {
            assert!(text.contains(flag), "{sub:?} lacks {flag}:\n{text}");
        }
        for flag in server_flags {
            assert!(!text.contains(flag), "{sub:?} lists {flag}:\n{text}");
        }
    }
    let out = berth(&["gc", "run", "--data-dir", data, "--listen", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(2), "--listen is refused on gc run");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--listen"));
}

/// Logs written to a file or a pipe carry no colour escape codes (only a terminal gets colour).
#[test]
fn logs_have_no_colour_codes_when_stderr_is_not_a_terminal() {
    let server = TestServer::start();
    let log = server.log();
    assert!(log.contains("INFO"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "escape codes in the server log:\n{log:?}"
    );

    // A maintenance command's log lines, through a pipe.
    let dir = tempfile::tempdir().unwrap();
    let out = berth(&["gc", "run", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "{stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "escape codes on a pipe: {stderr:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_lets_an_in_flight_upload_finish() {
    let mut server = TestServer::start();
    let c = common::admin_client();
    let start = c
        .post(server.url("/v2/shutdown/app/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let location = server.url(start.headers()["location"].to_str().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let patch = tokio::spawn({
        let (c, location) = (c.clone(), location.clone());
        async move { c.patch(location).body(body).send().await }
    });
    tx.send(Ok(vec![1u8; 64 * 1024])).await.unwrap();
    server.wait_for_log("receiving upload body", Duration::from_secs(20));

    let pid = server.pid().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    server.wait_for_log("shutting down", Duration::from_secs(20));
    tx.send(Ok(vec![2u8; 64 * 1024])).await.unwrap();
    drop(tx);
    let response = patch
        .await
        .unwrap()
        .expect("the in-flight PATCH is answered");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["range"], "0-131071");

    // The server then exits, and the acknowledged bytes are there after a restart.
    server.restart();
    let status = c.get(&location).send().await.unwrap();
    assert_eq!(status.status(), StatusCode::NO_CONTENT);
    assert_eq!(status.headers()["range"], "0-131071");
}

/// A stream over an mpsc receiver (tokio-stream is not a dependency).
fn tokio_stream_from(
    rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

/// Reads until the peer closes or `deadline`; returns what was read and whether it closed.
fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> (String, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), false)
}

#[test]
fn slow_clients_cannot_hold_connections() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_SERVER_HEADER_TIMEOUT_SECS", "1"),
            ("BERTH_SERVER_BODY_IDLE_TIMEOUT_SECS", "1"),
        ],
    );
    // Headers that never finish.
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(b"GET /v2/ HTTP/1.1\r\nHost: berth\r\n")
        .unwrap();
    let (_, closed) = read_until_closed(&mut s, Instant::now() + Duration::from_secs(15));
    assert!(
        closed,
        "a client that never finishes its headers must be disconnected"
    );

    // A body that stalls: the upload is aborted with a clear error.
    let start = reqwest::blocking_free_post(&server);
    let mut s = TcpStream::connect(&server.addr).unwrap();
    let head = format!(
        "PATCH {start} HTTP/1.1\r\nHost: berth\r\nAuthorization: {}\r\nContent-Length: 1000\r\nContent-Type: application/octet-stream\r\n\r\n",
        common::admin_basic_auth()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&[7u8; 10]).unwrap();
    let (answer, _) = read_until_closed(&mut s, Instant::now() + Duration::from_secs(15));
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("no body bytes received"), "{answer}");
}

/// Opens an upload session with a raw request and returns its path.
mod reqwest {
    pub use ::reqwest::*;

    pub fn blocking_free_post(server: &super::TestServer) -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
        let request = format!(
            "POST /v2/slow/app/blobs/uploads/ HTTP/1.1\r\nHost: berth\r\nAuthorization: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            super::common::admin_basic_auth()
        );
        s.write_all(request.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let line = text
            .lines()
            .find(|l| l.to_ascii_lowercase().starts_with("location:"))
            .expect("upload location");
        line.split_once(':').unwrap().1.trim().to_owned()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn s3_downloads_can_redirect_to_presigned_urls() {
    // AWS_CA_BUNDLE pointing nowhere must not matter: Berth deliberately does not read it.
    let server = TestServer::start_on_pg_s3(
        &[],
        &[
            ("BERTH_STORAGE_REDIRECT", "true"),
            ("AWS_CA_BUNDLE", "/nonexistent/ca.pem"),
        ],
    );
    let c = common::admin_client_builder()
        .redirect(::reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let push = c
        .post(server.url(&format!(
            "/v2/redirect/app/blobs/uploads/?digest={}",
            digest(&data)
        )))
        .body(data.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), StatusCode::CREATED);
    let blob = server.url(&format!("/v2/redirect/app/blobs/{}", digest(&data)));
    let answer = c.get(&blob).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::TEMPORARY_REDIRECT);
    let target = answer.headers()["location"].to_str().unwrap().to_owned();
    let endpoint = &server.backends().unwrap().s3_endpoint;
    assert!(target.starts_with(endpoint.as_str()), "{target}");
    assert!(target.contains("X-Amz-Signature="), "{target}");
    assert!(target.contains("X-Amz-Expires=300"), "{target}");
    assert!(
        !target.contains(common::S3_SECRET_KEY),
        "the secret never leaves Berth"
    );

    // The presigned URL works on its own, with no credentials, and honours Range.
    let plain = Client::new(); // anonymous on purpose: the URL carries its own signature
    let full = plain.get(&target).send().await.unwrap();
    assert_eq!(full.status(), StatusCode::OK);
    assert_eq!(full.bytes().await.unwrap().as_ref(), &data[..]);
    let part = plain
        .get(&target)
        .header("range", "bytes=100-199")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.bytes().await.unwrap().as_ref(), &data[100..200]);
    // A client that authenticates to Berth and follows the redirect gets the bytes too: its
    // Authorization header is for Berth and is not sent on to S3 (another host:port), where it
    // would clash with the presigned signature.
    let followed = common::admin_client().get(&blob).send().await.unwrap();
    assert_eq!(followed.status(), StatusCode::OK);
    assert!(
        followed.url().as_str().starts_with(endpoint.as_str()),
        "{}",
        followed.url()
    );
    assert_eq!(followed.bytes().await.unwrap().as_ref(), &data[..]);
    // HEAD is still answered by Berth itself.
    let head = c.head(&blob).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    assert_eq!(
        head.headers()["content-length"],
        data.len().to_string().as_str()
    );
}
