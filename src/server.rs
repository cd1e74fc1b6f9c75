//! The listener: accepts TCP connections (TLS when configured), serves HTTP/1.1 and HTTP/2 on
//! them with the router, and bounds every connection in time and in number. A new connection
//! must send its first request within `header_timeout_secs` (TLS handshake included); a
//! connection with no request in flight for `idle_timeout_secs` is closed; a request body that
//! delivers nothing, or a client that accepts no response bytes, for `body_idle_timeout_secs`
//! is cut off; at most `max_connections` are open, and at the cap the longest-idle connection
//! makes room for a new one. Each request carries the
//! [`ClientInfo`](crate::http::client::ClientInfo) resolved through the
//! trusted proxies. On shutdown, connections finish their requests within the grace period.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{ConfigError, ServerConfig};
use crate::http::client::ClientResolver;

/// How long a connection that was told to close (idle, evicted, shutting down) may take to do so
/// once it has no request in flight: an HTTP/2 client answers GOAWAY's PING within this, a
/// silent one is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// How often "connection limit reached" is logged at most while connections keep arriving at
/// the cap.
const CAP_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// File descriptors kept for everything but client connections (database pool, storage
/// clients, log, Trivy) when the open-file limit lowers `max_connections`.
const RESERVED_FDS: u64 = 64;

/// The connection limits of `[server]`, as durations.
#[derive(Debug, Clone)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub max_connections: usize,
    pub http2_keepalive_interval: Option<Duration>,
    pub http2_keepalive_timeout: Duration,
    pub http2_max_concurrent_streams: u32,
    pub http2_max_header_list_bytes: u32,
    pub shutdown_grace: Duration,
}

impl Limits {
    pub fn from_config(c: &ServerConfig) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(c.header_timeout_secs),
            idle_timeout: Duration::from_secs(c.idle_timeout_secs),
            body_idle_timeout: Duration::from_secs(c.body_idle_timeout_secs),
            max_connections: c.max_connections,
            http2_keepalive_interval: (c.http2_keepalive_interval_secs > 0)
                .then(|| Duration::from_secs(c.http2_keepalive_interval_secs)),
            http2_keepalive_timeout: Duration::from_secs(c.http2_keepalive_timeout_secs),
            http2_max_concurrent_streams: c.http2_max_concurrent_streams,
            http2_max_header_list_bytes: c.http2_max_header_list_bytes,
            shutdown_grace: Duration::from_secs(c.shutdown_grace_secs),
        }
    }
}

/// Binds the listening socket; the error names the address.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
}

/// Reads the PEM certificate chain and private key into a TLS configuration offering HTTP/2 and
/// HTTP/1.1 (ALPN).
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("TLS certificate {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!(
            "TLS certificate {}: no certificate in the file",
            cert.display()
        );
    }
    let private = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("TLS key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| anyhow::anyhow!("TLS certificate or key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Raises the soft open-file limit to the hard limit (as Go programs do) and returns how many
/// connections fit in it: `wanted`, or fewer when every connection may need a second
/// descriptor (a blob file it streams) beside the reserved ones.
pub fn connections_within_fd_limit(wanted: usize) -> usize {
    let Some(limit) = raise_open_file_limit() else {
        return wanted;
    };
    let fit = fd_budget(limit);
    if fit < wanted {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = limit,
            "server.max_connections does not fit in the open-file limit; serving at most {fit} connections (raise `ulimit -n`)"
        );
        fit
    } else {
        wanted
    }
}

/// Connections that fit in `open_file_limit` descriptors.
fn fd_budget(open_file_limit: u64) -> usize {
    let per_connection = 2;
    (open_file_limit.saturating_sub(RESERVED_FDS) / per_connection).max(1) as usize
}

#[cfg(unix)]
fn raise_open_file_limit() -> Option<u64> {
    // SAFETY: getrlimit and setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
        if limit.rlim_cur == libc::RLIM_INFINITY {
            return None;
        }
        // rlim_t is not u64 on every platform.
        #[allow(clippy::unnecessary_cast)]
        Some(limit.rlim_cur as u64)
    }
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> Option<u64> {
    None
}

/// Parses `[server] trusted_proxies` and `proxy_headers` into a resolver.
pub fn client_resolver(c: &ServerConfig) -> Result<ClientResolver, ConfigError> {
    Ok(ClientResolver::new(
        c.trusted_proxy_nets()?,
        c.proxy_header_kind()?,
    ))
}

/// What every connection task shares.
struct Shared {
    router: Router,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    resolver: ClientResolver,
    limits: Limits,
    connections: Connections,
    /// Fires on SIGTERM/SIGINT: connections finish their requests and close.
    shutdown: CancellationToken,
    /// Fires when the grace period is over: connections close at once.
    abort: CancellationToken,
}

/// Serves `router` on `listener` until `shutdown` fires, then lets requests in flight finish
/// within the grace period and closes what is left.
pub async fn run(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    resolver: ClientResolver,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keepalive_interval)
        .keep_alive_timeout(limits.http2_keepalive_timeout)
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.http2_max_header_list_bytes);
    let shared = Arc::new(Shared {
        router,
        builder,
        tls: tls.map(tokio_rustls::TlsAcceptor::from),
        resolver,
        connections: Connections::new(limits.max_connections),
        limits,
        shutdown: shutdown.clone(),
        abort: CancellationToken::new(),
    });
    let tasks = TaskTracker::new();
    let mut cap = CapLog::default();
    let mut accept_errors = 0u64;
    let mut last_accept_error_log: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, mostly: wait a moment for connections to close.
                    accept_errors += 1;
                    if last_accept_error_log.map_or(true, |t| t.elapsed() >= CAP_LOG_INTERVAL) {
                        tracing::warn!(error = %e, failures = accept_errors, "cannot accept connections");
                        last_accept_error_log = Some(Instant::now());
                        accept_errors = 0;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admission = shared.connections.admit();
        if !matches!(admission, Admission::Admitted { evicted: false, .. }) {
            cap.record(&admission, shared.limits.max_connections);
        }
        let Admission::Admitted { conn, .. } = admission else {
            // Every connection has a request in flight: refuse this one rather than exceed the
            // cap (closing it at once; the client may retry).
            drop(stream);
            continue;
        };
        // TCP_NODELAY: a response's headers and body go out in separate writes, and Nagle plus
        // the client's delayed ACK would add ~40 ms to every small response.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tasks.spawn(async move {
            // Removed from the open connections however the task ends (a handler's panic too).
            let _open = OpenConnection(shared.clone(), conn.id);
            serve_connection(&shared, stream, peer, conn).await;
        });
    }
    drop(listener);
    tasks.close();
    if tokio::time::timeout(shared.limits.shutdown_grace, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tasks.len(),
            "grace period over; closing connections with requests still in flight"
        );
        shared.abort.cancel();
        tasks.wait().await;
    }
}

/// Logs reaching the connection cap: at once, then at most every [`CAP_LOG_INTERVAL`] with
/// what happened since.
#[derive(Default)]
struct CapLog {
    evicted: u64,
    refused: u64,
    last: Option<Instant>,
}

impl CapLog {
    fn record(&mut self, admission: &Admission, max: usize) {
        match admission {
            Admission::Admitted { evicted: true, .. } => self.evicted += 1,
            Admission::Admitted { .. } => return,
            Admission::Refused => self.refused += 1,
        }
        if self.last.map_or(true, |t| t.elapsed() >= CAP_LOG_INTERVAL) {
            tracing::warn!(
                max_connections = max,
                idle_closed = self.evicted,
                refused = self.refused,
                "connection limit reached (server.max_connections): closing idle connections to admit new ones, refusing new ones when none is idle"
            );
            self.last = Some(Instant::now());
            self.evicted = 0;
            self.refused = 0;
        }
    }
}

/// The open connections, for the cap and for choosing which idle one to close.
struct Connections {
    max: usize,
    epoch: Instant,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

enum Admission {
    /// `evicted`: an idle connection was told to close to make room.
    Admitted {
        conn: Arc<Conn>,
        evicted: bool,
    },
    Refused,
}

impl Connections {
    fn new(max: usize) -> Connections {
        Connections {
            max,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    /// Admits a new connection. At the cap, the idle connection that matters least is told to
    /// close: one that has not sent a request yet before one that has (so silent sockets go
    /// before clients' pooled connections), and of those the one idle longest. Connections with
    /// a request in flight are never closed for a newcomer.
    fn admit(&self) -> Admission {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let mut evicted = false;
        if open.len() >= self.max {
            let victim = open
                .values()
                .filter(|c| c.in_flight.load(Ordering::Acquire) == 0 && !c.evict.is_cancelled())
                .min_by_key(|c| {
                    (
                        c.requests.load(Ordering::Relaxed) > 0,
                        c.idle_since.load(Ordering::Relaxed),
                    )
                });
            match victim {
                Some(victim) => {
                    victim.evict.cancel();
                    evicted = true;
                }
                None => return Admission::Refused,
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            epoch: self.epoch,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            evict: CancellationToken::new(),
        });
        open.insert(id, conn.clone());
        Admission::Admitted { conn, evicted }
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }
}

/// Keeps a connection counted as open until dropped.
struct OpenConnection(Arc<Shared>, u64);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections.remove(self.1);
    }
}

/// One open connection's activity.
struct Conn {
    id: u64,
    epoch: Instant,
    /// Requests started and not yet answered in full (the response body included).
    in_flight: AtomicUsize,
    /// Requests started on this connection so far.
    requests: AtomicU64,
    /// When `in_flight` last became 0 (or the connection was accepted), in ms since `epoch`.
    idle_since: AtomicU64,
    /// Fires when the connection cap needs this (idle) connection's place.
    evict: CancellationToken,
}

impl Conn {
    fn now_millis(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0
    }

    fn idle_since(&self) -> Instant {
        self.epoch + Duration::from_millis(self.idle_since.load(Ordering::Acquire))
    }

    /// When this connection, idle now, must be closed: a connection that has not sent a request
    /// yet gets the header timeout, one between requests the idle timeout.
    fn idle_deadline(&self, limits: &Limits) -> Instant {
        let allowed = if self.requests.load(Ordering::Relaxed) == 0 {
            limits.header_timeout
        } else {
            limits.idle_timeout
        };
        self.idle_since() + allowed
    }
}

/// A request in flight on a connection; dropped when its response body is done or dropped.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        // Set the time before the count reaches 0, so an idle connection never shows an old time.
        self.0
            .idle_since
            .store(self.0.now_millis(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves one connection until it closes, is idle too long, is evicted, or the server stops.
async fn serve_connection(
    shared: &Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    conn: Arc<Conn>,
) {
    let io = StallTimeout::new(stream, peer, shared.limits.body_idle_timeout);
    match &shared.tls {
        None => serve_http(shared, TokioIo::new(io), peer, false, conn).await,
        Some(acceptor) => {
            // The handshake is bounded by the first request's deadline.
            let deadline = conn.idle_deadline(&shared.limits);
            let tls = tokio::select! {
                handshake = tokio::time::timeout_at(deadline, acceptor.accept(io)) => handshake,
                _ = conn.evict.cancelled() => return,
                _ = shared.shutdown.cancelled() => return,
            };
            match tls {
                Ok(Ok(tls)) => serve_http(shared, TokioIo::new(tls), peer, true, conn).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_http<I>(shared: &Arc<Shared>, io: I, peer: SocketAddr, tls: bool, conn: Arc<Conn>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = {
        let (shared, conn) = (shared.clone(), conn.clone());
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let in_flight = conn.request_started();
            let client = shared.resolver.resolve(peer.ip(), tls, request.headers());
            let (mut parts, body) = request.into_parts();
            parts.extensions.insert(client);
            let body = Body::new(IdleBody::new(body, shared.limits.body_idle_timeout));
            let request = hyper::Request::from_parts(parts, body);
            let response = tower_service::Service::call(&mut shared.router.clone(), request);
            async move {
                let response = response.await?;
                // The request counts as in flight until its response is sent.
                Ok::<_, Infallible>(
                    response.map(|body| crate::http::held::HeldUntilSent::new(body, in_flight)),
                )
            }
        })
    };
    let connection = shared.builder.serve_connection(io, service);
    tokio::pin!(connection);
    // When the connection was told to close, if it was.
    let mut closing: Option<Instant> = None;
    // When the connection is to be closed (or, once told to, dropped) unless a request comes;
    // none while one is in flight. Requests start in this task (hyper calls the service from
    // the connection's poll, for HTTP/2 too), so none starts between this and acting on it.
    let deadline = |closing: Option<Instant>| match (conn.busy(), closing) {
        (true, _) => None,
        (false, None) => Some(conn.idle_deadline(&shared.limits)),
        (false, Some(since)) => Some(since.max(conn.idle_since()) + CLOSE_GRACE),
    };
    loop {
        // Requests come and go without waking this task (that would cost a timer per request),
        // so it sleeps no later than the earliest deadline any of them can leave behind: a
        // request that ends after now leaves the connection idle until at least now + the idle
        // timeout (the first request's header timeout may be longer). A busy connection is
        // looked at again then; its requests are bounded by the body and write stall timeouts.
        let earliest = Instant::now() + shared.limits.idle_timeout;
        let wake = deadline(closing).map_or(earliest, |d| d.min(earliest));
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(wake) => {
                if !deadline(closing).is_some_and(|d| Instant::now() >= d) {
                    continue;
                }
                if closing.is_some() {
                    // Told to close and still open with nothing in flight: drop it.
                    return;
                }
                tracing::debug!(%peer, requests = conn.requests.load(Ordering::Relaxed), "closing an idle connection");
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = conn.evict.cancelled(), if closing.is_none() => {
                // Closed at once, not after a GOAWAY round trip: the newcomer is already in,
                // and a flood of newcomers must not keep evicted connections around.
                if !conn.busy() {
                    tracing::debug!(%peer, "closing an idle connection to admit a new one");
                    return;
                }
                // A request arrived since it was chosen: finish it first.
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = shared.shutdown.cancelled(), if closing.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = shared.abort.cancelled() => return,
        }
    }
}

/// A request body that fails once the client has sent nothing for `idle` while it was being
/// read (time the handler spends elsewhere does not count).
struct IdleBody {
    body: Incoming,
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
    stalled: bool,
}

/// The error a stalled request body ends with.
#[derive(Debug)]
pub struct BodyStalled(Duration);

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no body bytes received for {} s", self.0.as_secs())
    }
}

impl std::error::Error for BodyStalled {}

impl IdleBody {
    fn new(body: Incoming, idle: Duration) -> IdleBody {
        IdleBody {
            body,
            idle,
            timer: None,
            waiting: false,
            stalled: false,
        }
    }
}

impl HttpBody for IdleBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.stalled {
            return Poll::Ready(Some(Err(Box::new(BodyStalled(this.idle)))));
        }
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.waiting = false;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let deadline = Instant::now() + this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if !this.waiting {
                    timer.as_mut().reset(deadline);
                    this.waiting = true;
                }
                if timer.as_mut().poll(cx).is_ready() {
                    this.stalled = true;
                    return Poll::Ready(Some(Err(Box::new(BodyStalled(this.idle)))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A socket whose writes fail once they have made no progress for `stall`: a client that stops
/// reading (a full TCP window) cannot hold a connection and its response forever.
struct StallTimeout<S> {
    inner: S,
    peer: SocketAddr,
    stall: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    waiting: bool,
}

impl<S> StallTimeout<S> {
    fn new(inner: S, peer: SocketAddr, stall: Duration) -> Self {
        StallTimeout {
            inner,
            peer,
            stall,
            timer: None,
            waiting: false,
        }
    }

    /// Passes a write's result through, failing a pending one that has waited too long.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.waiting = false;
            return result;
        }
        let deadline = Instant::now() + self.stall;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !self.waiting {
            timer.as_mut().reset(deadline);
            self.waiting = true;
        }
        if timer.as_mut().poll(cx).is_ready() {
            tracing::debug!(
                peer = %self.peer,
                "closing a connection whose client accepted no bytes for {} s",
                self.stall.as_secs()
            );
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the client accepted no bytes for {} s",
                    self.stall.as_secs()
                ),
            )));
        }
        Poll::Pending
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.watch(cx, result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_bounds_connections() {
        // 256 descriptors (the limit the issue measured): 96 connections, each with room for a
        // blob file, and 64 descriptors left for the rest.
        assert_eq!(fd_budget(256), 96);
        assert_eq!(fd_budget(1_048_576), 524_256);
        assert_eq!(fd_budget(10), 1);
    }

    #[test]
    fn at_the_cap_silent_connections_go_first_and_busy_ones_never() {
        let connections = Connections::new(3);
        let admitted = |a: Admission| match a {
            Admission::Admitted { conn, evicted } => (conn, evicted),
            Admission::Refused => panic!("refused"),
        };
        let idle_since = |c: &Conn, ms: u64| c.idle_since.store(ms, Ordering::Release);
        let (pooled, _) = admitted(connections.admit());
        drop(pooled.request_started());
        idle_since(&pooled, 1_000);
        let (silent_old, _) = admitted(connections.admit());
        idle_since(&silent_old, 2_000);
        let (busy, evicted) = admitted(connections.admit());
        assert!(!evicted);
        let in_flight = busy.request_started();

        // Full: the oldest connection that never sent a request makes room, though the pooled
        // one has been idle longer.
        let (silent_new, evicted) = admitted(connections.admit());
        idle_since(&silent_new, 3_000);
        assert!(evicted);
        assert!(silent_old.evict.is_cancelled());
        assert!(!pooled.evict.is_cancelled());
        connections.remove(silent_old.id);

        // Then the pooled one, idle longest; the busy one never.
        drop(silent_new.request_started());
        idle_since(&silent_new, 4_000);
        let (third, evicted) = admitted(connections.admit());
        assert!(evicted);
        assert!(pooled.evict.is_cancelled());
        assert!(!busy.evict.is_cancelled() && !silent_new.evict.is_cancelled());
        connections.remove(pooled.id);

        // Every connection busy: the newcomer is refused.
        let _a = silent_new.request_started();
        let _b = third.request_started();
        assert!(matches!(connections.admit(), Admission::Refused));
        assert!(!busy.evict.is_cancelled());
        // One becomes idle: it makes room.
        drop(in_flight);
        let (_, evicted) = admitted(connections.admit());
        assert!(evicted);
        assert!(busy.evict.is_cancelled());
    }
}
