//! One connection type over standalone Redis and Redis Cluster, chosen by URL, and the mapping
//! of Redis errors onto [`StoreError`].

use std::{num::NonZeroUsize, sync::Arc, time::Duration};

use redis::{
    ClientTlsConfig, Cmd, ErrorKind, Pipeline, ProtocolVersion, RedisError, RedisFuture, ServerErrorKind,
    TlsCertificates, TlsMode, Value,
    aio::{AsyncPushSender, ConnectionLike, ConnectionManager, ConnectionManagerConfig},
    caching::{CacheConfig, CacheMode},
    cluster::ClusterClientBuilder,
    cluster_async::ClusterConnection,
    cluster_routing::{
        MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr,
    },
};
use sessanger_core::StoreError;
use sessanger_tls::{LoadedTls, TlsError};

/// How long to wait for a TCP connection (and the handshake) to a node.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for any reply. A hung server then fails calls with
/// [`StoreError::Unavailable`] instead of holding requests forever.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A multiplexed connection to standalone Redis or to a Redis Cluster.
///
/// Both reconnect by themselves: the [`ConnectionManager`] reconnects in the background after
/// a failed call, and the [`ClusterConnection`] reconnects to nodes and refreshes its slot map.
/// Calls made while Redis is down fail (the store answers [`StoreError::Unavailable`]); calls
/// after it is back succeed, on the same store. Cloning is cheap and shares the connection.
#[derive(Clone)]
#[non_exhaustive]
pub enum RedisConnection {
    /// One standalone server (or a proxy in front of several).
    Standalone(ConnectionManager),
    /// A Redis Cluster; calls are routed by the hash slot of their first key.
    Cluster(ClusterConnection),
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RedisConnection::Standalone(_) => "RedisConnection::Standalone",
            RedisConnection::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl From<ConnectionManager> for RedisConnection {
    fn from(connection: ConnectionManager) -> Self {
        RedisConnection::Standalone(connection)
    }
}

impl From<ClusterConnection> for RedisConnection {
    fn from(connection: ClusterConnection) -> Self {
        RedisConnection::Cluster(connection)
    }
}

/// Why [`RedisStore::connect`](crate::RedisStore::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not `redis://`, `rediss://`, `redis+cluster://` or `rediss+cluster://` with
    /// at least one node, or the client refuses it (`source` says why).
    #[error(
        "invalid Redis URL `{url}`: expected redis://host:port[/db], rediss://… (TLS), redis+cluster://host:port,… \
         or rediss+cluster://…"
    )]
    InvalidUrl {
        /// The URL as given, with any credentials replaced by `***`.
        url: String,
        /// What the client said about it, if it got that far.
        #[source]
        source: Option<RedisError>,
    },
    /// A file the TLS options name cannot be used.
    #[error("the TLS options of the Redis store")]
    Tls(#[from] TlsError),
    /// The URL is well formed but Redis refused it or could not be reached: refused the TLS
    /// handshake (`source` says why: a certificate from a CA not trusted, for another name),
    /// or spoke no TLS where the URL asks for it, or the other way round.
    #[error("cannot connect to Redis at {url}{hint}")]
    Redis {
        /// The URL as given, with any credentials replaced by `***`.
        url: String,
        /// What the failure suggests, if anything: ` (…)`, or empty.
        hint: &'static str,
        /// What the client said.
        #[source]
        source: RedisError,
    },
}

impl RedisConnection {
    /// Connects to the server or cluster named by `url`:
    /// `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS, as `tls` says), or
    /// `redis+cluster://[user:password@]host:port,host:port,…` (`rediss+cluster://` for TLS)
    /// with any subset of the cluster's nodes. `tls` applies to TLS URLs only.
    pub async fn connect(url: &str, tls: &LoadedTls) -> Result<RedisConnection, ConnectError> {
        RedisConnection::open(url, tls, None).await
    }

    /// Connects like [`RedisConnection::connect`], in RESP3 with server-assisted client-side
    /// caching on every connection it makes (`CLIENT TRACKING ON OPTIN` in each handshake, so
    /// a reconnection tracks from its first command): Redis pushes an invalidation to `pushes`
    /// when a key read with `CLIENT CACHING YES` changes, and redis-rs tells it when a
    /// connection is lost.
    pub(crate) async fn tracking(
        url: &str,
        tls: &LoadedTls,
        pushes: Arc<dyn AsyncPushSender>,
    ) -> Result<RedisConnection, ConnectError> {
        RedisConnection::open(url, tls, Some(pushes)).await
    }

    async fn open(
        url: &str,
        tls: &LoadedTls,
        tracking: Option<Arc<dyn AsyncPushSender>>,
    ) -> Result<RedisConnection, ConnectError> {
        let refused = |source| ConnectError::InvalidUrl { url: redacted(url), source: Some(source) };
        let unreachable = |hint, source| ConnectError::Redis { url: redacted(url), hint, source };
        // Only the tracking handshake is wanted from redis-rs's cache: in `OptIn` mode it
        // caches no command the store does not opt in, and the store opts in none.
        let handshake = CacheConfig::new().set_mode(CacheMode::OptIn).set_size(NonZeroUsize::MIN);
        match nodes(url)? {
            Nodes::Standalone => {
                let mut client = client(url, tls).map_err(refused)?;
                let mut config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    // Reconnection runs in the background and is retried on the next call
                    // anyway: keep each attempt short so a call never waits long for it.
                    .set_number_of_retries(2)
                    .set_max_delay(Duration::from_millis(500));
                if let Some(pushes) = tracking {
                    let info = client.get_connection_info().clone();
                    let resp3 = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
                    client = redis::Client::open(info.set_redis_settings(resp3)).map_err(refused)?;
                    config = config.set_push_sender(pushes).set_cache_config(handshake);
                }
                let manager = ConnectionManager::new_with_config(client, config)
                    .await
                    .map_err(|source| unreachable(hint(url, &source), source))?;
                Ok(RedisConnection::Standalone(manager))
            }
            Nodes::Cluster(nodes) => {
                let mut builder = ClusterClientBuilder::new(nodes)
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    .retries(2);
                if let Some(certificates) = certificates(tls) {
                    builder = builder.certs(certificates);
                }
                if tls.insecure {
                    builder = builder.tls(TlsMode::Insecure);
                }
                if let Some(pushes) = tracking {
                    builder = builder.use_protocol(ProtocolVersion::RESP3).push_sender(pushes).cache_config(handshake);
                }
                let client = builder.build().map_err(refused)?;
                // A cluster's first connections fail with an error of its own that tells a
                // refusal from a reset by its text only: no hint.
                let connection = client.get_async_connection().await.map_err(|source| unreachable("", source))?;
                Ok(RedisConnection::Cluster(connection))
            }
        }
    }

    /// A client for the publish/subscribe connection the store listens on, for `url`: the
    /// server itself, or a cluster's first node (a cluster delivers every message published on
    /// one node to the subscribers of all).
    pub(crate) fn subscriber(url: &str, tls: &LoadedTls) -> Result<redis::Client, ConnectError> {
        let refused = |source| ConnectError::InvalidUrl { url: redacted(url), source: Some(source) };
        match nodes(url)? {
            Nodes::Standalone => client(url, tls).map_err(refused),
            Nodes::Cluster(nodes) => client(&nodes[0], tls).map_err(refused),
        }
    }
}

/// What a failure to connect to `url` suggests about it: a plaintext port met with TLS, or the
/// other way round, fails in ways that name neither.
fn hint(url: &str, error: &RedisError) -> &'static str {
    let tls = url.starts_with("rediss");
    match error.kind() {
        // A plaintext server reads a TLS greeting as the start of a command, and waits for its end.
        ErrorKind::Io if tls && error.is_timeout() => " (no TLS answer: is the port plaintext? then redis://)",
        // A TLS server drops a client that does not greet it with TLS.
        ErrorKind::Io if !tls && reset(error) => " (dropped at once: does the port take TLS only? then rediss://)",
        _ => "",
    }
}

/// Whether the server closed the connection it had accepted (rather than refused it).
fn reset(error: &RedisError) -> bool {
    error.is_connection_dropped() && !error.is_connection_refusal()
}

/// A client of the server at `url` (`redis://` or `rediss://`), with `tls`'s CAs, certificate
/// and verification for a `rediss://` one.
fn client(url: &str, tls: &LoadedTls) -> Result<redis::Client, RedisError> {
    if !url.starts_with("rediss://") {
        return redis::Client::open(url);
    }
    // redis-rs reads "accept any certificate" from the URL's fragment.
    let url = if tls.insecure && !url.contains('#') { format!("{url}#insecure") } else { url.to_owned() };
    match certificates(tls) {
        Some(certificates) => redis::Client::build_with_tls(url.as_str(), certificates),
        None => redis::Client::open(url.as_str()),
    }
}

/// What redis-rs takes of `tls`: the CAs to trust instead of the system's, the certificate to
/// show; `None` for neither.
fn certificates(tls: &LoadedTls) -> Option<TlsCertificates> {
    if tls.ca_pem.is_none() && tls.identity.is_none() {
        return None;
    }
    Some(TlsCertificates {
        client_tls: tls.identity.as_ref().map(|identity| ClientTlsConfig {
            client_cert: identity.cert_pem.clone(),
            client_key: identity.key_pem.clone(),
        }),
        root_cert: tls.ca_pem.clone(),
    })
}

/// What a URL names: one server, or the nodes of a cluster as `redis://` URLs, each with the
/// credentials.
enum Nodes {
    Standalone,
    Cluster(Vec<String>),
}

fn nodes(url: &str) -> Result<Nodes, ConnectError> {
    let invalid = || ConnectError::InvalidUrl { url: redacted(url), source: None };
    let (scheme, rest) = url.split_once("://").ok_or_else(invalid)?;
    match scheme {
        "redis" | "rediss" => Ok(Nodes::Standalone),
        "redis+cluster" | "rediss+cluster" => {
            let node_scheme = scheme.trim_end_matches("+cluster");
            let (credentials, hosts) = match rest.rsplit_once('@') {
                Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
                None => (String::new(), rest),
            };
            let nodes: Vec<String> = hosts
                .trim_end_matches('/')
                .split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(|host| format!("{node_scheme}://{credentials}{host}"))
                .collect();
            if nodes.is_empty() { Err(invalid()) } else { Ok(Nodes::Cluster(nodes)) }
        }
        _ => Err(invalid()),
    }
}

/// `url` without its credentials, fit for an error message or a log.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, hosts))) => format!("{scheme}://***@{hosts}"),
        _ => url.to_owned(),
    }
}

impl RedisConnection {
    /// Sends `read` of `key` opted into tracking (`CLIENT CACHING YES` right before it, on the
    /// connection of `key`'s node) and returns its reply. For a connection made by
    /// [`RedisConnection::tracking`].
    pub(crate) async fn tracked(&self, key: &str, read: Cmd) -> Result<Value, RedisError> {
        let mut pipe = redis::pipe();
        pipe.cmd("CLIENT").arg("CACHING").arg("YES").add_command(read);
        let replies = match self.clone() {
            RedisConnection::Standalone(mut c) => c.req_packed_commands(&pipe, 1, 1).await,
            // `CLIENT CACHING` names no key, so a cluster would pick a random node for it: the
            // pipeline is routed to the key's node explicitly.
            RedisConnection::Cluster(mut c) => {
                let route = Route::with_slot(Slot::for_key(key), SlotAddr::Master);
                c.route_pipeline(pipe, 1, 1, SingleNodeRoutingInfo::SpecificNode(route)).await
            }
        }?;
        // The read's reply is the last (a cluster hands back the replies before `offset` too).
        replies
            .into_iter()
            .next_back()
            .ok_or_else(|| RedisError::from((ErrorKind::Client, "no reply to a tracked read")))
    }

    /// `PING` on every connection: to the server, or to each primary of a cluster. A reply
    /// comes after everything the server sent before it on the same connection.
    pub(crate) async fn ping_every_node(&self) -> Result<(), RedisError> {
        let ping = redis::cmd("PING");
        match self.clone() {
            RedisConnection::Standalone(mut c) => c.req_packed_command(&ping).await.map(drop),
            RedisConnection::Cluster(mut c) => {
                let every =
                    RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, Some(ResponsePolicy::AllSucceeded)));
                c.route_command(ping, every).await.map(drop)
            }
        }
    }
}

// The store is written once against `ConnectionLike`; this impl, `tracked` and
// `ping_every_node` are the only places that tell standalone from cluster.
impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Standalone(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Standalone(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
        }
    }
}

/// A Redis error as a store error. Failures to reach Redis (I/O, timeouts, a cluster without
/// a node for the slot, a server still loading or a cluster that is down or failing over) are
/// [`StoreError::Unavailable`]: retrying later may succeed, and the HTTP server answers 503.
/// Anything else (a script error, a wrong type) is [`StoreError::Other`]. The source is kept.
pub(crate) fn store_error(error: RedisError) -> StoreError {
    let unreachable = error.is_io_error()
        || error.is_timeout()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_unrecoverable_error()
        || matches!(
            error.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ReadOnly
                )
        );
    if unreachable { StoreError::Unavailable(error.into()) } else { StoreError::Other(error.into()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_reach_an_error_message() {
        assert_eq!(redacted("redis://user:secret@host:1/0"), "redis://***@host:1/0");
        assert_eq!(redacted("redis+cluster://:pw@a:1,b:2"), "redis+cluster://***@a:1,b:2");
        assert_eq!(redacted("redis://host:1"), "redis://host:1");
    }
}
