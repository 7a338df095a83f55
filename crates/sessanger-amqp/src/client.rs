//! [`AmqpClient`]: the Rust API for asking managers over AMQP.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, Connection,
    options::{BasicConsumeOptions, BasicPublishOptions},
    types::FieldTable,
    uri::AMQPUri,
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};
use sessanger_core::{SessionId, UserId, wire::SessionBody};
use sessanger_tls::LoadedTls;
use tokio::sync::oneshot;

use crate::{
    BrokerOptions, EXCHANGE, REPLY_TO, Routing, RoutingKey,
    broker::Grant,
    message::{Get, List, Login, Logout, Password, Refresh, Reply, ReplyCode, ReplyError, Request, RevokeAll},
};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The manager answered with an error; branch on its `code`.
    #[error("{}: {}", code_name(.0.code), .0.message)]
    Remote(ReplyError),
    /// No manager answered within the timeout (none running for this key, or the broker lost
    /// the request).
    #[error("no answer from the manager with routing key `{0}` within {1:?}")]
    Timeout(RoutingKey, Duration),
    /// The routing table names no manager for this user.
    #[error("no manager serves user `{0}`")]
    NoManager(UserId),
    /// The broker could not be reached, or refused the connection (its certificate, the
    /// account).
    #[error("cannot connect to the broker at {broker}")]
    Connect {
        /// `scheme://host:port` of the broker.
        broker: String,
        /// What the AMQP client said.
        #[source]
        source: lapin::Error,
    },
    /// The broker connection failed.
    #[error("broker connection failed")]
    Connection(#[from] lapin::Error),
    /// The connection closed before the reply came.
    #[error("the broker connection closed before the reply came")]
    Disconnected,
    /// The broker options cannot be used (a malformed URL or routing key).
    #[error("broker config: {0}")]
    Config(String),
    /// The reply was not what this request answers with.
    #[error("malformed reply")]
    Decode(#[from] serde_json::Error),
}

impl ClientError {
    /// The error code: the manager's, or the client-side one that fits (`no_manager`).
    pub fn code(&self) -> Option<ReplyCode> {
        match self {
            ClientError::Remote(failure) => Some(failure.code),
            ClientError::NoManager(_) => Some(ReplyCode::NoManager),
            _ => None,
        }
    }
}

/// `auth_failed`, as on the wire.
pub fn code_name(code: ReplyCode) -> String {
    serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

/// What a successful login answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoginReply {
    /// The new session.
    pub session: SessionBody,
    /// The user's broker account and vhost.
    pub broker: Grant,
    /// The manager that served the login.
    pub routing_key: String,
}

/// The callers waiting for a reply, by `correlation_id`; `None` once the reply consumer is
/// gone, when no reply can come any more.
type Pending = Arc<Mutex<Option<HashMap<String, oneshot::Sender<Vec<u8>>>>>>;

/// A connection to the managers' vhost that sends requests and waits for their replies
/// (RabbitMQ direct reply-to, matched by `correlation_id`). Requests for a user go to the
/// manager the routing table names; requests by session id try each manager in turn until
/// one knows the session. Each request carries the connection's account as its `user_id`
/// property, which the broker checks and the managers authorize by.
///
/// # Examples
/// ```no_run
/// use sessanger_amqp::{Account, AmqpClient, BrokerOptions};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let mut options = BrokerOptions::new("amqp://127.0.0.1:5672", "sessanger", "");
/// options.manager.password = None; // a client needs the managers' vhost, not their password
/// options.client = Account::new("sessanger-client", "c0nnect");
/// options.routing_keys.insert("sessanger1".into(), vec!["*".into()]);
/// let client = AmqpClient::from_options(&options).await?;
/// let login = client.login(&"sysadm".parse()?, Some("sysadm"), Some("laptop".into())).await?;
/// println!("vhost {} session {}", login.broker.vhost, login.session.session_id);
/// client.logout(&login.session.session_id).await?;
/// # Ok(()) }
/// ```
pub struct AmqpClient {
    connection: Connection,
    account: String,
    channel: Channel,
    pending: Pending,
    routing: Routing,
    timeout: Duration,
    replies: tokio::task::JoinHandle<()>,
}

impl fmt::Debug for AmqpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpClient")
            .field("routing", &self.routing)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for AmqpClient {
    fn drop(&mut self) {
        self.replies.abort();
    }
}

impl AmqpClient {
    /// Connects as the clients' account of `options` to the managers' vhost, with its
    /// routing table.
    pub async fn from_options(options: &BrokerOptions) -> Result<AmqpClient, ClientError> {
        let uri = options.client_uri().map_err(ClientError::Config)?;
        let tls = options.loaded_tls().map_err(ClientError::Config)?;
        let routing = Routing::from_options(options).map_err(|e| ClientError::Config(e.to_string()))?;
        AmqpClient::connect(uri, &tls, routing).await
    }

    /// Connects to `uri` (the managers' vhost; over TLS as `tls` says for `amqps://`) and
    /// resolves users with `routing`.
    pub async fn connect(uri: AMQPUri, tls: &LoadedTls, routing: Routing) -> Result<AmqpClient, ClientError> {
        let account = uri.authority.userinfo.username.clone();
        let connection = crate::connect::open(&uri, tls)
            .await
            .map_err(|source| ClientError::Connect { broker: crate::connect::named(&uri), source })?;
        let channel = connection.create_channel().await?;
        // Direct reply-to demands a no-ack consumer on the very channel that publishes.
        let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let mut consumer = channel.basic_consume(REPLY_TO.into(), "".into(), no_ack, FieldTable::default()).await?;
        let pending: Pending = Arc::new(Mutex::new(Some(HashMap::new())));
        let waiting = Arc::clone(&pending);
        let replies = tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                let Some(id) = delivery.properties.correlation_id() else { continue };
                let waiter =
                    waiting.lock().expect("pending replies poisoned").as_mut().and_then(|p| p.remove(id.as_str()));
                if let Some(waiter) = waiter {
                    let _ = waiter.send(delivery.data);
                }
            }
            // The channel died (the broker went away): fail the callers waiting now, and every
            // later call at once, rather than each at its timeout.
            waiting.lock().expect("pending replies poisoned").take();
        });
        Ok(AmqpClient { connection, account, channel, pending, routing, timeout: Duration::from_secs(10), replies })
    }

    /// Waits at most `timeout` for each reply (default 10 s). Requests carry it as their
    /// expiration, so a manager that comes back later never acts on a request given up on.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> AmqpClient {
        self.timeout = timeout;
        self
    }

    /// The routing table the client resolves users with.
    pub fn routing(&self) -> &Routing {
        &self.routing
    }

    /// Sends `request` to the manager with routing key `key` and waits for its reply: at most
    /// the timeout ([`ClientError::Timeout`]); if the broker connection drops meanwhile, the
    /// call fails at once with [`ClientError::Disconnected`] (or [`ClientError::Connection`]).
    /// A client whose connection dropped stays disconnected: connect a new one.
    pub async fn call(&self, key: &RoutingKey, request: &Request) -> Result<Map<String, Value>, ClientError> {
        let mut id = [0u8; 16];
        getrandom::fill(&mut id).expect("the operating system's random source must be readable");
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let (tx, rx) = oneshot::channel();
        match self.pending.lock().expect("pending replies poisoned").as_mut() {
            Some(pending) => pending.insert(id.clone(), tx),
            None => return Err(ClientError::Disconnected),
        };
        // The message id lets a manager recognise this request if RabbitMQ delivers it twice.
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_reply_to(REPLY_TO.into())
            .with_message_id(id.as_str().into())
            .with_user_id(self.account.as_str().into())
            .with_correlation_id(id.as_str().into())
            .with_expiration(self.timeout.as_millis().to_string().into());
        let sent = async {
            self.channel
                .basic_publish(
                    EXCHANGE.into(),
                    key.as_ref().into(),
                    BasicPublishOptions::default(),
                    &request.encode(),
                    properties,
                )
                .await?;
            rx.await.map_err(|_| ClientError::Disconnected)
        };
        let sent = tokio::time::timeout(self.timeout, sent)
            .await
            .unwrap_or_else(|_| Err(ClientError::Timeout(key.clone(), self.timeout)));
        let reply = match sent {
            Ok(reply) => reply,
            Err(error) => {
                if let Some(pending) = self.pending.lock().expect("pending replies poisoned").as_mut() {
                    pending.remove(&id);
                }
                return Err(error);
            }
        };
        match Reply::decode(&reply)? {
            Reply::Ok(fields) => Ok(fields),
            Reply::Err(failure) => Err(ClientError::Remote(failure)),
        }
    }

    fn route(&self, user: &UserId) -> Result<RoutingKey, ClientError> {
        self.routing.route(user).cloned().ok_or_else(|| ClientError::NoManager(user.clone()))
    }

    /// Logs `user` in through the manager that serves it, with its password; without one
    /// only an admin account may (`forbidden` otherwise).
    pub async fn login(
        &self,
        user: &UserId,
        password: Option<&str>,
        device_id: Option<String>,
    ) -> Result<LoginReply, ClientError> {
        self.login_via(&self.route(user)?, user, password, device_id).await
    }

    /// Logs `user` in through the manager with routing key `key`, whoever the table names
    /// (for operators and tests: a wrong key gets `wrong_manager`).
    pub async fn login_via(
        &self,
        key: &RoutingKey,
        user: &UserId,
        password: Option<&str>,
        device_id: Option<String>,
    ) -> Result<LoginReply, ClientError> {
        let request = Request::Login(Login { user: user.clone(), password: password.map(Password::from), device_id });
        parse(self.call(key, &request).await?)
    }

    /// Closes one session; returns it.
    pub async fn logout(&self, session: &SessionId) -> Result<SessionBody, ClientError> {
        self.by_session(Request::Logout(Logout { session_id: session.clone() })).await
    }

    /// Renews a session's idle deadline; returns it.
    pub async fn refresh(&self, session: &SessionId) -> Result<SessionBody, ClientError> {
        self.by_session(Request::Refresh(Refresh { session_id: session.clone() })).await
    }

    /// Reads a session.
    pub async fn get(&self, session: &SessionId) -> Result<SessionBody, ClientError> {
        self.by_session(Request::Get(Get { session_id: session.clone() })).await
    }

    /// The user's live sessions; the user's password is needed unless this is an admin
    /// account.
    pub async fn list(&self, user: &UserId, password: Option<&str>) -> Result<Vec<SessionBody>, ClientError> {
        #[derive(Deserialize)]
        struct Sessions {
            sessions: Vec<SessionBody>,
        }
        let request = Request::List(List { user: user.clone(), password: password.map(Password::from) });
        let fields = self.call(&self.route(user)?, &request).await?;
        Ok(parse::<Sessions>(fields)?.sessions)
    }

    /// Closes every session of the user; returns how many there were. The user's password is
    /// needed unless this is an admin account.
    pub async fn revoke_all(&self, user: &UserId, password: Option<&str>) -> Result<u64, ClientError> {
        #[derive(Deserialize)]
        struct Deleted {
            deleted: u64,
        }
        let request = Request::RevokeAll(RevokeAll { user: user.clone(), password: password.map(Password::from) });
        let fields = self.call(&self.route(user)?, &request).await?;
        Ok(parse::<Deleted>(fields)?.deleted)
    }

    /// A session id names no user, so ask each manager until one knows the session; a
    /// manager that holds it for another's user answers `wrong_manager`, so follow that.
    async fn by_session(&self, request: Request) -> Result<SessionBody, ClientError> {
        #[derive(Deserialize)]
        struct One {
            session: SessionBody,
        }
        let mut last =
            ClientError::Remote(ReplyError::new(ReplyCode::SessionNotFound, "no manager knows this session"));
        for key in self.routing.keys() {
            match self.call(key, &request).await {
                Ok(fields) => return Ok(parse::<One>(fields)?.session),
                Err(ClientError::Remote(failure)) if failure.code == ReplyCode::SessionNotFound => {
                    last = ClientError::Remote(failure);
                }
                Err(ClientError::Remote(failure)) if failure.code == ReplyCode::WrongManager => {
                    let Some(right) = failure.routing_key.as_deref().and_then(|k| k.parse().ok()) else {
                        return Err(ClientError::Remote(failure));
                    };
                    return Ok(parse::<One>(self.call(&right, &request).await?)?.session);
                }
                Err(other) => return Err(other),
            }
        }
        Err(last)
    }

    /// Closes the connection.
    pub async fn close(self) -> Result<(), ClientError> {
        Ok(self.connection.close(200, "bye".into()).await?)
    }
}

fn parse<T: DeserializeOwned>(fields: Map<String, Value>) -> Result<T, ClientError> {
    Ok(serde_json::from_value(Value::Object(fields))?)
}
