//! The AMQP side of a session manager: [`Responder`] holds what requests are applied to;
//! [`run`] serves one channel; [`serve`] connects, runs, and reconnects with backoff after the
//! broker goes away.

use std::{
    collections::{BTreeSet, HashMap},
    future::Future,
    num::NonZeroU32,
    pin::pin,
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use futures::StreamExt;
use lapin::{
    BasicProperties, Channel, ExchangeKind,
    message::Delivery,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ExchangeDeclareOptions,
        QueueBindOptions, QueueDeclareOptions,
    },
    types::FieldTable,
    uri::AMQPUri,
};
use sessanger_core::{DeleteReason, Page, Session, SessionEvent, SessionId, SessionManager, UserId};
use sessanger_tls::LoadedTls;
use tokio::{
    sync::{OwnedMutexGuard, broadcast, watch},
    task::JoinSet,
};

use crate::{
    BrokerOptions, EXCHANGE, Routing, RoutingKey,
    broker::{BrokerError, Provisioner},
    dedup::ReplyCache,
    message::{Reply, ReplyCode, ReplyError, Request},
    pam::{AuthError, Authenticator},
    queue_name,
    routing::InvalidRoutingKey,
};

/// Who sent a request, by the `user_id` property RabbitMQ vouches for: the broker closes the
/// channel of a client that sets it to any account but its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The clients' account: a request proves its right by what it carries (a user's
    /// password, a session id).
    Client,
    /// The managers' own account or one in [`BrokerOptions::admins`]: trusted with any
    /// user's sessions.
    Admin,
}

/// Which broker accounts may send requests, and which of them are trusted with any user.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Accounts whose requests prove their right by what they carry.
    pub clients: BTreeSet<String>,
    /// Accounts trusted with any user's sessions.
    pub admins: BTreeSet<String>,
}

impl Access {
    /// The clients' account of `options` as a client; the managers' own and `admins` as
    /// admins.
    pub fn from_options(options: &BrokerOptions) -> Access {
        let mut admins = options.admins.clone();
        admins.insert(options.manager.login.clone());
        Access { clients: BTreeSet::from([options.client.login.clone()]), admins }
    }

    /// The caller a request's `user_id` property names; `forbidden` when it names none or
    /// an account that may not send requests.
    pub fn caller(&self, user_id: Option<&str>) -> Result<Caller, ReplyError> {
        match user_id {
            Some(account) if self.admins.contains(account) => Ok(Caller::Admin),
            Some(account) if self.clients.contains(account) => Ok(Caller::Client),
            Some(account) => {
                tracing::warn!(account, "refused a request from an account that may not send any");
                Err(ReplyError::new(ReplyCode::Forbidden, format!("account `{account}` may not send requests")))
            }
            None => Err(ReplyError::new(ReplyCode::Forbidden, "a request must carry the user_id property")),
        }
    }
}

/// Everything a request is applied to: the sessions, the routing table and this manager's
/// key, who may ask, PAM, and the broker accounts. Share it as `Arc<Responder>`.
#[derive(Debug)]
pub struct Responder {
    manager: SessionManager,
    routing: Routing,
    key: RoutingKey,
    access: Access,
    pam: Authenticator,
    provisioner: Provisioner,
    user_password: Option<String>,
    /// One async lock per user with a request in flight that changes its broker account.
    /// Weak, so a user's entry dies with its last guard; a std mutex because it is only held
    /// to find or insert the entry, never across an `.await`.
    locks: Mutex<HashMap<UserId, Weak<tokio::sync::Mutex<()>>>>,
    /// Replies of recent requests, for requests delivered again (see `dedup`).
    replies: Mutex<ReplyCache>,
    ready: watch::Sender<bool>,
}

impl Responder {
    /// A responder consuming `key`, with access, PAM, provisioning and the routing table
    /// from `options`.
    pub fn from_options(
        manager: SessionManager,
        options: &BrokerOptions,
        key: RoutingKey,
    ) -> Result<Responder, BrokerError> {
        let invalid = |e: InvalidRoutingKey| BrokerError::Config(e.to_string());
        let routing = if options.routing_keys.is_empty() {
            // No table: this session manager serves everyone.
            Routing::from_table([(key.as_ref(), [crate::routing::WILDCARD])]).map_err(invalid)?
        } else {
            Routing::from_options(options).map_err(invalid)?
        };
        Ok(Responder::new(
            manager,
            routing,
            key,
            Access::from_options(options),
            Authenticator::new(&options.pam_service),
            Provisioner::from_options(options)?,
        )
        .with_user_password(options.user_password.clone()))
    }

    /// A responder from its parts; users' broker passwords are their login passwords.
    pub fn new(
        manager: SessionManager,
        routing: Routing,
        key: RoutingKey,
        access: Access,
        pam: Authenticator,
        provisioner: Provisioner,
    ) -> Responder {
        Responder {
            manager,
            routing,
            key,
            access,
            pam,
            provisioner,
            user_password: None,
            locks: Mutex::default(),
            replies: Mutex::new(ReplyCache::new(REPLY_CACHE_ENTRIES)),
            ready: watch::Sender::new(false),
        }
    }

    /// Gives every user's broker account this password instead of its login password
    /// ([`BrokerOptions::user_password`]).
    #[must_use]
    pub fn with_user_password(mut self, password: Option<String>) -> Responder {
        self.user_password = password;
        self
    }

    /// The session manager requests act on.
    pub fn manager(&self) -> &SessionManager {
        &self.manager
    }

    /// The routing key this manager consumes.
    pub fn routing_key(&self) -> &RoutingKey {
        &self.key
    }

    /// Who may send requests.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// `Ok` if `caller` may act on `user`'s sessions: a given password must pass PAM (it
    /// may become the broker password too); without one, only an admin may.
    pub async fn authorize(&self, caller: Caller, user: &UserId, password: Option<&str>) -> Result<(), ReplyError> {
        let Some(password) = password else {
            return match caller {
                Caller::Admin => Ok(()),
                Caller::Client => Err(ReplyError::new(
                    ReplyCode::Forbidden,
                    "this request needs the user's password (accounts in broker.admins need none)",
                )),
            };
        };
        self.pam.authenticate(user, password).await.map_err(|error| match error {
            AuthError::Rejected => ReplyError::new(ReplyCode::AuthFailed, "wrong user name or password"),
            AuthError::Pam(why) => {
                tracing::error!(%user, %why, "PAM failed");
                ReplyError::new(ReplyCode::Internal, "the password could not be checked")
            }
        })
    }

    /// The broker account provisioning.
    pub fn provisioner(&self) -> &Provisioner {
        &self.provisioner
    }

    /// The fixed broker password for users, if one is set.
    pub fn user_password(&self) -> Option<&str> {
        self.user_password.as_deref()
    }

    /// Whether [`run`] is consuming right now.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until [`run`] consumes its queue (after every reconnect, too).
    pub async fn ready(&self) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|ready| *ready).await;
    }

    /// `Ok` if this manager serves `user`; `wrong_manager` naming the right key, or
    /// `no_manager`, otherwise. A manager never serves another's user silently.
    pub fn check_route(&self, user: &UserId) -> Result<(), ReplyError> {
        match self.routing.route(user) {
            Some(key) if *key == self.key => Ok(()),
            Some(key) => Err(ReplyError::wrong_manager(user, key)),
            None => Err(ReplyError::new(ReplyCode::NoManager, format!("no manager serves user `{user}`"))),
        }
    }

    /// The live session `id`, if its user is served here.
    pub async fn served_session(&self, id: &SessionId) -> Result<Arc<Session>, ReplyError> {
        let session = self.manager.get_session(id).await?;
        self.check_route(&session.user_id)?;
        Ok(session)
    }

    /// Holds off other account changes of `user` until the guard is dropped.
    pub async fn lock_user(&self, user: &UserId) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().expect("user lock table poisoned");
            match locks.get(user).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    locks.retain(|_, lock| lock.strong_count() > 0);
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(user.clone(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// With the user's lock held: if `user` has no live session left, ends its broker access
    /// ([`Provisioner::deprovision`]). Failures are logged: the session is gone either way.
    pub async fn end_if_last_locked(&self, user: &UserId) {
        // Whether any is left: a page of one says.
        match self.manager.list_user_sessions(user, &Page::first(NonZeroU32::MIN)).await {
            Ok(sessions) if sessions.is_empty() => {
                if let Err(error) = self.provisioner.deprovision(user).await {
                    tracing::warn!(%user, %error, "removing the broker account after the last session failed");
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%user, %error, "listing sessions after a logout failed"),
        }
    }

    /// Ends broker access of users whose last session ended some other way: expiry, or a
    /// revocation through the HTTP API. Runs until the returned guard is dropped.
    pub fn watch_sessions(self: &Arc<Self>) -> Watcher {
        let mut events = self.manager.subscribe();
        let responder = Arc::clone(self);
        Watcher(tokio::spawn(async move {
            loop {
                let user = match events.recv().await {
                    Ok(SessionEvent::Expired { user_id, .. }) => user_id,
                    Ok(SessionEvent::Deleted { user_id, reason, .. }) if reason != DeleteReason::Evicted => user_id,
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "session events missed: some broker accounts may outlive their sessions"
                        );
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if responder.routing.route(&user) == Some(&responder.key) {
                    let _guard = responder.lock_user(&user).await;
                    responder.end_if_last_locked(&user).await;
                }
            }
        }))
    }
}

/// Stops [`Responder::watch_sessions`] when dropped.
#[derive(Debug)]
pub struct Watcher(tokio::task::JoinHandle<()>);

impl Drop for Watcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// How [`serve`] connects.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// The broker, with the manager's credentials and vhost.
    pub uri: AMQPUri,
    /// TLS for an `amqps://` [`uri`](Self::uri).
    pub tls: LoadedTls,
    /// How many requests are handled at once (AMQP prefetch).
    pub prefetch: u16,
    /// The longest wait between reconnection attempts; waits start at 100 ms and double.
    pub max_backoff: Duration,
}

impl ServeOptions {
    /// Connects as the session managers' account to the vhost named after it.
    pub fn from_options(options: &BrokerOptions) -> Result<ServeOptions, String> {
        Ok(ServeOptions {
            uri: options.manager_uri()?,
            tls: options.loaded_tls()?,
            prefetch: 64,
            max_backoff: Duration::from_secs(5),
        })
    }
}

/// How many recent replies a manager keeps to answer requests delivered again.
const REPLY_CACHE_ENTRIES: usize = 1024;

/// How long a reply is kept when its request has no expiration. Clients set one (their
/// timeout), after which RabbitMQ no longer delivers the request.
const REPLY_CACHE_AGE: Duration = Duration::from_secs(60);

const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// How long shutdown waits for requests already being handled.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves requests until `shutdown` completes: connects, declares the topology, runs, and
/// after losing the broker reconnects with exponential backoff and declares it again. Also
/// ends the broker access of users whose sessions expire ([`Responder::watch_sessions`]).
pub async fn serve(options: ServeOptions, responder: Arc<Responder>, shutdown: impl Future<Output = ()>) {
    let _watcher = responder.watch_sessions();
    let mut shutdown = pin!(shutdown);
    let mut backoff = FIRST_BACKOFF;
    loop {
        let connect = async {
            let connection = crate::connect::open(&options.uri, &options.tls).await?;
            let channel = connection.create_channel().await?;
            channel.basic_qos(options.prefetch, BasicQosOptions::default()).await?;
            Ok::<_, lapin::Error>((connection, channel))
        };
        let connected = tokio::select! {
            () = &mut shutdown => return,
            connected = connect => connected,
        };
        match connected {
            Ok((connection, channel)) => {
                backoff = FIRST_BACKOFF;
                let served = run(channel, Arc::clone(&responder), &mut shutdown).await;
                responder.ready.send_replace(false);
                match served {
                    Ok(()) => {
                        let _ = connection.close(200, "sessanger shutting down".into()).await;
                        return;
                    }
                    Err(error) => tracing::warn!(%error, "lost the broker; reconnecting"),
                }
            }
            Err(error) => tracing::warn!(%error, retry_in = ?backoff, "cannot reach the broker"),
        }
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(options.max_backoff);
    }
}

/// Declares the topology on `channel` (the direct exchange, this manager's durable queue
/// bound with its routing key), then handles requests until `shutdown` completes (`Ok`) or
/// the channel fails (`Err`). Requests run concurrently, up to the channel's prefetch.
pub async fn run(
    channel: Channel,
    responder: Arc<Responder>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), lapin::Error> {
    let key = responder.routing_key().to_string();
    let queue = queue_name(responder.routing_key());
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(EXCHANGE.into(), ExchangeKind::Direct, durable, FieldTable::default()).await?;
    channel.queue_declare(queue.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default()).await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            EXCHANGE.into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(queue.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    responder.ready.send_replace(true);
    tracing::info!(routing_key = %key, %queue, "AMQP session manager consuming");

    let mut shutdown = pin!(shutdown);
    let mut in_flight = JoinSet::new();
    loop {
        let next = tokio::select! {
            () = &mut shutdown => break,
            next = consumer.next() => next,
            // Reap finished handlers so the set does not grow with every request served.
            Some(_) = in_flight.join_next(), if !in_flight.is_empty() => continue,
        };
        match next {
            Some(Ok(delivery)) => {
                in_flight.spawn(handle(channel.clone(), Arc::clone(&responder), delivery));
            }
            Some(Err(error)) => {
                // Handlers already running finish on their own; their replies may be lost.
                in_flight.detach_all();
                return Err(error);
            }
            None => {
                in_flight.detach_all();
                return Err(lapin::Error::from(lapin::ErrorKind::InvalidChannelState(
                    lapin::ChannelState::Closed,
                    "consumer",
                )));
            }
        }
    }
    if tokio::time::timeout(DRAIN, async { while in_flight.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("shutdown: requests still running after {DRAIN:?} were abandoned");
    }
    Ok(())
}

/// Applies one request and publishes the reply to its `reply_to` with its `correlation_id`;
/// acknowledges only then, so a request whose reply could not be sent is delivered again.
/// A request whose `message_id` was seen lately gets the first run's reply: RabbitMQ delivers
/// a request again after a reconnect even when it already ran.
async fn handle(channel: Channel, responder: Arc<Responder>, delivery: Delivery) {
    let sender = delivery.properties.user_id().as_ref().map(|account| account.as_str());
    let execute = || async {
        match (responder.access.caller(sender), Request::decode(&delivery.data)) {
            (Ok(caller), Ok(request)) => request.apply(&responder, caller).await,
            (Err(failure), _) | (_, Err(failure)) => Reply::Err(failure),
        }
    };
    let reply = match delivery.properties.message_id() {
        Some(id) => {
            // Ids are the sender's: another account reusing one gets a slot of its own.
            let id = format!("{}/{id}", sender.unwrap_or_default());
            let ttl = delivery
                .properties
                .expiration()
                .as_ref()
                .and_then(|ms| ms.as_str().parse().ok())
                .map_or(REPLY_CACHE_AGE, Duration::from_millis);
            let slot =
                responder.replies.lock().expect("reply cache poisoned").slot(&id, &delivery.data, ttl, Instant::now());
            slot.get_or_init(execute).await.clone()
        }
        None => execute().await,
    };
    if let Some(reply_to) = delivery.properties.reply_to() {
        let mut properties = BasicProperties::default().with_content_type("application/json".into());
        if let Some(id) = delivery.properties.correlation_id() {
            properties = properties.with_correlation_id(id.clone());
        }
        let published = channel
            .basic_publish("".into(), reply_to.clone(), BasicPublishOptions::default(), &reply.encode(), properties)
            .await;
        if let Err(error) = published {
            tracing::warn!(%error, "sending a reply failed");
            return;
        }
    }
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        tracing::warn!(%error, "acknowledging a request failed");
    }
}
