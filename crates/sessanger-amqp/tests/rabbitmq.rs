//! Real RabbitMQ (`SESSANGER_TEST_AMQP_URL`, default `127.0.0.1:5672`, management API on
//! port 15672 with guest:guest) and real PAM (`/etc/pam.d/sessanger-test` and the Linux users
//! sysadm, ok1 and om1, whose passwords are their names): `scripts/amqp-setup` prepares both.
//! These tests fail, never skip, when RabbitMQ is unreachable.
//!
//! Each test gets its own manager account and vhost (`sessanger-t<random>`), so runs never
//! share queues. The Linux users, and so their broker accounts, are the machine's: the tests
//! take turns on them through one lock.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use lapin::{
    BasicProperties, Connection,
    options::{BasicConsumeOptions, BasicPublishOptions},
    types::FieldTable,
};
use sessanger_amqp::{
    Account, AmqpClient, BrokerOptions, ClientError, EXCHANGE, REPLY_TO, ReplyCode, Responder, Routing, RoutingKey,
    ServeOptions,
    broker::{BrokerAdmin, BrokerError, Provisioner, Rights},
    message::Reply,
    relay::{EVENTS_EXCHANGE, RelayOptions, relay},
    serve,
};
use sessanger_core::{Clock, EventId, ManualClock, SessionManager, SystemClock, UserId};
use sessanger_store_memory::MemoryStore;
use tokio::sync::{Mutex, MutexGuard, oneshot};

const ADMIN: (&str, &str) = ("guest", "guest");

/// The machine's Linux users are shared by every test.
static USERS: Mutex<()> = Mutex::const_new(());

/// The broker's URL; `host:port` stands for `amqp://host:port`.
fn amqp_url() -> String {
    let url = std::env::var("SESSANGER_TEST_AMQP_URL").unwrap_or_else(|_| "127.0.0.1:5672".into());
    if url.contains("://") { url } else { format!("amqp://{url}") }
}

/// A routing table: routing key → user names.
type Table = &'static [(&'static str, &'static [&'static str])];

/// Two session managers, splitting the users by name.
const TWO_KEYS: Table = &[("sessanger1", &["sysadm", "ok1"]), ("sessanger2", &["om1"])];

/// One session manager for every user.
const ONE_KEY: Table = &[("sessanger1", &["*"])];

fn user(name: &str) -> UserId {
    name.parse().unwrap()
}

fn key(name: &str) -> RoutingKey {
    name.parse().unwrap()
}

/// One test's world: a fresh manager account and vhost, and the broker options around them.
struct World {
    config: BrokerOptions,
    admin: BrokerAdmin,
    responders: Vec<(Arc<Responder>, oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    _turn: MutexGuard<'static, ()>,
}

impl World {
    /// `routing_keys`, with the test's PAM service, and whatever else `configure` sets
    /// (`user_password`, `keep_user`).
    async fn new(routing_keys: Table, configure: impl FnOnce(&mut BrokerOptions)) -> World {
        let turn = USERS.lock().await;
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).unwrap();
        let login = format!("sessanger-t{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let mut config = BrokerOptions::new(amqp_url(), &login, &login);
        config.client = Account::new(format!("{login}-client"), format!("{login}-client"));
        config.routing_keys = routing_keys
            .iter()
            .map(|(key, users)| (key.to_string(), users.iter().map(|u| u.to_string()).collect()))
            .collect();
        config.pam_service = "sessanger-test".into();
        configure(&mut config);
        let tls = config.tls.load().unwrap();
        let admin = BrokerAdmin::with_tls(config.management_url(), ADMIN.0, ADMIN.1, &tls).unwrap();
        admin
            .setup(&config)
            .await
            .expect("RabbitMQ's management API must answer on 127.0.0.1:15672 (run scripts/amqp-setup)");
        for name in ["sysadm", "ok1", "om1"] {
            admin.delete_user(name).await.unwrap();
        }
        World { config, admin, responders: Vec::new(), _turn: turn }
    }

    /// Starts the manager consuming `routing_key` and waits until it consumes.
    async fn start(&mut self, routing_key: &str) -> Arc<Responder> {
        let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), Default::default());
        self.start_on(routing_key, manager).await
    }

    /// [`World::start`] on the given manager.
    async fn start_on(&mut self, routing_key: &str, manager: SessionManager) -> Arc<Responder> {
        let responder = Arc::new(Responder::from_options(manager, &self.config, key(routing_key)).unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServeOptions::from_options(&self.config).unwrap();
        let task = tokio::spawn(serve(options, Arc::clone(&responder), async {
            let _ = stopped.await;
        }));
        tokio::time::timeout(Duration::from_secs(10), responder.ready()).await.expect("manager never consumed");
        self.responders.push((Arc::clone(&responder), stop, task));
        responder
    }

    /// A client on the clients' account.
    async fn client(&self) -> AmqpClient {
        AmqpClient::from_options(&self.config)
            .await
            .expect("connecting the client")
            .with_timeout(Duration::from_secs(10))
    }

    /// A client on the managers' own account, an admin.
    async fn admin_client(&self) -> AmqpClient {
        let routing = Routing::from_options(&self.config).unwrap();
        let tls = self.config.loaded_tls().unwrap();
        AmqpClient::connect(self.config.manager_uri().unwrap(), &tls, routing)
            .await
            .expect("connecting as the managers")
    }

    /// The live sessions of `name` on the first manager.
    async fn sessions(&self, name: &str) -> Vec<sessanger_core::Session> {
        self.responders[0].0.manager().all_user_sessions(&user(name)).await.unwrap()
    }

    /// `rabbitmqctl stop_app`; returns once every manager noticed the broker going away.
    async fn stop_rabbitmq(&self) -> Stopped<'_> {
        let stopped = Stopped { world: self, started: false };
        rabbitmqctl("stop_app").await;
        for (responder, ..) in &self.responders {
            let noticed = async {
                while responder.is_ready() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            };
            tokio::time::timeout(Duration::from_secs(10), noticed)
                .await
                .expect("manager noticed the broker going away");
        }
        stopped
    }

    /// Stops the managers and deletes the run's manager account and vhost.
    async fn finish(mut self) {
        for (_, stop, task) in self.responders.drain(..) {
            let _ = stop.send(());
            let _ = task.await;
        }
        for name in ["sysadm", "ok1", "om1"] {
            let _ = self.admin.delete_user(name).await;
        }
        let _ = self.admin.delete_vhost(self.config.vhost()).await;
        let _ = self.admin.delete_user(&self.config.manager.login).await;
        let _ = self.admin.delete_user(&self.config.client.login).await;
    }
}

/// Runs `rabbitmqctl <command>` against this machine's node.
async fn rabbitmqctl(command: &str) {
    let output = tokio::process::Command::new("rabbitmqctl").arg(command).output().await.expect("running rabbitmqctl");
    assert!(output.status.success(), "rabbitmqctl {command}: {}", String::from_utf8_lossy(&output.stderr));
}

/// RabbitMQ stopped by [`World::stop_rabbitmq`]. Dropped without [`Stopped::start`] (a failed
/// test), it starts the node anyway, so the tests after it find a broker.
struct Stopped<'a> {
    world: &'a World,
    started: bool,
}

impl Stopped<'_> {
    /// `rabbitmqctl start_app`; returns once every manager consumes again and the management
    /// API answers.
    async fn start(mut self) {
        rabbitmqctl("start_app").await;
        self.started = true;
        for (responder, ..) in &self.world.responders {
            tokio::time::timeout(Duration::from_secs(30), responder.ready()).await.expect("manager reconnected");
        }
        // The management API comes back a moment after AMQP.
        let admin = &self.world.admin;
        tokio::time::timeout(Duration::from_secs(30), async {
            while admin.user_exists("guest").await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("management API back");
    }
}

impl Drop for Stopped<'_> {
    fn drop(&mut self) {
        if !self.started {
            let _ = std::process::Command::new("rabbitmqctl").arg("start_app").status();
        }
    }
}

/// Opens an AMQP connection as `login` to `vhost` (over TLS for an `amqps://` broker).
async fn connect_as(config: &BrokerOptions, login: &str, password: &str, vhost: &str) -> lapin::Result<Connection> {
    let uri = config.uri(login, password, vhost).unwrap();
    sessanger_amqp::connect::open(&uri, &config.loaded_tls().unwrap()).await
}

fn remote_code(error: &ClientError) -> Option<ReplyCode> {
    error.code()
}

/// The whole flow over TLS, against the listeners `scripts/amqp-setup` adds: the managers and
/// the client on `amqps://127.0.0.1:5671`, users' accounts made through the management API on
/// `https://127.0.0.1:15671`, the user's own connection, all trusting the test CA; a client
/// trusting another CA is refused, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_managers_their_clients_and_users_work_over_tls() {
    let tls = |config: &mut BrokerOptions| {
        config.url = "amqps://127.0.0.1:5671".into();
        config.tls = sessanger_testkit::tls::trusting("ca.crt");
    };
    let mut world = World::new(ONE_KEY, tls).await;
    assert_eq!(world.config.management_url(), "https://127.0.0.1:15671");
    world.start("sessanger1").await;
    let client = world.client().await;
    let login = client.login(&user("sysadm"), Some("sysadm"), Some("laptop".into())).await.unwrap();
    assert_eq!(login.broker.vhost, "sysadm");
    assert!(world.admin.user_exists("sysadm").await.unwrap(), "made through the HTTPS management API");
    let own = connect_as(&world.config, "sysadm", "sysadm", "sysadm").await.expect("the user connects over TLS");
    own.close(200, "done".into()).await.unwrap();

    let mut distrusting = world.config.clone();
    distrusting.tls = sessanger_testkit::tls::trusting("other-ca.crt");
    let refused = AmqpClient::from_options(&distrusting).await.expect_err("a broker no trusted CA signed");
    let message = sessanger_testkit::tls::error_chain(&refused);
    assert!(message.contains("amqps://127.0.0.1:5671") && message.contains("UnknownIssuer"), "{message}");
    // Plain AMQP to the TLS port fails at once, naming it.
    let mut plaintext = world.config.clone();
    plaintext.url = "amqp://127.0.0.1:5671".into();
    let started = std::time::Instant::now();
    let refused = AmqpClient::from_options(&plaintext).await.expect_err("plain AMQP to a TLS port");
    let message = sessanger_testkit::tls::error_chain(&refused);
    println!("{message} ({:?})", started.elapsed());
    assert!(message.contains("amqp://127.0.0.1:5671"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    let mut insecure = world.config.clone();
    insecure.tls.insecure = true;
    let refused = AmqpClient::from_options(&insecure).await.expect_err("the AMQP client cannot skip verification");
    assert!(format!("{refused}").contains("broker.tls.insecure"), "{refused}");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_of_seed_example_2_each_serve_their_own_users() {
    let mut world = World::new(TWO_KEYS, |_| {}).await;
    world.start("sessanger1").await;
    world.start("sessanger2").await;
    let client = world.client().await;

    let sysadm = client.login(&user("sysadm"), Some("sysadm"), Some("laptop".into())).await.unwrap();
    assert_eq!(sysadm.routing_key, "sessanger1");
    assert_eq!((sysadm.broker.user.as_str(), sysadm.broker.vhost.as_str()), ("sysadm", "sysadm"));
    assert_eq!(sysadm.session.device.device_id.as_deref(), Some("laptop"));
    let om1 = client.login(&user("om1"), Some("om1"), None).await.unwrap();
    assert_eq!(om1.routing_key, "sessanger2");

    // The session-id requests find the right manager by themselves.
    assert_eq!(client.get(&om1.session.session_id).await.unwrap().user_id, user("om1"));
    assert_eq!(client.refresh(&sysadm.session.session_id).await.unwrap().user_id, user("sysadm"));
    assert_eq!(client.list(&user("sysadm"), Some("sysadm")).await.unwrap().len(), 1);
    assert_eq!(client.revoke_all(&user("om1"), Some("om1")).await.unwrap(), 1);
    assert!(!world.admin.user_exists("om1").await.unwrap(), "revoke_all of the last session removes the account");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_for_another_managers_user_gets_wrong_manager_naming_the_right_key() {
    let mut world = World::new(TWO_KEYS, |_| {}).await;
    world.start("sessanger1").await;
    world.start("sessanger2").await;
    let client = world.client().await;

    let error = client.login_via(&key("sessanger1"), &user("om1"), Some("om1"), None).await.unwrap_err();
    let ClientError::Remote(failure) = error else { panic!("expected a manager's answer, got {error:?}") };
    assert_eq!(failure.code, ReplyCode::WrongManager);
    assert_eq!(failure.routing_key.as_deref(), Some("sessanger2"));
    assert!(!world.admin.user_exists("om1").await.unwrap(), "the wrong manager created nothing");

    let error = client.list(&user("nobody"), None).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ReplyCode::NoManager));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_user_opens_its_own_vhost_only() {
    let mut world = World::new(TWO_KEYS, |_| {}).await;
    world.start("sessanger1").await;
    world.start("sessanger2").await;
    let client = world.client().await;
    client.login(&user("sysadm"), Some("sysadm"), None).await.unwrap();
    client.login(&user("om1"), Some("om1"), None).await.unwrap();

    let own = connect_as(&world.config, "sysadm", "sysadm", "sysadm").await.expect("sysadm opens vhost sysadm");
    let channel = own.create_channel().await.unwrap();
    channel
        .queue_declare("inbox".into(), lapin::options::QueueDeclareOptions::default(), Default::default())
        .await
        .expect("sysadm may configure its own vhost");
    own.close(200, "done".into()).await.unwrap();
    assert!(connect_as(&world.config, "sysadm", "sysadm", "om1").await.is_err(), "vhost om1 is refused");
    let managers = world.config.manager.login.clone();
    assert!(connect_as(&world.config, "sysadm", "sysadm", &managers).await.is_err(), "the managers' vhost is refused");
    // The manager's account reaches the users' vhosts.
    let manager = connect_as(&world.config, &managers, &managers, "sysadm").await.expect("manager opens vhost sysadm");
    manager.close(200, "done".into()).await.unwrap();
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth_failed_and_creates_no_broker_user() {
    let mut world = World::new(ONE_KEY, |_| {}).await;
    world.start("sessanger1").await;
    let client = world.client().await;

    let error = client.login(&user("ok1"), Some("not-the-password"), None).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ReplyCode::AuthFailed), "{error}");
    assert!(!world.admin.user_exists("ok1").await.unwrap());
    assert!(world.sessions("ok1").await.is_empty());
    // The next attempt waits out the penalty, then succeeds.
    let started = std::time::Instant::now();
    client.login(&user("ok1"), Some("ok1"), None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200), "a repeated attempt is slowed down");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_example_1_gives_every_broker_user_the_configured_password() {
    let mut world = World::new(ONE_KEY, |broker| broker.user_password = Some("123".into())).await;
    world.start("sessanger1").await;
    let client = world.client().await;

    let login = client.login(&user("ok1"), Some("ok1"), None).await.unwrap();
    assert_eq!(login.routing_key, "sessanger1");
    let connection = connect_as(&world.config, "ok1", "123", "ok1").await.expect("the broker password is 123");
    connection.close(200, "done".into()).await.unwrap();
    assert!(connect_as(&world.config, "ok1", "ok1", "ok1").await.is_err(), "the login password is not the broker's");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_of_the_last_session_closes_the_connection_and_kills_the_credentials() {
    let mut world = World::new(ONE_KEY, |_| {}).await;
    world.start("sessanger1").await;
    let client = world.client().await;

    let first = client.login(&user("sysadm"), Some("sysadm"), None).await.unwrap();
    let second = client.login(&user("sysadm"), Some("sysadm"), None).await.unwrap();
    let connection = connect_as(&world.config, "sysadm", "sysadm", "sysadm").await.unwrap();

    client.logout(&first.session.session_id).await.unwrap();
    assert!(connection.status().connected(), "another session is still live");
    client.logout(&second.session.session_id).await.unwrap();
    let closed = async {
        while connection.status().connected() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), closed).await.expect("the user's connection is closed");
    assert!(connect_as(&world.config, "sysadm", "sysadm", "sysadm").await.is_err(), "the credentials are dead");
    assert!(world.admin.vhost_exists("sysadm").await.unwrap(), "the vhost is kept (remove_vhost is false)");
    let error = client.get(&second.session.session_id).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ReplyCode::SessionNotFound));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_user_leaves_the_broker_account_and_vhost_usable_after_the_last_logout() {
    let mut world = World::new(ONE_KEY, |broker| broker.keep_user = true).await;
    world.start("sessanger1").await;
    let client = world.client().await;

    let login = client.login(&user("ok1"), Some("ok1"), None).await.unwrap();
    client.logout(&login.session.session_id).await.unwrap();
    assert!(world.sessions("ok1").await.is_empty(), "the session is gone");
    assert!(world.admin.user_exists("ok1").await.unwrap(), "the broker account outlives the last session");
    assert!(world.admin.vhost_exists("ok1").await.unwrap(), "the vhost is kept (remove_vhost is false)");
    let connection = connect_as(&world.config, "ok1", "ok1", "ok1").await.expect("the credentials still work");
    connection.close(200, "done".into()).await.unwrap();
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_serve_again_after_rabbitmq_restarts() {
    let mut world = World::new(TWO_KEYS, |_| {}).await;
    world.start("sessanger1").await;
    world.start("sessanger2").await;

    world.stop_rabbitmq().await.start().await;

    let client = world.client().await;
    assert_eq!(client.login(&user("sysadm"), Some("sysadm"), None).await.unwrap().routing_key, "sessanger1");
    assert_eq!(client.login(&user("om1"), Some("om1"), None).await.unwrap().routing_key, "sessanger2");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_in_flight_while_rabbitmq_restarts_fails_fast_with_a_connection_error() {
    const TIMEOUT: Duration = Duration::from_secs(30);
    let mut world = World::new(ONE_KEY, |_| {}).await;
    let responder = world.start("sessanger1").await;
    let client = world.client().await.with_timeout(TIMEOUT);

    // With the user's lock held the manager gets the login but cannot answer it.
    let held = responder.lock_user(&user("sysadm")).await;
    let login = tokio::spawn(async move {
        let started = Instant::now();
        let result = client.login(&user("sysadm"), Some("sysadm"), None).await;
        (result, started.elapsed(), client)
    });
    let stopped = world.stop_rabbitmq().await;
    let (result, elapsed, client) =
        tokio::time::timeout(TIMEOUT + Duration::from_secs(5), login).await.expect("the call never returned").unwrap();
    let error = result.expect_err("no manager could answer");
    assert!(
        matches!(error, ClientError::Disconnected | ClientError::Connection(_)),
        "expected a connection error, got {error:?}"
    );
    assert!(elapsed < TIMEOUT, "the call failed when the connection dropped, not at its timeout ({elapsed:?})");
    // The client stays disconnected: later calls fail at once.
    let started = Instant::now();
    let error = client.list(&user("sysadm"), None).await.unwrap_err();
    assert!(matches!(error, ClientError::Disconnected), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1));

    drop(held);
    stopped.start().await;
    let client = world.client().await;
    assert_eq!(client.login(&user("sysadm"), Some("sysadm"), None).await.unwrap().routing_key, "sessanger1");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_of_the_last_session_removes_the_broker_account() {
    let mut world = World::new(ONE_KEY, |_| {}).await;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), Default::default())
        .with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let responder = world.start_on("sessanger1", manager).await;
    let client = world.client().await;

    client.login(&user("om1"), Some("om1"), None).await.unwrap();
    assert!(world.admin.user_exists("om1").await.unwrap());
    clock.advance(responder.manager().policy().idle_ttl + Duration::from_secs(1));
    assert_eq!(responder.manager().purge_expired().await.unwrap(), 1);
    let gone = async {
        while world.admin.user_exists("om1").await.unwrap() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(5), gone).await.expect("the expired user's broker account is removed");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_provisioning_leaves_neither_user_nor_vhost_behind() {
    let world = World::new(ONE_KEY, |_| {}).await;
    world.admin.delete_vhost("ok1").await.unwrap();
    // Granting the (missing) manager account access is the last step, and fails.
    let provisioner = Provisioner::new(world.admin.clone(), format!("{}-missing", world.config.manager.login));
    provisioner.provision(&user("ok1"), Some("ok1")).await.unwrap_err();
    assert!(!world.admin.user_exists("ok1").await.unwrap(), "the new user was rolled back");
    assert!(!world.admin.vhost_exists("ok1").await.unwrap(), "the new vhost was rolled back");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_delivered_twice_runs_once_and_both_get_its_reply() {
    let mut world = World::new(ONE_KEY, |_| {}).await;
    let responder = world.start("sessanger1").await;
    let config = &world.config;
    let manager = &config.manager;
    let connection = connect_as(config, &manager.login, manager.password().unwrap(), config.vhost()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let mut replies = channel.basic_consume(REPLY_TO.into(), "".into(), no_ack, FieldTable::default()).await.unwrap();

    // What RabbitMQ does when it redelivers a request, or a client retries one: the same
    // message id again, here while the first run is still going.
    let request = br#"{"v": 1, "op": "login", "user": "om1", "password": "om1"}"#;
    for correlation in ["first", "again"] {
        let properties = BasicProperties::default()
            .with_reply_to(REPLY_TO.into())
            .with_message_id("the-same-request".into())
            .with_user_id(manager.login.as_str().into())
            .with_correlation_id(correlation.into());
        channel
            .basic_publish(EXCHANGE.into(), "sessanger1".into(), BasicPublishOptions::default(), request, properties)
            .await
            .unwrap();
    }
    let mut sessions = Vec::new();
    for _ in 0..2 {
        let delivery = tokio::time::timeout(Duration::from_secs(10), replies.next())
            .await
            .expect("a reply")
            .expect("the reply consumer is open")
            .unwrap();
        let Reply::Ok(fields) = Reply::decode(&delivery.data).unwrap() else { panic!("the login failed") };
        sessions.push(fields["session"]["session_id"].clone());
    }
    assert_eq!(sessions[0], sessions[1], "both deliveries got the first run's reply");
    let live = responder.manager().all_user_sessions(&user("om1")).await.unwrap();
    assert_eq!(live.len(), 1, "the login ran once");
    connection.close(200, "done".into()).await.unwrap();
    world.finish().await;
}

/// Whether `operation` on a fresh channel of `connection` is refused by the broker.
async fn refused<T>(connection: &Connection, operation: impl AsyncFnOnce(&lapin::Channel) -> lapin::Result<T>) -> bool {
    let channel = connection.create_channel().await.unwrap();
    operation(&channel).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_account_may_send_requests_and_nothing_else() {
    use lapin::{
        ExchangeKind,
        options::{
            BasicGetOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
            QueuePurgeOptions,
        },
    };
    let mut world = World::new(ONE_KEY, |_| {}).await;
    world.start("sessanger1").await;
    // Rights on another vhost, as an older setup or an operator might have left them: setup
    // takes them away.
    world.admin.grant("/", &world.config.client.login).await.unwrap();
    world.admin.setup(&world.config).await.unwrap();
    let rights = world.admin.rights(&world.config.client.login).await.unwrap();
    assert_eq!(rights.into_iter().collect::<Vec<_>>(), [(world.config.vhost().to_owned(), Rights::client())]);

    let client = world.client().await;
    let login = client.login(&user("sysadm"), Some("sysadm"), None).await.expect("the client logs a user in");
    client.logout(&login.session.session_id).await.expect("and out");

    let Account { login, password } = &world.config.client;
    let password = password.as_deref().unwrap();
    let connection = connect_as(&world.config, login, password, world.config.vhost()).await.unwrap();
    let queue = "sessanger.sessanger1";
    let durable = QueueDeclareOptions::durable();
    assert!(refused(&connection, async |c| c.queue_declare("mine".into(), durable, FieldTable::default()).await).await);
    let options = ExchangeDeclareOptions { durable: true, ..Default::default() };
    let declare_exchange = async |c: &lapin::Channel| {
        c.exchange_declare(EXCHANGE.into(), ExchangeKind::Direct, options, FieldTable::default()).await
    };
    assert!(refused(&connection, declare_exchange).await, "no exchange declare, not even the existing one");
    let bind = async |c: &lapin::Channel| {
        c.queue_bind(queue.into(), EXCHANGE.into(), "stolen".into(), QueueBindOptions::default(), FieldTable::default())
            .await
    };
    assert!(refused(&connection, bind).await, "no bind");
    let consume = async |c: &lapin::Channel| {
        c.basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()).await
    };
    assert!(refused(&connection, consume).await, "no consuming the managers' queue");
    assert!(refused(&connection, async |c| c.basic_get(queue.into(), BasicGetOptions::default()).await).await);
    assert!(refused(&connection, async |c| c.queue_purge(queue.into(), QueuePurgeOptions::default()).await).await);
    assert!(refused(&connection, async |c| c.queue_delete(queue.into(), QueueDeleteOptions::default()).await).await);
    let publish_default = async |c: &lapin::Channel| {
        c.confirm_select(Default::default()).await?;
        c.basic_publish("".into(), queue.into(), BasicPublishOptions::default(), b"{}", BasicProperties::default())
            .await?
            .await
    };
    assert!(refused(&connection, publish_default).await, "no publishing past the request exchange");
    connection.close(200, "done".into()).await.unwrap();
    for vhost in ["/", "sysadm"] {
        assert!(connect_as(&world.config, login, password, vhost).await.is_err(), "vhost {vhost} is refused");
    }
    let management = BrokerAdmin::new(world.config.management_url(), login.as_str(), password);
    assert!(
        matches!(management.user_exists("guest").await, Err(BrokerError::Status { status, .. }) if status == 401),
        "no management API"
    );

    // A client's config (no managers' password) sets up another client account, say the PAM
    // hook's, and leaves the managers' account alone.
    let mut hook = world.config.clone();
    hook.manager.password = None;
    hook.client = Account::new(format!("{}-pam", world.config.manager.login), "pam");
    world.admin.setup(&hook).await.unwrap();
    let rights = world.admin.rights(&hook.client.login).await.unwrap();
    assert_eq!(rights.into_iter().collect::<Vec<_>>(), [(world.config.vhost().to_owned(), Rights::client())]);
    world.admin_client().await.list(&user("sysadm"), None).await.expect("the managers' password is unchanged");
    world.admin.delete_user(&hook.client.login).await.unwrap();
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_management_api_lets_no_tag_below_administrator_create_users() {
    // Why the managers' account keeps `administrator`: with the lesser tags it could not
    // provision anyone.
    let world = World::new(ONE_KEY, |_| {}).await;
    let name = format!("{}-lesser", world.config.manager.login);
    world.admin.put_user(&name, &name, "policymaker,monitoring").await.unwrap();
    let lesser = BrokerAdmin::new(world.config.management_url(), &name, &name);
    for refused in [lesser.put_user(&format!("{name}-x"), "x", "").await, lesser.put_vhost(&format!("{name}-x")).await]
    {
        assert!(matches!(refused, Err(BrokerError::Status { status, .. }) if status == 401), "{refused:?}");
    }
    world.admin.delete_user(&name).await.unwrap();
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_needs_the_users_password_where_an_admin_does_not() {
    let mut world = World::new(ONE_KEY, |_| {}).await;
    world.start("sessanger1").await;
    let client = world.client().await;
    client.login(&user("om1"), Some("om1"), None).await.unwrap();

    let forbidden = |error: ClientError| assert_eq!(remote_code(&error), Some(ReplyCode::Forbidden), "{error}");
    forbidden(client.list(&user("om1"), None).await.unwrap_err());
    forbidden(client.revoke_all(&user("om1"), None).await.unwrap_err());
    forbidden(client.login(&user("om1"), None, None).await.unwrap_err());
    assert_eq!(world.sessions("om1").await.len(), 1, "nothing was revoked or opened");
    let error = client.revoke_all(&user("om1"), Some("wrong")).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ReplyCode::AuthFailed));
    assert_eq!(client.list(&user("om1"), Some("om1")).await.unwrap().len(), 1, "the password opens the listing");

    // The managers' own account is an admin: no password needed, and a login without one
    // keeps the broker account's password.
    let admin = world.admin_client().await;
    assert_eq!(admin.list(&user("om1"), None).await.unwrap().len(), 1);
    admin.login(&user("om1"), None, Some("ssh-key".into())).await.expect("an admin opens a session without a password");
    connect_as(&world.config, "om1", "om1", "om1").await.expect("the broker password is still the login password");
    assert_eq!(admin.revoke_all(&user("om1"), None).await.unwrap(), 2);
    assert!(!world.admin.user_exists("om1").await.unwrap());
    // With no broker account left there is no password to give a new one.
    let error = admin.login(&user("om1"), None, None).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ReplyCode::PasswordRequired), "{error}");
    assert!(world.sessions("om1").await.is_empty());
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_refused_without_a_user_id_or_with_a_forged_one() {
    let mut world = World::new(ONE_KEY, |broker| broker.admins.insert("ops".into()).then_some(()).unwrap()).await;
    world.start("sessanger1").await;
    world.client().await.login(&user("ok1"), Some("ok1"), None).await.unwrap();

    let Account { login, password } = &world.config.client;
    let connection =
        connect_as(&world.config, login, password.as_deref().unwrap(), world.config.vhost()).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let mut replies = channel.basic_consume(REPLY_TO.into(), "".into(), no_ack, FieldTable::default()).await.unwrap();
    let revoke = br#"{"v": 1, "op": "revoke_all", "user": "ok1"}"#;
    let properties = BasicProperties::default().with_reply_to(REPLY_TO.into()).with_correlation_id("anonymous".into());
    channel
        .basic_publish(EXCHANGE.into(), "sessanger1".into(), BasicPublishOptions::default(), revoke, properties)
        .await
        .unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(10), replies.next()).await.unwrap().unwrap().unwrap();
    let Reply::Err(failure) = Reply::decode(&delivery.data).unwrap() else { panic!("an anonymous request ran") };
    assert_eq!(failure.code, ReplyCode::Forbidden);

    // Claiming to be an admin: the broker checks user_id against the connection's account
    // and closes the channel (406 PRECONDITION_FAILED); the request never reaches a manager.
    for (user_id, genuine) in [(login.as_str(), true), ("ops", false), (&world.config.manager.login, false)] {
        let channel = connection.create_channel().await.unwrap();
        channel.confirm_select(Default::default()).await.unwrap();
        let properties = BasicProperties::default().with_user_id(user_id.into());
        let published = async {
            channel
                .basic_publish(EXCHANGE.into(), "sessanger1".into(), BasicPublishOptions::default(), revoke, properties)
                .await?
                .await
        };
        assert_eq!(published.await.is_ok(), genuine, "a user_id of `{user_id}`: only the connection's own passes");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(world.sessions("ok1").await.len(), 1, "no request revoked anything");
    assert!(world.admin.user_exists("ok1").await.unwrap());
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_vhost_takes_the_users_vhost_and_its_messages_with_the_last_session() {
    let mut world = World::new(ONE_KEY, |broker| broker.remove_vhost = true).await;
    world.start("sessanger1").await;
    let client = world.client().await;

    let first = client.login(&user("sysadm"), Some("sysadm"), None).await.unwrap();
    let second = client.login(&user("sysadm"), Some("sysadm"), None).await.unwrap();
    let own = connect_as(&world.config, "sysadm", "sysadm", "sysadm").await.unwrap();
    let channel = own.create_channel().await.unwrap();
    let durable = lapin::options::QueueDeclareOptions::durable();
    channel.queue_declare("inbox".into(), durable, FieldTable::default()).await.unwrap();
    own.close(200, "done".into()).await.unwrap();

    client.logout(&first.session.session_id).await.unwrap();
    assert!(world.admin.vhost_exists("sysadm").await.unwrap(), "another session still uses the vhost");
    client.logout(&second.session.session_id).await.unwrap();
    assert!(!world.admin.vhost_exists("sysadm").await.unwrap(), "the last logout removes the vhost");
    assert!(!world.admin.user_exists("sysadm").await.unwrap());

    // The next login starts with an empty vhost.
    client.login(&user("sysadm"), Some("sysadm"), None).await.unwrap();
    let own = connect_as(&world.config, "sysadm", "sysadm", "sysadm").await.unwrap();
    let channel = own.create_channel().await.unwrap();
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    assert!(channel.queue_declare("inbox".into(), passive, FieldTable::default()).await.is_err(), "the queue went too");
    world.finish().await;
}

/// A queue of the test's own bound to every event on the exchange, and what arrives on it:
/// how many times each `message_id` came.
struct EventQueue {
    _connection: Connection,
    deliveries: lapin::Consumer,
}

impl EventQueue {
    async fn bind(world: &World) -> EventQueue {
        use lapin::{
            ExchangeKind,
            options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
        };
        let config = &world.config;
        let manager = &config.manager;
        let connection = connect_as(config, &manager.login, manager.password().unwrap(), config.vhost()).await.unwrap();
        let channel = connection.create_channel().await.unwrap();
        let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
        channel
            .exchange_declare(EVENTS_EXCHANGE.into(), ExchangeKind::Topic, durable, FieldTable::default())
            .await
            .unwrap();
        let queue = format!("{}-events", manager.login);
        let options = QueueDeclareOptions::durable();
        channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await.unwrap();
        let bind = QueueBindOptions::default();
        channel
            .queue_bind(queue.as_str().into(), EVENTS_EXCHANGE.into(), "session.#".into(), bind, FieldTable::default())
            .await
            .unwrap();
        let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
        let deliveries =
            channel.basic_consume(queue.as_str().into(), "".into(), no_ack, FieldTable::default()).await.unwrap();
        EventQueue { _connection: connection, deliveries }
    }

    /// Counts deliveries by message id until every id of `expected` came, or 30 s passed.
    async fn until_all(&mut self, expected: &[EventId]) -> HashMap<EventId, u32> {
        let mut seen: HashMap<EventId, u32> = HashMap::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !expected.iter().all(|id| seen.contains_key(id)) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some(Ok(delivery))) = tokio::time::timeout(left, self.deliveries.next()).await else { break };
            let id = delivery.properties.message_id().as_ref().expect("a message id").as_str().parse().unwrap();
            let body: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
            assert_eq!(body["id"], serde_json::json!(id), "the message id is the event id");
            assert_eq!(delivery.routing_key.as_str(), format!("session.{}", body["type"].as_str().unwrap()));
            *seen.entry(id).or_default() += 1;
        }
        seen
    }
}

fn relay_options(world: &World) -> RelayOptions {
    RelayOptions { lease: Duration::from_secs(2), ..RelayOptions::from_options(&world.config, true).unwrap() }
}

async fn every_event_id(manager: &SessionManager) -> Vec<EventId> {
    let log = manager.event_log().unwrap();
    log.read_events(None, 100_000).await.unwrap().into_iter().map(|e| e.id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_exchange_at_least_once_while_rabbitmq_restarts() {
    let world = World::new(ONE_KEY, |_| {}).await;
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), Default::default());
    // The durable queue is bound now and read after the restart: it keeps what arrives meanwhile.
    drop(EventQueue::bind(&world).await);
    let (stop, stopped) = oneshot::channel::<()>();
    let relaying = tokio::spawn(relay(manager.clone(), relay_options(&world), async {
        let _ = stopped.await;
    }));
    // A burst of 300 logins over ~3 s, with the broker down for a second in the middle.
    let burst = {
        let manager = manager.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                let user: UserId = format!("burst{}", i % 7).parse().unwrap();
                manager.create_session(&user, Default::default()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stopped_broker = world.stop_rabbitmq().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stopped_broker.start().await;
    burst.await.unwrap();

    let expected = every_event_id(&manager).await;
    assert_eq!(expected.len(), 300);
    let seen = EventQueue::bind(&world).await.until_all(&expected).await;
    let missing: Vec<_> = expected.iter().filter(|id| !seen.contains_key(id)).collect();
    assert!(missing.is_empty(), "events that never reached the exchange: {missing:?}");
    let duplicates: u32 = seen.values().map(|n| n - 1).sum();
    println!(
        "{} events, {duplicates} delivered again after the restart (consumers drop them by message id)",
        seen.len()
    );
    let _ = stop.send(());
    relaying.await.unwrap();
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_on_one_store_forward_each_event_once_and_the_survivor_takes_over() {
    let world = World::new(ONE_KEY, |_| {}).await;
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), Default::default());
    let mut queue = EventQueue::bind(&world).await;
    let (first_stop, first_stopped) = oneshot::channel::<()>();
    let first = tokio::spawn(relay(manager.clone(), relay_options(&world), async {
        let _ = first_stopped.await;
    }));
    let (second_stop, second_stopped) = oneshot::channel::<()>();
    let second = tokio::spawn(relay(manager.clone(), relay_options(&world), async {
        let _ = second_stopped.await;
    }));
    let user: UserId = "relayed".parse().unwrap();
    for _ in 0..50 {
        manager.create_session(&user, Default::default()).await.unwrap();
    }
    let seen = queue.until_all(&every_event_id(&manager).await).await;
    assert_eq!(seen.len(), 50);
    assert!(seen.values().all(|n| *n == 1), "without faults each event is published once: {seen:?}");

    // Stop both in turn: whichever held the lease, the other takes over within the lease.
    let _ = first_stop.send(());
    first.await.unwrap();
    for _ in 0..20 {
        manager.create_session(&user, Default::default()).await.unwrap();
    }
    let seen = queue.until_all(&every_event_id(&manager).await[50..]).await;
    assert_eq!(seen.len(), 20, "the relay left running forwards the rest");
    let _ = second_stop.send(());
    second.await.unwrap();
    world.finish().await;
}
