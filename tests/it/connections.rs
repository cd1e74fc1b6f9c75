//! Connections that never speak, or speak too slowly, cannot take the registry down: silent
//! sockets and quiet HTTP/2 connections are closed, the number of open connections is capped
//! without locking out a working client, stalled request bodies and clients that stop reading
//! are cut off at the configured time, and a busy port is reported before anything claims to
//! listen. Runs on both stacks (`BERTH_TEST_STACK`).

use crate::support::{api, common};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use api::{sha256_digest, Api};
use common::TestServer;

/// Waits until the server closes `stream` (EOF or reset), reading and discarding whatever it
/// sends; false if it is still open at `deadline`.
fn closed_by(stream: &mut TcpStream, deadline: Instant) -> bool {
    let mut buf = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Opens `n` connections that never send a byte.
fn silent_sockets(server: &TestServer, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| TcpStream::connect(&server.addr).expect("connect"))
        .collect()
}

/// The HTTP/2 connection preface and an empty SETTINGS frame: a client that starts HTTP/2
/// without TLS (h2c) and then says nothing.
const H2C_PREFACE_AND_SETTINGS: &[u8] =
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// A client that opens a new connection for every request, as many short-lived clients do: each
/// one must get in while silent sockets hold the cap.
fn fresh_connection_client(server: &TestServer) -> Api {
    Api {
        base: server.base.clone(),
        http: common::admin_client_builder()
            .pool_max_idle_per_host(0)
            .timeout(Duration::from_secs(60))
            .no_proxy()
            .build()
            .unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn quiet_connections_beyond_the_cap_are_closed_while_a_client_keeps_pushing_and_pulling() {
    const CAP: usize = 8;
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_SERVER_MAX_CONNECTIONS", "8"),
            ("BERTH_SERVER_HEADER_TIMEOUT_SECS", "2"),
        ],
    );
    let client = fresh_connection_client(&server);
    let mut silent = Vec::new();
    for round in 0..4 {
        // Fill the cap three times over with silent sockets and HTTP/2 starts that go quiet,
        // then push and pull: each of the client's new connections must still get in.
        silent.extend(silent_sockets(&server, 2 * CAP));
        for mut h2c in silent_sockets(&server, CAP) {
            h2c.write_all(H2C_PREFACE_AND_SETTINGS).unwrap();
            silent.push(h2c);
        }
        let pushed = client
            .push_image(&format!("crowded/app{round}"), "v1")
            .await;
        let manifest = client
            .get_manifest(&format!("crowded/app{round}"), "v1")
            .await;
        assert_eq!(manifest.status(), 200, "round {round}");
        assert_eq!(manifest.bytes().await.unwrap(), pushed.manifest);
        for layer in &pushed.layer_digests {
            let blob = client.get_blob(&format!("crowded/app{round}"), layer).await;
            assert_eq!(blob.status(), 200, "round {round}");
            assert_eq!(&sha256_digest(&blob.bytes().await.unwrap()), layer);
        }
    }
    // Every quiet connection is closed: made room for a newcomer, or past the header timeout.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (i, stream) in silent.iter_mut().enumerate() {
        assert!(
            closed_by(stream, deadline),
            "quiet connection {i} of {} is still open:\n{}",
            silent.len(),
            server.log()
        );
    }
    server.wait_for_log("connection limit reached", Duration::from_secs(5));
}

#[test]
fn a_silent_socket_and_a_quiet_h2c_start_are_closed_after_the_header_timeout() {
    let server = TestServer::start_with(&[], &[("BERTH_SERVER_HEADER_TIMEOUT_SECS", "2")]);
    let mut silent = TcpStream::connect(&server.addr).unwrap();
    let mut h2c = TcpStream::connect(&server.addr).unwrap();
    h2c.write_all(H2C_PREFACE_AND_SETTINGS).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    assert!(
        closed_by(&mut silent, deadline),
        "a connection that never sends a byte must be closed:\n{}",
        server.log()
    );
    assert!(
        closed_by(&mut h2c, deadline),
        "an HTTP/2 connection that never sends a request must be closed:\n{}",
        server.log()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_http2_connection_that_goes_quiet_is_closed_though_it_answers_pings() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_SERVER_IDLE_TIMEOUT_SECS", "3"),
            ("BERTH_SERVER_HTTP2_KEEPALIVE_INTERVAL_SECS", "1"),
            // Longer than the wait below: only the idle timeout can end this connection.
            ("BERTH_SERVER_HEADER_TIMEOUT_SECS", "60"),
        ],
    );
    // A real HTTP/2 client (prior knowledge, no TLS): it answers the server's keep-alive PINGs
    // by itself, so only the idle timeout can end the connection.
    let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
    let (mut send, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    let request = http::Request::get(format!("http://{}/v2/", server.addr))
        .header("authorization", common::admin_basic_auth())
        .body(())
        .unwrap();
    let (response, _) = send.send_request(request, true).unwrap();
    let response = response.await.unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
    }
    // Now quiet, holding the connection open.
    let closed = tokio::time::timeout(Duration::from_secs(20), connection).await;
    assert!(
        closed.is_ok(),
        "a quiet HTTP/2 connection must be closed after the idle timeout:\n{}",
        server.log()
    );
    drop(send);
}

#[test]
fn http2_streams_and_header_lists_are_capped() {
    let server = TestServer::start_with(
        &[],
        &[
            ("BERTH_SERVER_HTTP2_MAX_CONCURRENT_STREAMS", "3"),
            ("BERTH_SERVER_HTTP2_MAX_HEADER_LIST_BYTES", "8192"),
        ],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&server.addr).await.unwrap();
        let (send, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let mut send = send.ready().await.unwrap();
        let request = |extra: Option<String>| {
            let mut r = http::Request::get(format!("http://{}/healthz", server.addr));
            if let Some(value) = extra {
                r = r.header("x-padding", value);
            }
            r.body(()).unwrap()
        };
        // The server's SETTINGS have arrived once the first exchange is done.
        let (response, _) = send.send_request(request(None), true).unwrap();
        assert_eq!(response.await.unwrap().status(), 200);
        assert_eq!(send.current_max_send_streams(), 3);
        // A header list over the cap is refused (hyper's default cap would take this one).
        let mut send = send.ready().await.unwrap();
        let answer = match send.send_request(request(Some("x".repeat(12 * 1024))), true) {
            Ok((response, _)) => response.await.map(|r| r.status().as_u16()),
            Err(e) => Err(e),
        };
        assert!(
            matches!(answer, Ok(431)),
            "a 12 KiB header list must get 431 with a cap of 8 KiB: {answer:?}"
        );
    });
}

/// Opens an upload session as the test admin and returns its path.
fn start_upload(server: &TestServer, repo: &str) -> String {
    let mut s = TcpStream::connect(&server.addr).unwrap();
    let request = format!(
        "POST /v2/{repo}/blobs/uploads/ HTTP/1.1\r\nHost: berth\r\nAuthorization: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        common::admin_basic_auth()
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("location:"))
        .unwrap_or_else(|| panic!("no upload location in {text}"));
    line.split_once(':').unwrap().1.trim().to_owned()
}

/// Sends `head` and the first bytes of a body, then stalls; returns the answer and how long
/// after the stall it came.
fn stall_after(server: &TestServer, head: &str, first_bytes: &[u8]) -> (String, Duration) {
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(first_bytes).unwrap();
    let stalled = Instant::now();
    let answer = read_response(&mut s);
    (answer, stalled.elapsed())
}

/// Reads one HTTP/1.1 response (head and `Content-Length` body) as text.
fn read_response(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                break;
            }
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).into_owned()
}

#[test]
fn a_stalled_upload_is_answered_at_the_configured_body_timeout() {
    const IDLE_SECS: u64 = 4;
    let server = TestServer::start_with(&[], &[("BERTH_SERVER_BODY_IDLE_TIMEOUT_SECS", "4")]);
    let upload = start_upload(&server, "stalled/app");
    let head = format!(
        "PATCH {upload} HTTP/1.1\r\nHost: berth\r\nAuthorization: {}\r\nContent-Type: application/octet-stream\r\nContent-Length: 1000\r\n\r\n",
        common::admin_basic_auth()
    );
    let (answer, after) = stall_after(&server, &head, &[7u8; 10]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("no body bytes received"), "{answer}");
    // Cut off at the configured idle time: not before it, and not after a second wait for the
    // rest of the body (it was answered after twice the setting).
    assert!(
        after >= Duration::from_secs(IDLE_SECS),
        "answered after {after:?}"
    );
    assert!(
        after < Duration::from_secs(2 * IDLE_SECS - 1),
        "answered after {after:?}, the body idle timeout is {IDLE_SECS} s"
    );
}

#[test]
fn stalled_bodies_outside_uploads_are_cut_off_too() {
    let server = TestServer::start_with(&[], &[("BERTH_SERVER_BODY_IDLE_TIMEOUT_SECS", "2")]);
    // A manifest, an ECR API call and an admin API call whose bodies stop half-way.
    let auth = common::admin_basic_auth();
    for head in [
        format!("PUT /v2/stalled/app/manifests/v1 HTTP/1.1\r\nHost: berth\r\nAuthorization: {auth}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 500\r\n\r\n"),
        format!("POST / HTTP/1.1\r\nHost: berth\r\nAuthorization: {auth}\r\nX-Amz-Target: AmazonEC2ContainerRegistry_V20150921.DescribeRepositories\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: 500\r\n\r\n"),
        format!("POST /api/v1/users HTTP/1.1\r\nHost: berth\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n"),
    ] {
        let (answer, _) = stall_after(&server, &head, b"{\"schemaVersion\"");
        let status: u16 = answer
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            (400..500).contains(&status),
            "{}: {answer}",
            head.lines().next().unwrap()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_a_download_is_cut_off() {
    let server = TestServer::start_with(&[], &[("BERTH_SERVER_BODY_IDLE_TIMEOUT_SECS", "2")]);
    let api = Api::new(&server.base);
    // Larger than everything the kernel and the server buffer on the way.
    let data = api::random_bytes(64 * 1024 * 1024);
    let digest = api.push_blob("slowreader/app", &data).await;
    let mut s = TcpStream::connect(&server.addr).unwrap();
    let request = format!(
        "GET /v2/slowreader/app/blobs/{digest} HTTP/1.1\r\nHost: berth\r\nAuthorization: {}\r\n\r\n",
        common::admin_basic_auth()
    );
    s.write_all(request.as_bytes()).unwrap();
    // Not reading: the server's writes stall, and it gives up on the connection.
    server.wait_for_log("accepted no bytes", Duration::from_secs(60));
    let mut received = 0usize;
    let mut buf = vec![0u8; 1024 * 1024];
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(ended, "the connection must be closed");
    assert!(
        received < data.len(),
        "the whole blob was sent to a client that did not read ({received} bytes)"
    );
}

#[test]
fn a_busy_port_is_named_and_nothing_claims_to_listen() {
    let server = TestServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::berth_bin())
        .args(["serve", "--listen", &server.addr, "--data-dir"])
        .arg(dir.path())
        .env("BERTH_ADMIN_PASSWORD", "second-server-password")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {}: ", server.addr)),
        "{stderr}"
    );
    assert!(
        stderr.to_lowercase().contains("address already in use"),
        "{stderr}"
    );
    assert!(!stderr.contains("listening"), "{stderr}");
    // Nothing was set up for a server that never ran.
    assert!(!dir.path().join("berth.db").exists());
}

/// A self-signed certificate for 127.0.0.1 (made with the `openssl` CLI) in `dir`: (cert, key).
fn self_signed_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (tests/install-clients.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[tokio::test(flavor = "multi_thread")]
async fn over_tls_a_silent_socket_and_an_idle_handshake_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    let server = TestServer::start_with(
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
        &[("BERTH_SERVER_HEADER_TIMEOUT_SECS", "2")],
    );
    // A TLS client works (and so finds the server ready).
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
    let client = common::admin_client_builder()
        .add_root_certificate(ca)
        .no_proxy()
        .build()
        .unwrap();
    let base = format!("https://{}", server.addr);
    let response = client.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(response.status(), 200);

    // A socket that never starts the handshake, and one that starts it and stops half-way.
    let mut silent = TcpStream::connect(&server.addr).unwrap();
    let mut half = TcpStream::connect(&server.addr).unwrap();
    // The first bytes of a TLS ClientHello record, and nothing more.
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    assert!(
        closed_by(&mut silent, deadline),
        "a TLS connection that never sends a byte must be closed:\n{}",
        server.log()
    );
    assert!(
        closed_by(&mut half, deadline),
        "a TLS handshake that stops must be closed:\n{}",
        server.log()
    );
}
