//! The accept loop and the per-connection limits: how long a client may take to send a request
//! head, to send a request body, and to stay connected with nothing in flight, and how many
//! connections are served at once.
//!
//! * Header-read timeout: hyper's own (`http1::Builder::header_read_timeout`, with a
//!   [`TokioTimer`]). hyper starts it whenever it waits for a request head: on a new connection
//!   before the first byte, and on a kept-alive connection as soon as the previous response is
//!   done. A connection that does not finish a head in time is closed.
//! * First-request timeout: ours, shorter. hyper has one header-read timer for every head, so
//!   the first head gets a deadline of its own: a connection on which no request has started
//!   within `first_request_timeout` of the accept is dropped. A client that opens connections and
//!   sends nothing holds each for that long, not for the (longer) wait allowed between the
//!   requests of a kept-alive connection.
//! * Idle timeout: ours. hyper has no idle timer of its own (its header-read timer also runs
//!   between requests, so an idle HTTP/1 connection is closed by whichever comes first). A
//!   per-connection watchdog counts the requests in flight (from the head until the response body
//!   is dropped) and starts a graceful shutdown of the connection once none has been in flight
//!   for `idle_timeout`; if the connection does not end within [`FORCE_CLOSE_GRACE`] after that
//!   (a client that stops reading), it is dropped.
//! * Body timeout: ours. Each request body must arrive whole within `body_timeout` of the
//!   handler first asking for it; otherwise the body fails, and whatever the handler answered
//!   is replaced by `408 Request Timeout` with `Connection: close`.
//! * Connection cap: a semaphore of `max_connections` permits, taken *before* `accept`, so the
//!   clients beyond the cap wait in the kernel's backlog instead of holding descriptors here.
//! * Per-client share: at most `max_connections_per_client` of them from one client address
//!   (IPv6 by /64, [`client_bucket`]); a connection beyond its address's share is closed as soon
//!   as it is accepted, so one client cannot hold the whole cap. Peers in
//!   `trusted_proxy_ranges` are not held to it: an OAuth proxy carries every user's traffic
//!   from one address, and needs the whole cap.

use std::{
    collections::HashMap,
    convert::Infallible,
    future::Future,
    io,
    net::{IpAddr, SocketAddr},
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::ConnectInfo,
    http::{HeaderValue, Request, Response, StatusCode, header},
    response::IntoResponse,
};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    time::{Instant, Sleep},
};
use tower::Service;

use super::{ApiError, AppState, client::client_bucket, router, wants_html};
use crate::config::HttpLimits;

/// How long a connection closed for idleness may take to end before it is dropped.
const FORCE_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// How often, at most, refused over-share connections are reported in the log.
const OVER_SHARE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// The longest pause after an accept error (descriptors exhausted, …) before trying again.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Serves on `listener` until SIGINT or SIGTERM, then lets in-flight requests finish.
pub async fn serve(listener: TcpListener, state: AppState) -> io::Result<()> {
    let limits = state.config().http;
    let config = state.inner.config.clone();
    let router = router(state);
    let shares = Arc::new(ClientShares::new(limits.max_connections_per_client));
    let mut over_share = OverShareReport::default();
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let permits = Arc::new(Semaphore::new(limits.max_connections.min(Semaphore::MAX_PERMITS)));
    // `true` once the server shuts down; every connection holds a receiver, so `closed()` on
    // the sender is "every connection has ended".
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let mut signal = pin!(shutdown_signal());
    let mut backoff = Duration::ZERO;
    loop {
        // Wait for a free slot before accepting: beyond the cap, clients queue in the kernel.
        let permit = tokio::select! {
            () = &mut signal => break,
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    drop(permit);
                    if is_connection_error(&error) {
                        continue;
                    }
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    tracing::error!("accept error (retrying in {backoff:?}): {error}");
                    tokio::select! {
                        () = &mut signal => break,
                        () = tokio::time::sleep(backoff) => continue,
                    }
                }
            },
        };
        backoff = Duration::ZERO;
        let share = if config.is_trusted_proxy(&peer.ip().to_canonical()) {
            None
        } else {
            match shares.take(peer.ip()) {
                Some(share) => Some(share),
                None => {
                    // Closed at once: the client learns at its first read, and the slot is free.
                    drop(stream);
                    drop(permit);
                    over_share.refused(peer, limits.max_connections_per_client);
                    continue;
                }
            }
        };
        let connection = Connection {
            http1: http1.clone(),
            router: router.clone(),
            limits,
            peer,
            shutdown: shutdown_rx.clone(),
        };
        tokio::spawn(async move {
            connection.serve(stream).await;
            drop(share);
            drop(permit);
        });
    }
    drop(listener);
    drop(shutdown_rx);
    shutdown_tx.send_replace(true);
    shutdown_tx.closed().await;
    Ok(())
}

/// The connections open per client address (IPv6 by /64); an address is in the table only while
/// it has one, so the table never holds more than `max_connections` entries.
struct ClientShares {
    per_client: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientShares {
    fn new(per_client: usize) -> Self {
        Self { per_client, open: Mutex::new(HashMap::new()) }
    }

    /// One of the address's connections, or `None` when it has its whole share open.
    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<ClientShare> {
        let bucket = client_bucket(ip);
        let mut open = self.open.lock().unwrap_or_else(|poison| poison.into_inner());
        let count = open.entry(bucket).or_insert(0);
        if *count >= self.per_client {
            return None;
        }
        *count += 1;
        Some(ClientShare { shares: self.clone(), bucket })
    }
}

/// One open connection of a client address; dropping it frees the slot.
struct ClientShare {
    shares: Arc<ClientShares>,
    bucket: IpAddr,
}

impl Drop for ClientShare {
    fn drop(&mut self) {
        let mut open = self.shares.open.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(&self.bucket) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.bucket);
            }
        }
    }
}

/// Reports refused over-share connections at most once per [`OVER_SHARE_REPORT_INTERVAL`].
#[derive(Default)]
struct OverShareReport {
    last: Option<Instant>,
    since_last: u64,
}

impl OverShareReport {
    fn refused(&mut self, peer: SocketAddr, per_client: usize) {
        self.since_last += 1;
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < OVER_SHARE_REPORT_INTERVAL) {
            return;
        }
        tracing::warn!(
            client = %client_bucket(peer.ip()),
            refused = self.since_last,
            "closed connections from clients that already had max_connections_per_client \
             ({per_client}) open"
        );
        self.last = Some(now);
        self.since_last = 0;
    }
}

/// Binds `host:port`.
pub async fn bind(host: IpAddr, port: u16) -> io::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(host, port)).await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

/// Errors of one would-be connection, not of the listener: try the next one at once.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection and what it needs to serve it.
struct Connection {
    http1: hyper::server::conn::http1::Builder,
    router: Router,
    limits: HttpLimits,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self, stream: TcpStream) {
        let Connection { http1, router, limits, peer, mut shutdown } = self;
        let activity = Activity::new();
        let service = ConnectionService {
            router,
            peer,
            body_timeout: limits.body_timeout,
            activity: activity.clone(),
        };
        let mut conn = pin!(http1.serve_connection(TokioIo::new(stream), service));
        let mut idle = pin!(activity.idle(limits.idle_timeout));
        let mut first_request = pin!(activity.first_request(limits.first_request_timeout));
        // Borrowed, not moved: the receiver must live as long as the connection, because the
        // server waits for every receiver to be dropped before it exits.
        let mut shutdown = pin!(shutdown_requested(&mut shutdown));
        let mut force_close = pin!(tokio::time::sleep(Duration::ZERO));
        let mut closing = None;
        let mut forcing = false;
        let result = loop {
            tokio::select! {
                result = conn.as_mut() => break result,
                () = &mut idle, if !forcing => {
                    if closing.is_none() {
                        conn.as_mut().graceful_shutdown();
                        closing = Some("idle");
                    }
                    forcing = true;
                    force_close.as_mut().reset(Instant::now() + FORCE_CLOSE_GRACE);
                }
                () = &mut shutdown, if closing.is_none() => {
                    conn.as_mut().graceful_shutdown();
                    closing = Some("server shutdown");
                }
                () = &mut first_request => {
                    tracing::debug!(%peer, "connection dropped: no request within {:?} of connecting", limits.first_request_timeout);
                    return;
                }
                () = &mut force_close, if forcing => {
                    tracing::debug!(%peer, "connection dropped: still open {FORCE_CLOSE_GRACE:?} after closing it for idleness");
                    return;
                }
            }
        };
        match result {
            Ok(()) => {
                tracing::debug!(%peer, reason = closing.unwrap_or("done"), "connection closed")
            }
            Err(error) if error.is_timeout() => {
                tracing::debug!(%peer, "connection closed: request head not received in time")
            }
            Err(error) => tracing::debug!(%peer, "connection closed: {error}"),
        }
    }
}

async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    // An error means the server is gone, which is a shutdown too.
    let _ = shutdown.wait_for(|&shutting_down| shutting_down).await;
}

/// The requests in flight on one connection, and since when there have been none.
struct Activity {
    state: watch::Sender<Busy>,
}

#[derive(Debug, Clone, Copy)]
struct Busy {
    in_flight: usize,
    idle_since: Instant,
    /// Requests started on the connection so far.
    started: u64,
}

impl Activity {
    fn new() -> Arc<Self> {
        let (state, _) =
            watch::channel(Busy { in_flight: 0, idle_since: Instant::now(), started: 0 });
        Arc::new(Self { state })
    }

    /// Marks a request in flight until the returned guard is dropped.
    fn start(self: &Arc<Self>) -> InFlight {
        self.state.send_modify(|busy| {
            busy.in_flight += 1;
            busy.started += 1;
        });
        InFlight(self.clone())
    }

    /// Resolves when no request has started within `timeout`; never once one has.
    fn first_request(&self, timeout: Duration) -> impl Future<Output = ()> + Send + 'static {
        let mut state = self.state.subscribe();
        async move {
            let started = tokio::time::timeout(timeout, state.wait_for(|busy| busy.started > 0))
                .await
                .is_ok();
            if started {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Resolves once no request has been in flight for `timeout`.
    fn idle(&self, timeout: Duration) -> impl Future<Output = ()> + Send + 'static {
        let mut state = self.state.subscribe();
        async move {
            loop {
                let busy = *state.borrow_and_update();
                if busy.in_flight == 0 {
                    tokio::select! {
                        () = tokio::time::sleep_until(busy.idle_since + timeout) => return,
                        _ = state.changed() => {}
                    }
                } else {
                    // The sender lives as long as the connection's service: no error here.
                    let _ = state.changed().await;
                }
            }
        }
    }
}

/// A request in flight, from its head until its response body is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.state.send_modify(|busy| {
            busy.in_flight -= 1;
            if busy.in_flight == 0 {
                busy.idle_since = Instant::now();
            }
        });
    }
}

/// The router for one connection: adds the peer's address, the body deadline and the
/// in-flight count.
#[derive(Clone)]
struct ConnectionService {
    router: Router,
    peer: SocketAddr,
    body_timeout: Duration,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let in_flight = self.activity.start();
        request.extensions_mut().insert(ConnectInfo(self.peer));
        let html = wants_html(request.headers());
        let timed_out = Arc::new(AtomicBool::new(false));
        let body_timeout = self.body_timeout;
        let request = request.map(|body| {
            axum::body::Body::new(DeadlineBody {
                inner: body,
                timeout: body_timeout,
                sleep: None,
                timed_out: timed_out.clone(),
            })
        });
        let peer = self.peer;
        // `Router` is always ready.
        let response = self.router.clone().call(request);
        Box::pin(async move {
            let mut response = response.await?;
            if timed_out.load(Ordering::Relaxed) {
                tracing::debug!(%peer, "request body not received in time");
                response = body_timeout_response(&response, html, body_timeout);
            }
            Ok(response.map(|body| TrackedBody { inner: body, _in_flight: in_flight }))
        })
    }
}

/// `408 Request Timeout`, keeping the request id, closing the connection (the rest of the body
/// would otherwise be read as the next request).
fn body_timeout_response(
    original: &Response<axum::body::Body>,
    html: bool,
    timeout: Duration,
) -> Response<axum::body::Body> {
    let request_id = original.headers().get("x-request-id");
    let mut error = ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        format!("The request body did not arrive within {timeout:?}; send the request again."),
    )
    .as_html(html);
    if let Some(id) = request_id.and_then(|id| id.to_str().ok()) {
        error = error.with_request_id(id);
    }
    let mut response = error.into_response();
    // Keep the headers every response carries (request id, security headers), not the ones
    // that described the replaced answer.
    for name in original.headers().keys() {
        let describes_body = [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CONTENT_ENCODING,
            header::TRANSFER_ENCODING,
            header::SET_COOKIE,
            header::LOCATION,
            header::WWW_AUTHENTICATE,
            header::RETRY_AFTER,
        ]
        .contains(name);
        if !describes_body && !response.headers().contains_key(name) {
            for value in original.headers().get_all(name) {
                response.headers_mut().append(name.clone(), value.clone());
            }
        }
    }
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// The request body failed to arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
struct BodyTimedOut(Duration);

/// A request body that fails once it has not been received whole within `timeout` of the first
/// time it was asked for.
struct DeadlineBody {
    inner: Incoming,
    timeout: Duration,
    sleep: Option<Pin<Box<Sleep>>>,
    timed_out: Arc<AtomicBool>,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let timeout = this.timeout;
        let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(BoxError::from)));
        }
        if sleep.as_mut().poll(cx).is_ready() {
            this.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(BodyTimedOut(timeout).into())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A response body that keeps its request counted as in flight until it is dropped.
struct TrackedBody {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
