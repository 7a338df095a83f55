//! Real RabbitMQ (`SESSANGER_TEST_AMQP_URL`, default `127.0.0.1:5672`, management API on
//! port 15672 with guest:guest) and real PAM (`/etc/pam.d/sessanger-test` and the Linux users
//! sysadm, ok1 and om1, whose passwords are their names): `scripts/amqp-setup` prepares both.
//! These tests fail, never skip, when RabbitMQ is unreachable.
//!
//! Each test gets its own manager account and vhost (`sessanger-t<random>`), so runs never
//! share queues. The Linux users, and so their broker accounts, are the machine's: the tests
//! take turns on them through one lock.

use std::{sync::Arc, time::Duration};

use lapin::{Connection, ConnectionProperties};
use sessanger_amqp::{
    AmqpClient, ClientError, ErrorCode, Manager, ManagerOptions, RoutingKey,
    broker::{BrokerAdmin, Provisioner},
    serve,
};
use sessanger_core::{
    Clock, ManualClock, SessionManager, SystemClock, UserId,
    config::{BrokerConfig, Config, Format},
};
use sessanger_store_memory::MemoryStore;
use tokio::sync::{Mutex, MutexGuard, oneshot};

const ADMIN: (&str, &str) = ("guest", "guest");

/// The machine's Linux users are shared by every test.
static USERS: Mutex<()> = Mutex::const_new(());

fn amqp_host() -> String {
    std::env::var("SESSANGER_TEST_AMQP_URL").unwrap_or_else(|_| "127.0.0.1:5672".into())
}

fn user(name: &str) -> UserId {
    name.parse().unwrap()
}

fn key(name: &str) -> RoutingKey {
    name.parse().unwrap()
}

/// One test's world: a fresh manager account and vhost, and the broker config around them.
struct World {
    config: BrokerConfig,
    admin: BrokerAdmin,
    managers: Vec<(Arc<Manager>, oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    _turn: MutexGuard<'static, ()>,
}

impl World {
    /// `routing_keys` and `user` as YAML flow text, as the seed writes them.
    async fn new(routing_keys: &str, user_password: Option<&str>) -> World {
        let turn = USERS.lock().await;
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).unwrap();
        let login = format!("sessanger-t{}", id.iter().map(|b| format!("{b:02x}")).collect::<String>());
        let user_section = user_password.map(|p| format!("user: {{password: {p}}}, ")).unwrap_or_default();
        let text = format!(
            "broker: {{url: '{}', sessanger: {{login: {login}, password: {login}}}, {user_section}\
             routing_keys: {routing_keys}, pam_service: sessanger-test}}",
            amqp_host()
        );
        let config = Config::parse(&text, Format::Yaml, "test.yaml").unwrap().broker.unwrap();
        let admin = BrokerAdmin::new(config.management_url(), ADMIN.0, ADMIN.1);
        admin
            .setup_manager(&config.sessanger.login, &config.sessanger.password)
            .await
            .expect("RabbitMQ's management API must answer on 127.0.0.1:15672 (run scripts/amqp-setup)");
        for name in ["sysadm", "ok1", "om1"] {
            admin.delete_user(name).await.unwrap();
        }
        World { config, admin, managers: Vec::new(), _turn: turn }
    }

    /// Starts the manager consuming `routing_key` and waits until it consumes.
    async fn start(&mut self, routing_key: &str) -> Arc<Manager> {
        let sessions = SessionManager::with_policy(Arc::new(MemoryStore::new()), Default::default());
        self.start_on(routing_key, sessions).await
    }

    /// [`World::start`] on the given sessions.
    async fn start_on(&mut self, routing_key: &str, sessions: SessionManager) -> Arc<Manager> {
        let manager = Arc::new(Manager::from_config(sessions, &self.config, key(routing_key)).unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ManagerOptions::from_config(&self.config).unwrap();
        let task = tokio::spawn(serve(options, Arc::clone(&manager), async {
            let _ = stopped.await;
        }));
        tokio::time::timeout(Duration::from_secs(10), manager.ready()).await.expect("manager never consumed");
        self.managers.push((Arc::clone(&manager), stop, task));
        manager
    }

    async fn client(&self) -> AmqpClient {
        AmqpClient::from_config(&self.config)
            .await
            .expect("connecting the client")
            .with_timeout(Duration::from_secs(10))
    }

    /// Stops the managers and deletes the run's manager account and vhost.
    async fn finish(mut self) {
        for (_, stop, task) in self.managers.drain(..) {
            let _ = stop.send(());
            let _ = task.await;
        }
        for name in ["sysadm", "ok1", "om1"] {
            let _ = self.admin.delete_user(name).await;
        }
        let login = &self.config.sessanger.login;
        let _ = self.admin.delete_vhost(login).await;
        let _ = self.admin.delete_user(login).await;
    }
}

/// Opens an AMQP connection as `login` to `vhost`.
async fn connect_as(config: &BrokerConfig, login: &str, password: &str, vhost: &str) -> lapin::Result<Connection> {
    let uri = sessanger_amqp::amqp_uri(config, login, password, vhost).unwrap();
    Connection::connect_uri(uri, ConnectionProperties::default()).await
}

fn remote_code(error: &ClientError) -> Option<ErrorCode> {
    error.code()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_managers_of_seed_example_2_each_serve_their_own_users() {
    let mut world = World::new("{sessanger1: [sysadm, ok1], sessanger2: [om1]}", None).await;
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
    let mut world = World::new("{sessanger1: [sysadm, ok1], sessanger2: [om1]}", None).await;
    world.start("sessanger1").await;
    world.start("sessanger2").await;
    let client = world.client().await;

    let error = client.login_via(&key("sessanger1"), &user("om1"), "om1", None).await.unwrap_err();
    let ClientError::Remote(failure) = error else { panic!("expected a manager's answer, got {error:?}") };
    assert_eq!(failure.code, ErrorCode::WrongManager);
    assert_eq!(failure.routing_key.as_deref(), Some("sessanger2"));
    assert!(!world.admin.user_exists("om1").await.unwrap(), "the wrong manager created nothing");

    let error = client.list(&user("nobody")).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ErrorCode::NoManager));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logged_in_user_opens_its_own_vhost_only() {
    let mut world = World::new("{sessanger1: [sysadm, ok1], sessanger2: [om1]}", None).await;
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
    let managers = world.config.sessanger.login.clone();
    assert!(connect_as(&world.config, "sysadm", "sysadm", &managers).await.is_err(), "the managers' vhost is refused");
    // The manager's account reaches the users' vhosts.
    let manager = connect_as(&world.config, &managers, &managers, "sysadm").await.expect("manager opens vhost sysadm");
    manager.close(200, "done".into()).await.unwrap();
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth_failed_and_creates_no_broker_user() {
    let mut world = World::new("{sessanger1: ['*']}", None).await;
    world.start("sessanger1").await;
    let client = world.client().await;

    let error = client.login(&user("ok1"), "not-the-password", None).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ErrorCode::AuthFailed), "{error}");
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
    let mut world = World::new("{sessanger1: ['*']}", Some("123")).await;
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
    let mut world = World::new("{sessanger1: ['*']}", None).await;
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
    let error = client.get(&second.session.session_id).await.unwrap_err();
    assert_eq!(remote_code(&error), Some(ErrorCode::SessionNotFound));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managers_serve_again_after_rabbitmq_restarts() {
    let mut world = World::new("{sessanger1: [sysadm, ok1], sessanger2: [om1]}", None).await;
    let first = world.start("sessanger1").await;
    let second = world.start("sessanger2").await;

    let rabbitmqctl = |command: &'static str| async move {
        let status =
            tokio::process::Command::new("rabbitmqctl").arg(command).output().await.expect("running rabbitmqctl");
        assert!(status.status.success(), "rabbitmqctl {command}: {}", String::from_utf8_lossy(&status.stderr));
    };
    rabbitmqctl("stop_app").await;
    for manager in [&first, &second] {
        let noticed = async {
            while manager.is_ready() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(10), noticed).await.expect("manager noticed the broker going away");
    }
    rabbitmqctl("start_app").await;
    for manager in [&first, &second] {
        tokio::time::timeout(Duration::from_secs(30), manager.ready()).await.expect("manager reconnected");
    }
    // The management API comes back a moment after AMQP.
    let admin = world.admin.clone();
    tokio::time::timeout(Duration::from_secs(30), async {
        while admin.user_exists("guest").await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .expect("management API back");

    let client = world.client().await;
    assert_eq!(client.login(&user("sysadm"), "sysadm", None).await.unwrap().routing_key, "sessanger1");
    assert_eq!(client.login(&user("om1"), "om1", None).await.unwrap().routing_key, "sessanger2");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_of_the_last_session_removes_the_broker_account() {
    let mut world = World::new("{sessanger1: ['*']}", None).await;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let sessions = SessionManager::with_policy(Arc::new(MemoryStore::new()), Default::default())
        .with_clock(Arc::clone(&clock) as Arc<dyn Clock>);
    let manager = world.start_on("sessanger1", sessions).await;
    let client = world.client().await;

    client.login(&user("om1"), "om1", None).await.unwrap();
    assert!(world.admin.user_exists("om1").await.unwrap());
    clock.advance(manager.sessions().policy().idle_ttl + Duration::from_secs(1));
    assert_eq!(manager.sessions().purge_expired().await.unwrap(), 1);
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
    let world = World::new("{sessanger1: ['*']}", None).await;
    world.admin.delete_vhost("ok1").await.unwrap();
    // Granting the (missing) manager account access is the last step, and fails.
    let provisioner = Provisioner::new(world.admin.clone(), format!("{}-missing", world.config.sessanger.login));
    provisioner.provision(&user("ok1"), "ok1").await.unwrap_err();
    assert!(!world.admin.user_exists("ok1").await.unwrap(), "the new user was rolled back");
    assert!(!world.admin.vhost_exists("ok1").await.unwrap(), "the new vhost was rolled back");
    world.finish().await;
}
