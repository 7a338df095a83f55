//! The accept loop: each connection served by hyper's HTTP/1 builder, with the limits a public
//! listener needs that `axum::serve` does not set. A client that sends part of a request head
//! and stops is cut off after [`ConnectionOptions::header_read_timeout`]; a keep-alive
//! connection with nothing to do is closed after [`ConnectionOptions::idle_timeout`]; at most
//! [`ConnectionOptions::max_connections`] are open at once, and further ones wait in the
//! listen backlog until one closes (so a flood of slow clients costs each waiting client at most
//! the header timeout, and `/healthz` answers after it).

use std::{
    convert::Infallible,
    io,
    net::SocketAddr,
    num::NonZeroU32,
    pin::{Pin, pin},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{extract::ConnectInfo, response::Response};
use hyper::server::conn::http1;
use hyper_util::{rt::TokioIo, service::TowerToHyperService};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Semaphore, watch},
    time::Instant,
};

use crate::App;

/// Limits on the connections of one listener.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// use sessanger_server::ConnectionOptions;
///
/// let options = ConnectionOptions { header_read_timeout: Duration::from_secs(5), ..ConnectionOptions::default() };
/// assert_eq!(options.max_connections.get(), 4096);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// Longest a client may take to send a request's head (line and headers), counted from
    /// its first byte; the connection is closed after it. Default 10 s.
    pub header_read_timeout: Duration,
    /// Longest a connection may stay open with no request in flight and no bytes moving;
    /// it is closed after it. Default 60 s (longer than the usual client pool's idle time,
    /// so clients, not the server, usually close first).
    pub idle_timeout: Duration,
    /// Most connections open at once; more wait in the listen backlog until one closes.
    /// Default 4096.
    pub max_connections: NonZeroU32,
}

impl Default for ConnectionOptions {
    fn default() -> Self {
        ConnectionOptions {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: NonZeroU32::new(4096).expect("not zero"),
        }
    }
}

/// Accepts and serves connections on `listener` until `shutdown` resolves; then stops
/// accepting, lets every connection finish its request in flight, and returns once all are
/// closed. Requests whose path starts with `told_the_client` carry the client's address
/// (axum's `ConnectInfo<SocketAddr>`).
pub(crate) async fn accept_loop(
    listener: TcpListener,
    app: App,
    options: &ConnectionOptions,
    told_the_client: Option<&'static str>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.get() as usize));
    let (stop, stopping) = watch::channel(());
    let mut builder = http1::Builder::new();
    // hyper's own header timer also runs while a keep-alive connection waits for its next
    // request, so it cannot tell a slow head from an idle connection: both are timed here.
    builder.header_read_timeout(None).keep_alive(true);
    let mut shutdown = pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors or a connection reset before it was taken:
                    // both pass; waiting a little keeps a full process table from spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once instead of waiting for more to fill a segment.
        let _ = stream.set_nodelay(true);
        let activity = Activity::default();
        let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
        let client = told_the_client.map(|prefix| (prefix, ConnectInfo(peer)));
        let service = Counted { app: app.clone(), activity: activity.clone(), client };
        let connection = builder.serve_connection(io, TowerToHyperService::new(service));
        let (limits, stopping) = (*options, stopping.clone());
        tokio::spawn(async move {
            serve_connection(connection, activity, &limits, stopping).await;
            drop(slot);
        });
    }
    drop(listener);
    drop(stop);
    // Every connection holds a slot until it closes: all slots back means all are done.
    let _all = slots.acquire_many(options.max_connections.get()).await;
    Ok(())
}

type Connection = http1::Connection<TokioIo<Watched>, TowerToHyperService<Counted>>;

/// Drives one connection, and ends it when a client takes longer than `header_read_timeout`
/// to send a request head (dropped at once: it has sent nothing worth answering), when it has
/// been idle for `idle_timeout`, or when the server stops. Closing is hyper's graceful
/// shutdown (a request in flight is answered first); a connection still open `idle_timeout`
/// after that (a client that stopped reading its answer) is dropped.
async fn serve_connection(
    connection: Connection,
    activity: Activity,
    limits: &ConnectionOptions,
    mut stopping: watch::Receiver<()>,
) {
    let mut connection = pin!(connection);
    let mut closing_since: Option<Instant> = None;
    loop {
        let deadline = match closing_since {
            None => activity.deadline(limits),
            // Closing: a head still arriving keeps its own limit; nothing lasts past the grace.
            Some(since) => {
                let grace = since + limits.idle_timeout;
                Some(activity.head_deadline(limits).map_or(grace, |head| head.min(grace)))
            }
        };
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(error) = served {
                    // A client that went away or sent garbage: its problem, worth a debug line.
                    tracing::debug!(%error, "connection ended with an error");
                }
                return;
            }
            () = sleep_until(deadline) => match (closing_since, activity.overdue(limits)) {
                (Some(since), _) if since + limits.idle_timeout <= Instant::now() => return,
                (_, Some(Overdue::Head)) => return,
                (None, Some(Overdue::Idle)) => {
                    connection.as_mut().graceful_shutdown();
                    closing_since = Some(Instant::now());
                }
                _ => {}
            },
            _ = stopping.changed(), if closing_since.is_none() => {
                connection.as_mut().graceful_shutdown();
                closing_since = Some(Instant::now());
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        // A request is in flight: the router's request timeout bounds it.
        None => std::future::pending().await,
    }
}

/// Which limit a connection passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overdue {
    Head,
    Idle,
}

/// What a connection's watchdog reads: when bytes last moved, whether a request head has begun
/// to arrive, and whether a request is being answered. Times are milliseconds since the
/// connection was accepted, plus one, so that each fits an atomic and 0 means "never".
#[derive(Clone, Debug)]
struct Activity(Arc<ActivityState>);

#[derive(Debug)]
struct ActivityState {
    accepted: Instant,
    last: AtomicU64,
    head_since: AtomicU64,
    in_flight: AtomicU64,
}

impl Default for Activity {
    fn default() -> Self {
        Activity(Arc::new(ActivityState {
            accepted: Instant::now(),
            last: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
        }))
    }
}

impl Activity {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
    }

    fn at(&self, ms: u64) -> Instant {
        self.0.accepted + Duration::from_millis(ms.saturating_sub(1))
    }

    fn wrote(&self) {
        self.0.last.store(self.now_ms(), Ordering::Relaxed);
    }

    /// Bytes arrived: between requests they are the start of the next request's head.
    fn read(&self) {
        let now = self.now_ms();
        self.0.last.store(now, Ordering::Relaxed);
        if self.0.in_flight.load(Ordering::Relaxed) == 0 {
            let _ = self.0.head_since.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// hyper parsed a head and calls the router.
    fn request_started(&self) {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        self.0.head_since.store(0, Ordering::Relaxed);
    }

    fn request_answered(&self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.wrote();
    }

    /// When the request head now arriving passes the header timeout, if one is arriving.
    fn head_deadline(&self, limits: &ConnectionOptions) -> Option<Instant> {
        match self.0.head_since.load(Ordering::Relaxed) {
            0 => None,
            since => Some(self.at(since) + limits.header_read_timeout),
        }
    }

    /// When the connection passes a limit unless something happens first; `None` while a
    /// request is being answered.
    fn deadline(&self, limits: &ConnectionOptions) -> Option<Instant> {
        if let Some(head) = self.head_deadline(limits) {
            return Some(head);
        }
        if self.0.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        Some(match self.0.last.load(Ordering::Relaxed) {
            // Accepted but silent: waiting for its first head, so the header timeout.
            0 => self.0.accepted + limits.header_read_timeout,
            last => self.at(last) + limits.idle_timeout,
        })
    }

    fn overdue(&self, limits: &ConnectionOptions) -> Option<Overdue> {
        let now = Instant::now();
        let head_since = self.0.head_since.load(Ordering::Relaxed);
        let silent = self.0.last.load(Ordering::Relaxed) == 0;
        if (head_since > 0 && self.at(head_since) + limits.header_read_timeout <= now)
            || (silent && self.0.accepted + limits.header_read_timeout <= now)
        {
            return Some(Overdue::Head);
        }
        let idle = head_since == 0 && self.0.in_flight.load(Ordering::Relaxed) == 0;
        (idle && self.at(self.0.last.load(Ordering::Relaxed)) + limits.idle_timeout <= now).then_some(Overdue::Idle)
    }
}

/// The app, counting the requests it is answering for the connection's watchdog, and
/// telling the requests under a path the client's address (axum's `ConnectInfo`: the admin
/// console slows down an address that keeps failing to sign in).
#[derive(Clone, Debug)]
struct Counted {
    app: App,
    activity: Activity,
    client: Option<(&'static str, ConnectInfo<SocketAddr>)>,
}

impl<B> tower::Service<hyper::Request<B>> for Counted
where
    App: tower::Service<hyper::Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CountedAnswer<<App as tower::Service<hyper::Request<B>>>::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<hyper::Request<B>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, mut request: hyper::Request<B>) -> Self::Future {
        self.activity.request_started();
        if let Some((prefix, client)) = self.client
            && request.uri().path().starts_with(prefix)
        {
            request.extensions_mut().insert(client);
        }
        CountedAnswer { answer: self.app.call(request), _answered: Answered(self.activity.clone()) }
    }
}

pin_project_lite::pin_project! {
    /// An answer on its way, counted as answered once it is dropped (polled in place: a box
    /// per request was one allocation more on the hot path).
    struct CountedAnswer<F> {
        #[pin]
        answer: F,
        _answered: Answered,
    }
}

impl<F: Future> Future for CountedAnswer<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().answer.poll(cx)
    }
}

/// Counts a request as answered when dropped: also when hyper drops the request unanswered
/// (the client left), so the count never stays up.
struct Answered(Activity);

impl Drop for Answered {
    fn drop(&mut self) {
        self.0.request_answered();
    }
}

/// A socket that records when bytes last moved either way.
#[derive(Debug)]
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
