//! Real RabbitMQ (`SESSANGER_TEST_AMQP_URL`, default `127.0.0.1:5672`, management API on
//! port 15672 with guest:guest) and real PAM (`/etc/pam.d/sessanger-test` and the Linux users
//! sysadm, ok1 and om1, whose passwords are their names): `scripts/amqp-setup` prepares both.
//! These tests fail, never skip, when RabbitMQ is unreachable.
//!
//! Each test gets its own manager account and vhost (`sessanger-t<random>`), so runs never
//! share queues. The Linux users, and so their broker accounts, are the machine's: the tests
//! take turns on them through one lock.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicConsumeOptions, BasicPublishOptions},
    types::FieldTable,
};
use sessanger_amqp::{
    AmqpClient, BrokerOptions, ClientError, EXCHANGE, REPLY_TO, ReplyCode, Responder, RoutingKey, ServeOptions,
    broker::{BrokerAdmin, Provisioner},
    message::Reply,
    serve,
};
use sessanger_core::{Clock, ManualClock, SessionManager, SystemClock, UserId};
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
        config.routing_keys = routing_keys
            .iter()
            .map(|(key, users)| (key.to_string(), users.iter().map(|u| u.to_string()).collect()))
            .collect();
        config.pam_service = "sessanger-test".into();
        configure(&mut config);
        let admin = BrokerAdmin::new(config.management_url(), ADMIN.0, ADMIN.1);
        admin
            .setup_manager(&config.login, &config.password)
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

    async fn client(&self) -> AmqpClient {
        AmqpClient::from_options(&self.config)
            .await
            .expect("connecting the client")
            .with_timeout(Duration::from_secs(10))
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
        let login = &self.config.login;
        let _ = self.admin.delete_vhost(login).await;
        let _ = self.admin.delete_user(login).await;
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

/// Opens an AMQP connection as `login` to `vhost`.
async fn connect_as(config: &BrokerOptions, login: &str, password: &str, vhost: &str) -> lapin::Result<Connection> {
    let uri = config.uri(login, password, vhost).unwrap();
    Connection::connect_uri(uri, ConnectionProperties::default()).await
}

fn remote_code(error: &ClientError) -> Option<ReplyCode> {
    error.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_of_seed_example_2_each_serve_their_own_users() {
    let mut world = World::new(TWO_KEYS, |_| {}).await;
    world.start("sessanger1").await;
    world.start("sessanger2").await;
    let client = world.client().await;

    let sysadm = client.login(&user("sysadm"), "sysadm", Some("laptop".into())).await.unwrap();
    assert_eq!(sysadm.routing_key, "sessanger1");
    assert_eq!((sysadm.broker.user.as_str(), sysadm.broker.vhost.as_str()), ("sysadm", "sysadm"));
    assert_eq!(sysadm.session.device.device_id.as_deref(), Some("laptop"));
    let om1 = client.login(&user("om1"), "om1", None).await.unwrap();
    assert_eq!(om1.routing_key, "sessanger2");

    // The session-id requests find the right manager by themselves.
    assert_eq!(client.get(&om1.session.session_id).await.unwrap().user_id, user("om1"));
    assert_eq!(client.refresh(&sysadm.session.session_id).await.unwrap().user_id, user("sysadm"));
    assert_eq!(client.list(&user("sysadm")).await.unwrap().len(), 1);
    assert_eq!(client.revoke_all(&user("om1")).await.unwrap(), 1);
    assert!(!world.admin.user_exists("om1").await.unwrap(), "revoke_all of the last session removes the account");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_for_another_managers_user_gets_wrong_manager_naming_the_right_key() {
    let mut world = World::new(TWO_KEYS, |_| {}).await;
    world.start("sessanger1").await;
    world.start("sessanger2").await;
    let client = world.client().await;

    let error = client.login_via(&key("sessanger1"), &user("om1"), "om1", None).await.unwrap_err();
    let ClientError::Remote(failure) = error else { panic!("expected a manager's answer, got {error:?}") };
    assert_eq!(failure.code, ReplyCode::WrongManager);
    assert_eq!(failure.routing_key.as_deref(), Some("sessanger2"));
    assert!(!world.admin.user_exists("om1").await.unwrap(), "the wrong manager created nothing");

    let error = client.list(&user("nobody")).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ReplyCode::NoManager));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_user_opens_its_own_vhost_only() {
    let mut world = World::new(TWO_KEYS, |_| {}).await;
    world.start("sessanger1").await;
    world.start("sessanger2").await;
    let client = world.client().await;
    client.login(&user("sysadm"), "sysadm", None).await.unwrap();
    client.login(&user("om1"), "om1", None).await.unwrap();

    let own = connect_as(&world.config, "sysadm", "sysadm", "sysadm").await.expect("sysadm opens vhost sysadm");
    let channel = own.create_channel().await.unwrap();
    channel
        .queue_declare("inbox".into(), lapin::options::QueueDeclareOptions::default(), Default::default())
        .await
        .expect("sysadm may configure its own vhost");
    own.close(200, "done".into()).await.unwrap();
    assert!(connect_as(&world.config, "sysadm", "sysadm", "om1").await.is_err(), "vhost om1 is refused");
    let managers = world.config.login.clone();
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

    let error = client.login(&user("ok1"), "not-the-password", None).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ReplyCode::AuthFailed), "{error}");
    assert!(!world.admin.user_exists("ok1").await.unwrap());
    assert!(client.list(&user("ok1")).await.unwrap().is_empty());
    // The next attempt waits out the penalty, then succeeds.
    let started = std::time::Instant::now();
    client.login(&user("ok1"), "ok1", None).await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200), "a repeated attempt is slowed down");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_example_1_gives_every_broker_user_the_configured_password() {
    let mut world = World::new(ONE_KEY, |broker| broker.user_password = Some("123".into())).await;
    world.start("sessanger1").await;
    let client = world.client().await;

    let login = client.login(&user("ok1"), "ok1", None).await.unwrap();
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

    let first = client.login(&user("sysadm"), "sysadm", None).await.unwrap();
    let second = client.login(&user("sysadm"), "sysadm", None).await.unwrap();
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

    let login = client.login(&user("ok1"), "ok1", None).await.unwrap();
    client.logout(&login.session.session_id).await.unwrap();
    assert!(client.list(&user("ok1")).await.unwrap().is_empty(), "the session is gone");
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
    assert_eq!(client.login(&user("sysadm"), "sysadm", None).await.unwrap().routing_key, "sessanger1");
    assert_eq!(client.login(&user("om1"), "om1", None).await.unwrap().routing_key, "sessanger2");
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
        let result = client.login(&user("sysadm"), "sysadm", None).await;
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
    let error = client.list(&user("sysadm")).await.unwrap_err();
    assert!(matches!(error, ClientError::Disconnected), "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(1));

    drop(held);
    stopped.start().await;
    let client = world.client().await;
    assert_eq!(client.login(&user("sysadm"), "sysadm", None).await.unwrap().routing_key, "sessanger1");
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

    client.login(&user("om1"), "om1", None).await.unwrap();
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
    let provisioner = Provisioner::new(world.admin.clone(), format!("{}-missing", world.config.login));
    provisioner.provision(&user("ok1"), "ok1").await.unwrap_err();
    assert!(!world.admin.user_exists("ok1").await.unwrap(), "the new user was rolled back");
    assert!(!world.admin.vhost_exists("ok1").await.unwrap(), "the new vhost was rolled back");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_delivered_twice_runs_once_and_both_get_its_reply() {
    let mut world = World::new(ONE_KEY, |_| {}).await;
    let responder = world.start("sessanger1").await;
    let config = &world.config;
    let connection = connect_as(config, &config.login, &config.password, &config.login).await.unwrap();
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
