//! The binary's AMQP commands end to end, on the real RabbitMQ, PAM and pamtester that
//! `scripts/amqp-setup` prepares: `broker setup`, the managers (`amqp` alone, and beside HTTP
//! in `serve`), the clients `login` and `logout` on a config without the managers' password,
//! the README's walkthrough as printed, and `pam-exec` driven by PAM itself. Fails, never
//! skips, when RabbitMQ is unreachable.
//!
//! The Linux users sysadm, ok1 and om1, and so their broker accounts, are the machine's: the
//! tests take turns on them through one lock.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use lapin::{Connection, ConnectionProperties};
use serde_json::Value;
use tokio::sync::{Mutex, MutexGuard};

// Shared by several test binaries: this one uses the servers and stores.
#[allow(dead_code)]
mod common;

const BIN: &str = env!("CARGO_BIN_EXE_sessanger");
const API: &str = "http://127.0.0.1:15672/api";

static USERS: Mutex<()> = Mutex::const_new(());

/// Runs `sessanger ARGS` in `dir` with `env`, `stdin` as standard input.
fn sessanger(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("SESSANGER_CONFIG")
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sessanger runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn succeeded(output: &Output) -> Value {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
}

/// A background process, killed when dropped.
struct Running(Child);

impl Running {
    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let child = Command::new(BIN)
            .args(args)
            .current_dir(dir)
            .env_remove("SESSANGER_CONFIG")
            .envs(env.iter().copied())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Running(child)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn api(method: reqwest::Method, path: &str) -> Option<Value> {
    let response = sessanger_testkit::tls::http()
        .build()
        .unwrap()
        .request(method, format!("{API}/{path}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("RabbitMQ's management API must answer on 127.0.0.1:15672 (run scripts/amqp-setup)");
    response.status().is_success().then_some(())?;
    Some(response.json().await.unwrap_or(Value::Null))
}

async fn broker_get(path: &str) -> Option<Value> {
    api(reqwest::Method::GET, path).await
}

async fn broker_delete(path: &str) {
    api(reqwest::Method::DELETE, path).await;
}

/// Waits until every routing key of `keys` has a consumer in `vhost`.
async fn consuming(vhost: &str, keys: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    for key in keys {
        loop {
            let queue = broker_get(&format!("queues/{vhost}/sessanger.{key}")).await;
            if queue.is_some_and(|q| q["consumers"].as_u64() >= Some(1)) {
                break;
            }
            assert!(Instant::now() < deadline, "no manager consumes `{key}`");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} never happened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(login: &str, password: &str, vhost: &str) -> lapin::Result<Connection> {
    let uri = format!("amqp://{login}:{password}@127.0.0.1:5672/{vhost}");
    Connection::connect(&uri, ConnectionProperties::default()).await
}

/// A test's own managers' and clients' accounts (`sessanger-c<random>`), with a managers'
/// config and a clients' config (which holds no password of the managers) in `dir`.
struct Accounts {
    dir: tempfile::TempDir,
    manager: String,
    client: String,
    _turn: MutexGuard<'static, ()>,
}

impl Accounts {
    /// `broker_extra` is added to the managers' `broker:` section.
    async fn new(broker_extra: &str) -> Accounts {
        let turn = USERS.lock().await;
        for user in ["sysadm", "ok1", "om1"] {
            broker_delete(&format!("users/{user}")).await;
        }
        let dir = tempfile::tempdir().unwrap();
        let manager = format!("sessanger-c{}", &sessanger_core::SessionId::generate().as_ref()[..10]);
        let client = format!("{manager}-client");
        let common = format!(
            "  url: 127.0.0.1:5672\n  client: {{login: {client}, password: {client}}}\n  routing_keys:\n    \
             sessanger1: [sysadm, ok1]\n    sessanger2: [om1]\n  pam_service: sessanger-test\n"
        );
        let managers = format!(
            "session:\n  routing_key: ${{BROKER_ROUTING_KEY:-sessanger1}}\nstore:\n  url: memory://\nbroker:\n  \
             sessanger: {{login: {manager}, password: {manager}}}\n{common}{broker_extra}"
        );
        std::fs::write(dir.path().join("managers.yaml"), managers).unwrap();
        std::fs::write(dir.path().join("client.yaml"), format!("broker:\n  sessanger: {{login: {manager}}}\n{common}"))
            .unwrap();
        let accounts = Accounts { dir, manager, client, _turn: turn };
        succeeded(&accounts.run(&["broker", "setup", "--config", "managers.yaml", "--admin-user", "guest:guest"], ""));
        accounts
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run(&self, args: &[&str], stdin: &str) -> Output {
        sessanger(self.dir.path(), args, &[], stdin)
    }

    /// `sessanger amqp` for each routing key, consuming.
    async fn managers(&self, keys: &[&str]) -> Vec<Running> {
        let running = keys
            .iter()
            .map(|key| {
                Running::spawn(self.dir.path(), &["amqp", "--config", "managers.yaml"], &[("BROKER_ROUTING_KEY", key)])
            })
            .collect();
        consuming(&self.manager, keys).await;
        running
    }

    async fn finish(self) {
        for user in ["sysadm", "ok1", "om1"] {
            broker_delete(&format!("users/{user}")).await;
        }
        broker_delete(&format!("vhosts/{}", self.manager)).await;
        broker_delete(&format!("users/{}", self.manager)).await;
        broker_delete(&format!("users/{}", self.client)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_broker_section_serves_clients_that_hold_no_password_of_the_managers() {
    let accounts = Accounts::new("").await;
    succeeded(&accounts.run(&["broker", "setup", "--config", "managers.yaml", "--admin-user", "guest:guest"], ""));
    let manager = broker_get(&format!("users/{}", accounts.manager)).await.expect("the managers' account exists");
    assert!(manager["tags"].to_string().contains("administrator"), "{manager}");
    let client = broker_get(&format!("users/{}", accounts.client)).await.expect("the clients' account exists");
    assert_eq!(client["tags"], serde_json::json!([]), "the clients' account has no tag");

    let data = accounts.path("data");
    let _server = Running::spawn(
        accounts.dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--config", "managers.yaml", "--data-dir", data.to_str().unwrap()],
        &[("BROKER_ROUTING_KEY", "sessanger1")],
    );
    consuming(&accounts.manager, &["sessanger1"]).await;

    let reply = succeeded(&accounts.run(&["login", "sysadm", "--config", "client.yaml"], "sysadm\n"));
    assert_eq!(
        (reply["routing_key"].as_str(), reply["broker"]["vhost"].as_str()),
        (Some("sessanger1"), Some("sysadm"))
    );
    let session_id = reply["session"]["session_id"].as_str().unwrap().to_owned();
    assert!(broker_get("users/sysadm").await.is_some());

    let refused = accounts.run(&["login", "ok1", "--config", "client.yaml"], "wrong\n");
    assert!(String::from_utf8_lossy(&refused.stderr).starts_with("auth_failed"), "{refused:?}");
    let wrong = accounts.run(&["login", "om1", "--config", "client.yaml", "--routing-key", "sessanger1"], "om1\n");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(stderr.starts_with("wrong_manager") && stderr.contains("sessanger2"), "{stderr}");

    succeeded(&accounts.run(&["logout", &session_id, "--config", "client.yaml"], ""));
    assert!(broker_get("users/sysadm").await.is_none(), "the last logout removes the broker account");

    // A client's config cannot run a manager: it has no managers' password.
    let manager = accounts.run(&["amqp", "--config", "client.yaml"], "");
    assert!(!manager.status.success());
    let stderr = String::from_utf8_lossy(&manager.stderr);
    assert!(
        stderr.contains(&format!("no password is configured for broker account `{}`", accounts.manager)),
        "{stderr}"
    );
    accounts.finish().await;
}

/// The README's "Run the RabbitMQ session managers", command by command, on the example
/// configs as shipped (so on the accounts `sessanger` and `sessanger-client`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walkthrough_runs_as_printed() {
    let _turn = USERS.lock().await;
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config").canonicalize().unwrap();
    let (managers, client) = (examples.join("two-managers.yaml"), examples.join("client.yaml"));
    let (managers, client) = (managers.to_str().unwrap(), client.to_str().unwrap());
    for path in ["vhosts/sessanger", "users/sessanger", "users/sessanger-client", "users/sysadm", "users/om1"] {
        broker_delete(path).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], stdin: &str| sessanger(dir.path(), args, &[], stdin);

    let setup = ["broker", "setup", "--config", managers, "--admin-url", "http://127.0.0.1:15672", "--admin-user"];
    succeeded(&run(&[&setup[..], &["guest:guest"]].concat(), ""));
    let _first = Running::spawn(dir.path(), &["amqp", "--config", managers], &[("BROKER_ROUTING_KEY", "sessanger1")]);
    let _second = Running::spawn(dir.path(), &["amqp", "--config", managers], &[("BROKER_ROUTING_KEY", "sessanger2")]);
    consuming("sessanger", &["sessanger1", "sessanger2"]).await;

    let sysadm = succeeded(&run(&["login", "sysadm", "--config", client], "sysadm\n"));
    assert_eq!(sysadm["routing_key"], "sessanger1");
    let om1 = succeeded(&run(&["login", "om1", "--config", client], "om1\n"));
    assert_eq!(om1["routing_key"], "sessanger2", "the second manager serves om1");
    assert!(broker_get("users/sysadm").await.is_some() && broker_get("users/om1").await.is_some());
    for (reply, user) in [(sysadm, "sysadm"), (om1, "om1")] {
        let session_id = reply["session"]["session_id"].as_str().unwrap();
        let out = succeeded(&run(&["logout", session_id, "--config", client], ""));
        assert_eq!(out["user_id"], user);
        assert!(broker_get(&format!("users/{user}")).await.is_none(), "the last logout removes {user}'s broker user");
    }
    for path in ["vhosts/sessanger", "users/sessanger", "users/sessanger-client"] {
        broker_delete(path).await;
    }
}

/// A PAM service of this test's own: pam_unix for the password, sessanger's hooks as the
/// example `/etc/pam.d/sessanger` has them (but `required`, so a failing hook fails
/// pamtester), and a gate that holds each session open while `hold-<tty>` exists.
struct PamService {
    name: String,
}

impl PamService {
    fn new(accounts: &Accounts) -> PamService {
        // Linux-PAM lower-cases service names: a file named otherwise is never read, and
        // /etc/pam.d/other answers instead.
        let name = format!("sessanger-pamtest-{}", &accounts.manager["sessanger-c".len()..]).to_lowercase();
        let dir = accounts.dir.path().display();
        let hook = format!("{BIN} pam-exec --config {dir}/client.yaml --state-dir {dir}/state");
        let gate = format!(
            "PATH=/usr/bin:/bin\ni=0\nwhile [ -e \"{dir}/hold-$PAM_TTY\" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done\n"
        );
        std::fs::write(accounts.path("gate.sh"), gate).unwrap();
        let service = format!(
            "auth     required pam_unix.so nodelay\n\
             auth     required pam_exec.so expose_authtok quiet log={dir}/pam.log {hook}\n\
             account  required pam_unix.so\n\
             session  required pam_exec.so quiet log={dir}/pam.log {hook}\n\
             session  required pam_exec.so quiet type=open_session /bin/sh {dir}/gate.sh\n"
        );
        std::fs::write(format!("/etc/pam.d/{name}"), service).expect("writing /etc/pam.d (run the tests as root)");
        PamService { name }
    }

    /// `pamtester -I tty=TTY SERVICE USER OPERATIONS...`, the password on stdin.
    fn login(&self, tty: &str, user: &str, operations: &[&str], password: &str) -> Child {
        let mut child = Command::new("pamtester")
            .args(["-I", &format!("tty={tty}"), &self.name, user])
            .args(operations)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("pamtester must be installed (scripts/amqp-setup)");
        child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
        child
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        if std::env::var_os("SESSANGER_KEEP_PAM").is_none() {
            let _ = std::fs::remove_file(format!("/etc/pam.d/{}", self.name));
        }
    }
}

fn files(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, Iterator::count)
}

fn ended(child: Child, accounts: &Accounts) {
    let output = child.wait_with_output().unwrap();
    let log = std::fs::read_to_string(accounts.path("pam.log")).unwrap_or_default();
    assert!(output.status.success(), "pamtester: {}\nhook log:\n{log}", String::from_utf8_lossy(&output.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pam_session_holds_the_broker_account_from_open_to_its_last_close() {
    let accounts = Accounts::new("").await;
    let _managers = accounts.managers(&["sessanger1", "sessanger2"]).await;
    let pam = PamService::new(&accounts);
    let (open, pending) = (accounts.path("state/open"), accounts.path("state/pending"));

    std::fs::write(accounts.path("hold-a"), "").unwrap();
    let first = pam.login("a", "sysadm", &["authenticate", "open_session", "close_session"], "sysadm");
    until("the first PAM session opening", async || files(&open) == 1).await;
    assert_eq!(files(&pending), 0, "open_session took the session the auth phase opened");
    let user = connect("sysadm", "sysadm", "sysadm").await.expect("the broker password is the login password");

    std::fs::write(accounts.path("hold-b"), "").unwrap();
    let second = pam.login("b", "sysadm", &["authenticate", "open_session", "close_session"], "sysadm");
    until("the second PAM session opening", async || files(&open) == 2).await;

    std::fs::remove_file(accounts.path("hold-a")).unwrap();
    ended(first, &accounts);
    assert_eq!(files(&open), 1);
    assert!(broker_get("users/sysadm").await.is_some(), "the second login still holds the account");
    assert!(user.status().connected());

    std::fs::remove_file(accounts.path("hold-b")).unwrap();
    ended(second, &accounts);
    assert_eq!(files(&open), 0);
    assert!(broker_get("users/sysadm").await.is_none(), "the last close removes the broker user");
    until("the user's connection closing", async || !user.status().connected()).await;
    drop(pam);
    accounts.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pam_session_without_a_password_opens_through_an_admin_client() {
    let accounts = Accounts::new("").await;
    let pam = PamService::new(&accounts);
    // The clients' account is no admin yet: a session without a password is refused.
    let managers = accounts.managers(&["sessanger1"]).await;
    let refused = pam.login("c", "ok1", &["open_session"], "");
    let output = refused.wait_with_output().unwrap();
    assert!(!output.status.success(), "a client without the user's password opened a session");
    let log = std::fs::read_to_string(accounts.path("pam.log")).unwrap_or_default();
    assert!(log.contains("forbidden"), "{log}");
    drop(managers);
    let queue = format!("queues/{}/sessanger.sessanger1", accounts.manager);
    until("the killed manager's consumer going", async || {
        broker_get(&queue).await.is_some_and(|q| q["consumers"].as_u64() == Some(0))
    })
    .await;

    // Listed in broker.admins, with a broker password for users: an SSH-key login.
    let admins = format!("  admins: [{}]\n  user: {{password: 123}}\n", accounts.client);
    let text = std::fs::read_to_string(accounts.path("managers.yaml")).unwrap() + &admins;
    std::fs::write(accounts.path("managers.yaml"), text).unwrap();
    let _managers = accounts.managers(&["sessanger1"]).await;
    std::fs::write(accounts.path("hold-c"), "").unwrap();
    let login = pam.login("c", "ok1", &["open_session", "close_session"], "");
    let open = accounts.path("state/open");
    until("the PAM session opening", async || files(&open) == 1).await;
    let user = connect("ok1", "123", "ok1").await.expect("the broker password is broker.user.password");
    std::fs::remove_file(accounts.path("hold-c")).unwrap();
    ended(login, &accounts);
    assert!(broker_get("users/ok1").await.is_none(), "closing the session removes the broker user");
    until("the user's connection closing", async || !user.status().connected()).await;
    drop(pam);
    accounts.finish().await;
}

/// Three nodes on one Redis, each with its reaper and its relay, 1 000 sessions of a 2 s TTL,
/// and one node SIGKILLed while they expire: exactly 1 000 `expired` events, none twice, none
/// missing, on a survivor's event stream and on the `sessanger.events` exchange (where the
/// relay may send one again after the kill, under the same message id).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_redis_record_each_expiry_once_while_one_is_killed() {
    use std::collections::{HashMap, HashSet};

    use common::{FreshStore, Server, StoreKind, admin_token, data_dir};
    use futures::StreamExt;
    use lapin::{
        ExchangeKind,
        options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
        types::FieldTable,
    };
    use sessanger_client::{Client, Received};
    use sessanger_core::{EventFilter, wire::CreateSession};

    const SESSIONS: usize = 1000;
    let accounts = Accounts::new("").await;
    let store = FreshStore::new(StoreKind::Redis);
    // The managers' config, reaping often. The first node makes the admin token, in the store
    // the others share.
    let managers = std::fs::read_to_string(accounts.path("managers.yaml")).unwrap();
    let nodes_config = accounts.path("nodes.yaml");
    std::fs::write(&nodes_config, managers.replacen("session:\n", "session:\n  gc_interval: 200ms\n", 1)).unwrap();
    let mut flags = vec!["--config", nodes_config.to_str().unwrap()];
    flags.extend(store.flags());
    let dirs: Vec<_> = (0..3).map(|_| data_dir()).collect();
    let mut nodes: Vec<Option<Server>> =
        dirs.iter().map(|(_, dir)| Some(Server::start_with(dir, &flags, &[]))).collect();
    let url = |i: usize| nodes[i].as_ref().unwrap().url.clone();
    let on_b = Client::new(&url(1), &admin_token(&dirs[0].1)).unwrap();
    let on_c = Client::new(&url(2), &admin_token(&dirs[0].1)).unwrap();

    // A queue of the test's own on the exchange, bound to expiries.
    let connection = connect(&accounts.manager, &accounts.manager, &accounts.manager).await.unwrap();
    let channel = connection.create_channel().await.unwrap();
    let durable = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel
        .exchange_declare("sessanger.events".into(), ExchangeKind::Topic, durable, FieldTable::default())
        .await
        .unwrap();
    let exclusive = QueueDeclareOptions { exclusive: true, ..QueueDeclareOptions::default() };
    let queue = channel.queue_declare("".into(), exclusive, FieldTable::default()).await.unwrap();
    let bind = QueueBindOptions::default();
    let expired = "session.expired".into();
    channel
        .queue_bind(queue.name().clone(), "sessanger.events".into(), expired, bind, FieldTable::default())
        .await
        .unwrap();
    let no_ack = BasicConsumeOptions { no_ack: true, ..BasicConsumeOptions::default() };
    let mut deliveries =
        channel.basic_consume(queue.name().clone(), "".into(), no_ack, FieldTable::default()).await.unwrap();

    // The survivor's stream of expiries, from what happens next.
    let mut stream = on_c.events(EventFilter::default().with_types("expired").unwrap(), None);
    let streamed = tokio::spawn(async move {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        // Until 1 000 came, then 3 s more to catch any repeat.
        let mut until = deadline;
        while let Ok(next) = tokio::time::timeout(until.saturating_duration_since(Instant::now()), stream.next()).await
        {
            if let Ok(Received::Event(event)) = next {
                seen.push((event.id, event.session_id.expect("session ids are on")));
                if seen.len() == SESSIONS {
                    until = Instant::now() + Duration::from_secs(3);
                }
            }
        }
        seen
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let created_at = Instant::now();
    let mut created = HashSet::new();
    let mut batches = futures::stream::iter(0..SESSIONS)
        .map(|i| {
            let on_b = &on_b;
            async move {
                let new = CreateSession {
                    session_id: None,
                    user_id: format!("reaped{}", i % 50).parse().unwrap(),
                    device_id: None,
                    ip: None,
                    user_agent: None,
                    attributes: Default::default(),
                    ttl_secs: Some(2),
                    absolute_expires_at: None,
                };
                on_b.create_session(&new).await.unwrap().session_id
            }
        })
        .buffer_unordered(32);
    while let Some(id) = batches.next().await {
        created.insert(id);
    }
    assert_eq!(created.len(), SESSIONS);
    // The first sessions are dying: node A goes down mid-sweep, as a crash would.
    tokio::time::sleep(Duration::from_secs(2).saturating_sub(created_at.elapsed()) + Duration::from_millis(100)).await;
    nodes[0].take().unwrap().kill();

    let streamed = streamed.await.unwrap();
    let ids: HashSet<_> = streamed.iter().map(|(id, _)| *id).collect();
    let sessions: HashSet<_> = streamed.iter().map(|(_, session)| session.clone()).collect();
    assert_eq!(streamed.len(), SESSIONS, "each expiry streamed once");
    assert_eq!(ids.len(), SESSIONS);
    assert_eq!(sessions, created, "none missing");

    // The exchange: every expiry at least once; one message id per session, and a repeat
    // only ever under the same id.
    let mut by_message: HashMap<String, String> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while by_message.len() < SESSIONS {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(Ok(delivery))) = tokio::time::timeout(left, deliveries.next()).await else { break };
        let id = delivery.properties.message_id().as_ref().expect("a message id").to_string();
        let body: Value = serde_json::from_slice(&delivery.data).unwrap();
        let session = body["session_id"].as_str().unwrap().to_owned();
        let previous = by_message.insert(id.clone(), session.clone());
        assert!(previous.is_none_or(|before| before == session), "message id {id} names one event");
    }
    assert_eq!(by_message.len(), SESSIONS, "every expiry reached the exchange");
    let relayed: HashSet<_> = by_message.values().cloned().collect();
    assert_eq!(relayed.len(), SESSIONS, "one event per session");
    assert_eq!(relayed, created.iter().map(|id| id.as_ref().to_owned()).collect());

    drop(connection);
    for node in nodes.into_iter().flatten() {
        node.stop();
    }
    accounts.finish().await;
}
