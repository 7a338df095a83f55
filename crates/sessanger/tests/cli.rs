//! The `sessanger` binary end to end: real processes, real HTTP, the embedded store on disk.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Output},
};

use reqwest::StatusCode;
use serde_json::{Value, json};
use sessanger_client::{Client, ErrorCode};
use sessanger_core::{
    Page, Patch, Permission, Version,
    wire::{CreateService, CreateSession},
};

mod common;

use common::{BIN, FreshStore, Server, StoreKind, admin_token, data_dir};

fn sessanger(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("SESSANGER_CONFIG")
        .env_remove("SESSANGER_STORE")
        .env_remove("SESSANGER_TOKEN")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn new_session(user: &str, device: &str) -> CreateSession {
    CreateSession {
        session_id: None,
        user_id: user.parse().unwrap(),
        device_id: Some(device.into()),
        ip: None,
        user_agent: None,
        attributes: Default::default(),
        ttl_secs: None,
        absolute_expires_at: None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn first_start_prints_the_admin_token_once_and_keeps_it_private() {
    let (_tmp, dir) = data_dir();
    let server = Server::start(&dir);
    let token = admin_token(&dir);
    assert!(server.stdout.iter().any(|l| l.contains(&token)), "token printed: {:?}", server.stdout);
    assert_eq!(fs::metadata(dir.join("admin.token")).unwrap().permissions().mode() & 0o777, 0o600);
    let health = reqwest::get(format!("{}/healthz", server.url)).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready = reqwest::get(format!("{}/readyz", server.url)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    server.stop();
    let again = Server::start(&dir);
    assert!(again.stdout.iter().all(|l| !l.contains("admin token")), "no second token: {:?}", again.stdout);
    again.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_native_api_works_over_real_http() {
    let (_tmp, dir) = data_dir();
    native_api_flow(&dir, &[]).await;
}

/// The same flow with sessions and services in Redis, under a key prefix of its own.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn the_native_api_works_over_real_http_on_redis() {
    native_api_flow_on(StoreKind::Redis).await;
}

/// With `encryption:` configured, the server seals the chosen attributes before they reach
/// the store: Redis holds no plaintext of them, while the API reads them back in clear.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn configured_attributes_reach_the_store_sealed() {
    let (tmp, dir) = data_dir();
    let prefix = format!("enc-{}", sessanger_core::SessionId::generate().as_ref()[..12].replace(['-', '_'], "x"));
    let config = tmp.path().join("encrypted.yaml");
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"; // 32 bytes, base64
    fs::write(
        &config,
        format!(
            "store:\n  url: redis://127.0.0.1:6379\n  key_prefix: {prefix}\nencryption:\n  keys: \"k1:{key}\"\n  active_key: k1\n  attributes: [access_token]\n"
        ),
    )
    .unwrap();
    stdout(&Command::new(BIN).args(["config", "check"]).arg(&config).output().unwrap());
    let server = Server::start_with(&dir, &["--config", config.to_str().unwrap()], &[]);
    let admin = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let mut request = new_session("frank", "laptop");
    request.attributes.insert("access_token".into(), json!("very-secret-token"));
    request.attributes.insert("theme".into(), json!("plain-theme"));
    let session = admin.create_session(&request).await.unwrap();
    assert_eq!(admin.get_session(&session.session_id).await.unwrap().attributes["access_token"], "very-secret-token");
    let dump = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "redis-cli --scan --pattern '*{prefix}*' | while read -r k; do redis-cli --raw type \"$k\" | grep -q hash && redis-cli --raw hgetall \"$k\"; done"
        ))
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(dump.contains("plain-theme"), "the dump should show the session: {dump}");
    assert!(!dump.contains("very-secret-token"), "plaintext reached Redis: {dump}");
    server.stop();
}

/// Redis going away turns requests into 503 `store_unavailable` (never a hang or a panic),
/// and the service recovers by itself when Redis is back, without a restart.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn the_service_answers_503_while_redis_is_down_and_recovers_by_itself() {
    let (tmp, dir) = data_dir();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let redis_dir = tmp.path().join("redis");
    fs::create_dir_all(&redis_dir).unwrap();
    let start_redis = || {
        let status = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--daemonize", "yes", "--save", ""])
            .args(["--appendonly", "yes", "--dir"])
            .arg(&redis_dir)
            .status()
            .unwrap();
        assert!(status.success());
        for _ in 0..100 {
            let ping = Command::new("redis-cli").args(["-p", &port.to_string(), "ping"]).output().unwrap();
            if String::from_utf8_lossy(&ping.stdout).contains("PONG") {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("redis-server on port {port} did not start");
    };
    let stop_redis = || {
        Command::new("redis-cli").args(["-p", &port.to_string(), "shutdown"]).output().unwrap();
    };
    start_redis();
    let server = Server::start_with(&dir, &["--store", &format!("redis://127.0.0.1:{port}")], &[]);
    let admin = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let session = admin.create_session(&new_session("gina", "phone")).await.unwrap();
    for _ in 0..3 {
        admin.get_session(&session.session_id).await.unwrap();
    }
    // The node cache's figures: the first read filled it, the others were served from it.
    let metrics = || async { reqwest::get(format!("{}/metrics", server.url)).await.unwrap().text().await.unwrap() };
    let scraped = metrics().await;
    let figure = |scraped: &str, name: &str| -> u64 {
        let line = scraped.lines().find(|line| line.starts_with(name)).unwrap_or_else(|| panic!("{name}: {scraped}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(figure(&scraped, r#"sessanger_store_cache_hits_total{cache="sessions"}"#), 2, "{scraped}");
    assert_eq!(figure(&scraped, r#"sessanger_store_cache_misses_total{cache="sessions"}"#), 1, "{scraped}");
    assert_eq!(figure(&scraped, r#"sessanger_store_cache_entries{cache="sessions"}"#), 1, "{scraped}");
    assert_eq!(figure(&scraped, "sessanger_store_cache_drops_total"), 0, "{scraped}");

    stop_redis();
    // Until the node hears its connections drop, its cache may still answer: nobody can
    // change a session while Redis is down, so that answer is not stale. Then reads fail.
    let mut down = None;
    for _ in 0..50 {
        match admin.get_session(&session.session_id).await {
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            Err(e) => {
                down = Some(e);
                break;
            }
        }
    }
    let down = down.expect("reads fail within 5 s of Redis going down");
    assert_eq!(down.code(), Some(ErrorCode::StoreUnavailable), "{down}");
    let ready = reqwest::get(format!("{}/readyz", server.url)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let scraped = metrics().await;
    assert!(
        figure(&scraped, "sessanger_store_cache_drops_total") >= 1,
        "the lost connection dropped the cache: {scraped}"
    );

    start_redis();
    let mut recovered = None;
    for _ in 0..50 {
        match admin.get_session(&session.session_id).await {
            Ok(s) => {
                recovered = Some(s);
                break;
            }
            Err(e) => assert_eq!(e.code(), Some(ErrorCode::StoreUnavailable), "{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(recovered.expect("the service recovers without a restart").session_id, session.session_id);
    server.stop();
    stop_redis();
}

/// The same flow on PostgreSQL, in a schema of its own.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn the_native_api_works_over_real_http_on_postgres() {
    native_api_flow_on(StoreKind::Postgres).await;
}

/// The same flow on MariaDB, in a database of its own.
#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn the_native_api_works_over_real_http_on_mariadb() {
    native_api_flow_on(StoreKind::MariaDb).await;
}

async fn native_api_flow_on(kind: StoreKind) {
    let (_tmp, dir) = data_dir();
    let store = FreshStore::new(kind);
    let migrated = Command::new(BIN).arg("migrate").args(&store.args).output().unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("up to date"));
    native_api_flow(&dir, &store.flags()).await;
}

/// Two sessions for one user, attributes set/removed/incremented, list, regenerate, refresh,
/// revoke all, stats; then the 401/403/404/413 paths, over a real socket.
async fn native_api_flow(dir: &Path, args: &[&str]) {
    let dir = dir.to_path_buf();
    let server = Server::start_with(&dir, args, &[]);
    let admin = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let alice = "alice".parse().unwrap();

    let phone = admin.create_session(&new_session("alice", "phone")).await.unwrap();
    let laptop = admin.create_session(&new_session("alice", "laptop")).await.unwrap();
    assert_eq!(phone.version, Version(1));

    let patched = admin
        .patch_session(&phone.session_id, &Patch::default().set("theme", json!("dark")).incr("visits", 2), None)
        .await
        .unwrap();
    assert_eq!(patched.attributes["visits"], json!(2));
    let patched =
        admin.patch_session(&phone.session_id, &Patch::default().remove("theme"), Some(patched.version)).await.unwrap();
    assert!(!patched.attributes.contains_key("theme"));
    let stale = admin.patch_session(&phone.session_id, &Patch::default().set("x", json!(1)), Some(Version(1))).await;
    assert_eq!(stale.unwrap_err().code(), Some(ErrorCode::VersionMismatch));

    let listed = admin.list_user_sessions(&alice, &Page::DEFAULT).await.unwrap().sessions;
    let mut devices: Vec<_> = listed.iter().map(|s| s.device.device_id.clone().unwrap()).collect();
    devices.sort();
    assert_eq!(devices, ["laptop", "phone"]);

    let regenerated = admin.regenerate_session(&phone.session_id).await.unwrap();
    assert_ne!(regenerated.session_id, phone.session_id);
    assert!(admin.get_session(&phone.session_id).await.unwrap_err().is_not_found());
    assert_eq!(admin.get_session(&regenerated.session_id).await.unwrap().attributes["visits"], json!(2));

    let refreshed = admin.refresh_session(&laptop.session_id).await.unwrap();
    assert!(refreshed.expires_at >= laptop.expires_at);

    assert_eq!(admin.stats().await.unwrap().active_sessions, 2);
    assert_eq!(admin.delete_user_sessions(&alice).await.unwrap(), 2);
    assert!(admin.list_user_sessions(&alice, &Page::DEFAULT).await.unwrap().sessions.is_empty());
    assert_eq!(admin.stats().await.unwrap().active_sessions, 0);

    // 401, 403, 404, 413 over the wire, all as JSON errors.
    let http = sessanger_testkit::tls::http().build().unwrap();
    let anonymous = http.get(format!("{}/v1/stats", server.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.json::<Value>().await.unwrap()["error"]["code"], "unauthorized");
    let created = admin
        .create_service(&sessanger_core::wire::CreateService {
            id: "reader".parse().unwrap(),
            name: None,
            permissions: vec![sessanger_core::Permission::Read],
        })
        .await
        .unwrap();
    let reader = Client::new(&server.url, &created.token).unwrap();
    assert_eq!(reader.create_session(&new_session("bob", "tv")).await.unwrap_err().code(), Some(ErrorCode::Forbidden));
    assert_eq!(reader.stats().await.unwrap().active_sessions, 0);
    let missing = http
        .get(format!("{}/v1/sessions/{}", server.url, sessanger_core::SessionId::generate()))
        .bearer_auth(admin_token(&dir))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"]["code"], "session_not_found");
    let huge = json!({"user_id": "bob", "attributes": {"blob": "x".repeat(2 * 1024 * 1024)}});
    let too_large = http
        .post(format!("{}/v1/sessions", server.url))
        .bearer_auth(admin_token(&dir))
        .json(&huge)
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.json::<Value>().await.unwrap()["error"]["code"], "payload_too_large");
    server.stop();
}

/// Three nodes started at the same moment on one empty store: all serve, exactly one creates
/// and writes the bootstrap admin token, and that token works on every node.
async fn three_nodes_started_together_on(kind: StoreKind) {
    let store = FreshStore::new(kind);
    let dirs: Vec<_> = (0..3).map(|_| data_dir()).collect();
    let start = std::sync::Barrier::new(dirs.len());
    let servers: Vec<Server> = std::thread::scope(|scope| {
        let starts: Vec<_> = dirs
            .iter()
            .map(|(_, dir)| {
                let (start, flags) = (&start, store.flags());
                scope.spawn(move || {
                    start.wait();
                    Server::start_with(dir, &flags, &[])
                })
            })
            .collect();
        starts.into_iter().map(|node| node.join().expect("every node starts")).collect()
    });
    let written: Vec<_> = dirs.iter().filter(|(_, dir)| dir.join("admin.token").exists()).collect();
    assert_eq!(written.len(), 1, "exactly one node writes the bootstrap token");
    let printed = servers.iter().filter(|s| s.stdout.iter().any(|l| l.starts_with("admin token"))).count();
    assert_eq!(printed, 1, "exactly one node prints it");
    let token = admin_token(&written[0].1);
    for server in &servers {
        let stats = Client::new(&server.url, &token).unwrap().stats().await;
        assert!(stats.is_ok(), "{}: {stats:?}", server.url);
    }
    for server in servers {
        server.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_started_together_on_redis_share_one_bootstrap_token() {
    three_nodes_started_together_on(StoreKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_started_together_on_postgres_share_one_bootstrap_token() {
    three_nodes_started_together_on(StoreKind::Postgres).await;
}

/// A service's permissions changed, then the service removed, through one node: another node
/// applies each at once where the store announces changes (Redis publish/subscribe or the node
/// cache's tracking, PostgreSQL `NOTIFY`), and within a second elsewhere: the other's cache of
/// verified services lives half a second.
async fn a_changed_or_removed_service_is_refused_on_every_node_on(kind: StoreKind) {
    let store = FreshStore::new(kind);
    let (_a_tmp, a_dir) = data_dir();
    let (_b_tmp, b_dir) = data_dir();
    let a = Server::start_with(&a_dir, &store.flags(), &[]);
    let b = Server::start_with(&b_dir, &store.flags(), &[]);
    let admin = Client::new(&a.url, &admin_token(&a_dir)).unwrap();
    let id: sessanger_core::ServiceId = "doomed".parse().unwrap();
    let permissions = vec![Permission::Read, Permission::Write];
    let created = admin.create_service(&CreateService { id: id.clone(), name: None, permissions }).await.unwrap();
    let doomed = Client::new(&b.url, &created.token).unwrap();
    doomed.create_session(&new_session("u", "phone")).await.expect("node B accepts the new service, and caches it");
    let bound = match kind {
        StoreKind::Redis | StoreKind::Postgres => std::time::Duration::from_millis(250),
        _ => std::time::Duration::from_secs(1),
    };

    let read_only = sessanger_core::wire::UpdateService { permissions: vec![Permission::Read] };
    admin.update_service(&id, &read_only).await.unwrap();
    let session = new_session("u", "phone");
    let forbidden_after = refused_after(ErrorCode::Forbidden, || doomed.create_session(&session)).await;
    println!("{kind:?}: a service's write taken back was refused by the other node after {forbidden_after:?}");
    assert!(forbidden_after < bound, "{kind:?}: {forbidden_after:?}, not under {bound:?}");
    doomed.stats().await.expect("it may still read");

    admin.delete_service(&id).await.unwrap();
    let unauthorized_after = refused_after(ErrorCode::Unauthorized, || doomed.stats()).await;
    println!("{kind:?}: a removed service was refused by the other node after {unauthorized_after:?}");
    assert!(unauthorized_after < bound, "{kind:?}: {unauthorized_after:?}, not under {bound:?}");
    a.stop();
    b.stop();
}

/// How long after now `call` keeps succeeding before it fails with `code`; panics on any other
/// failure, or if it still succeeds after 5 s.
async fn refused_after<T, F: std::future::Future<Output = Result<T, sessanger_client::ClientError>>>(
    code: ErrorCode,
    call: impl Fn() -> F,
) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        match call().await {
            Err(e) if e.code() == Some(code) => return start.elapsed(),
            Ok(_) => assert!(start.elapsed() < std::time::Duration::from_secs(5), "still accepted after 5 s"),
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Two nodes on one Redis, 64 clients adding 1 to one counter through both (so each node
/// writes increments together), node B SIGKILLed mid-burst: every increment answered is in the
/// counter, each answer's value is its own (no two callers were told the same count), and the
/// counter is not past the increments sent (those in flight on B when it died may or may not
/// have landed, as for any request cut off).
#[tokio::test(flavor = "multi_thread")]
async fn increments_through_two_nodes_are_exact_while_one_is_killed() {
    use std::{
        collections::HashSet,
        sync::atomic::{AtomicU64, Ordering},
        time::{Duration, Instant},
    };

    let store = FreshStore::new(StoreKind::Redis);
    let (_a_tmp, a_dir) = data_dir();
    let (_b_tmp, b_dir) = data_dir();
    let a = Server::start_with(&a_dir, &store.flags(), &[]);
    let b = Server::start_with(&b_dir, &store.flags(), &[]);
    let token = admin_token(&a_dir);
    let nodes = [Client::new(&a.url, &token).unwrap(), Client::new(&b.url, &token).unwrap()];
    let id = nodes[0].create_session(&new_session("counter", "phone")).await.unwrap().session_id;
    let sent = std::sync::Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_millis(1500);
    let clients: Vec<_> = (0..64)
        .map(|i| {
            let (client, id, sent) = (nodes[i % 2].clone(), id.clone(), sent.clone());
            tokio::spawn(async move {
                let mut answered = Vec::new();
                while Instant::now() < until {
                    sent.fetch_add(1, Ordering::SeqCst);
                    match client.patch_session(&id, &Patch::default().incr("n", 1), None).await {
                        Ok(session) => answered.push(session.attributes["n"].as_i64().unwrap()),
                        // Node B is gone: its clients stop.
                        Err(error) if i % 2 == 1 => {
                            assert!(error.code().is_none(), "node B answered an error: {error}");
                            break;
                        }
                        Err(error) => panic!("node A failed an increment: {error}"),
                    }
                }
                answered
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    b.kill();
    let mut answered = Vec::new();
    for client in clients {
        answered.extend(client.await.unwrap());
    }
    let counter = nodes[0].get_session(&id).await.unwrap().attributes["n"].as_i64().unwrap();
    let sent = sent.load(Ordering::SeqCst) as i64;
    let distinct: HashSet<_> = answered.iter().collect();
    println!("{} increments answered, {sent} sent, the counter at {counter}", answered.len());
    assert_eq!(distinct.len(), answered.len(), "two callers were told the same count");
    assert!(answered.iter().all(|n| (1..=counter).contains(n)));
    assert!(
        answered.len() as i64 <= counter && counter <= sent,
        "answered {}, counted {counter}, sent {sent}",
        answered.len()
    );
    a.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_or_removed_service_is_refused_on_every_node_within_a_second_on_redis() {
    a_changed_or_removed_service_is_refused_on_every_node_on(StoreKind::Redis).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_or_removed_service_is_refused_on_every_node_within_a_second_on_postgres() {
    a_changed_or_removed_service_is_refused_on_every_node_on(StoreKind::Postgres).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_or_removed_service_is_refused_on_every_node_within_a_second_on_mariadb() {
    a_changed_or_removed_service_is_refused_on_every_node_on(StoreKind::MariaDb).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_on_the_embedded_store_keeps_sessions_and_services() {
    let (_tmp, dir) = data_dir();
    let server = Server::start(&dir);
    let admin = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let session = admin.create_session(&new_session("carol", "desk")).await.unwrap();
    admin.patch_session(&session.session_id, &Patch::default().incr("counter", 41), None).await.unwrap();
    let billing = admin
        .create_service(&sessanger_core::wire::CreateService {
            id: "billing".parse().unwrap(),
            name: Some("Billing".into()),
            permissions: vec![sessanger_core::Permission::Read, sessanger_core::Permission::Write],
        })
        .await
        .unwrap();
    server.stop();

    let server = Server::start(&dir);
    let billing = Client::new(&server.url, &billing.token).unwrap();
    let after = billing.patch_session(&session.session_id, &Patch::default().incr("counter", 1), None).await.unwrap();
    assert_eq!(after.attributes["counter"], json!(42));
    assert_eq!(billing.list_user_sessions(&"carol".parse().unwrap(), &Page::DEFAULT).await.unwrap().sessions.len(), 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_commands_go_through_the_running_server() {
    let (_tmp, dir) = data_dir();
    let server = Server::start(&dir);
    let added = stdout(&sessanger(&dir, &["service", "add", "billing", "--permissions", "read,write", "--json"]));
    let added: Value = serde_json::from_str(&added).unwrap();
    let billing = Client::new(&server.url, added["token"].as_str().unwrap()).unwrap();
    let session = billing.create_session(&new_session("dave", "phone")).await.unwrap();

    let services = stdout(&sessanger(&dir, &["service", "list"]));
    assert!(services.contains("billing") && services.contains("admin"), "{services}");
    let sessions = stdout(&sessanger(&dir, &["sessions", "list", "--user", "dave"]));
    assert!(sessions.contains(session.session_id.as_ref()), "{sessions}");
    assert!(stdout(&sessanger(&dir, &["sessions", "revoke", "--user", "dave"])).contains("1 session"));
    assert!(billing.get_session(&session.session_id).await.unwrap_err().is_not_found());

    let updated = stdout(&sessanger(&dir, &["service", "update", "billing", "--permissions", "read"]));
    assert!(updated.contains("service billing now has read"), "{updated}");
    let refused = billing.create_session(&new_session("dave", "phone")).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::Forbidden));

    stdout(&sessanger(&dir, &["service", "remove", "billing"]));
    assert_eq!(billing.stats().await.unwrap_err().code(), Some(ErrorCode::Unauthorized));
    server.stop();
}

#[test]
fn admin_commands_work_on_the_store_directly_when_no_server_runs() {
    let (_tmp, dir) = data_dir();
    let added = stdout(&sessanger(&dir, &["service", "add", "web", "--permissions", "read"]));
    assert!(added.contains("token (shown once): web."), "{added}");
    assert!(stdout(&sessanger(&dir, &["service", "list"])).contains("web"));
    let updated = stdout(&sessanger(&dir, &["service", "update", "web", "--permissions", "write,read", "--json"]));
    assert_eq!(serde_json::from_str::<Value>(&updated).unwrap()["permissions"], json!(["read", "write"]));
    let unknown = sessanger(&dir, &["service", "update", "nobody", "--permissions", "read"]);
    assert!(!unknown.status.success());
    let refused = sessanger(&dir, &["service", "add", "web"]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already exists"));
}

fn config_check(file: &str, env: &[(&str, &str)]) -> Output {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/config").join(file);
    let mut command = Command::new(BIN);
    command.args(["config", "check"]).arg(path);
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

#[test]
fn config_check_accepts_both_broker_examples_of_the_seed() {
    stdout(&config_check("seed-example-1.yaml", &[]));
    stdout(&config_check("seed-example-2.yaml", &[]));
    let env = [
        ("BROKER_ROUTING_KEY", "sessanger1"),
        ("TSUP_BROKER_URL", "127.0.0.1:5672"),
        ("BROKER_SESSANGER_LOGIN", "sessanger"),
        ("BROKER_SESSANGER_PASSWORD", "sessanger"),
        ("BROKER_USER_PASSWORD", "123"),
    ];
    stdout(&config_check("seed-env.yaml", &env));
    let missing = config_check("seed-env.yaml", &[]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("BROKER_ROUTING_KEY"));
}

#[test]
fn config_check_rejects_a_broken_file_naming_file_line_and_key() {
    let output = config_check("broken.yaml", &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("broken.yaml:4:3: session: unknown field `idle_timeout`"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_trail_names_the_acting_service_and_hides_session_ids() {
    let (tmp, dir) = data_dir();
    let audit = tmp.path().join("audit.jsonl");
    let server = Server::start_with(&dir, &[], &[("SESSANGER_AUDIT_LOG", audit.to_str().unwrap())]);
    let admin = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let session = admin.create_session(&new_session("erin", "phone")).await.unwrap();
    let reader = admin
        .create_service(&sessanger_core::wire::CreateService {
            id: "reports".parse().unwrap(),
            name: None,
            permissions: vec![sessanger_core::Permission::Read],
        })
        .await
        .unwrap();
    Client::new(&server.url, &reader.token).unwrap().get_session(&session.session_id).await.unwrap();
    admin.delete_session(&session.session_id).await.unwrap();
    server.stop();

    let trail = fs::read_to_string(&audit).unwrap();
    assert!(!trail.contains(session.session_id.as_ref()), "a live session id leaked into the audit trail");
    let events: Vec<Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let find =
        |action: &str| events.iter().find(|e| e["action"] == action).unwrap_or_else(|| panic!("{action} in {trail}"));
    let fingerprint = session.session_id.fingerprint();
    let created = find("session.create");
    assert_eq!((created["service"].as_str(), created["user"].as_str()), (Some("admin"), Some("erin")));
    assert_eq!(created["session"], fingerprint.as_str());
    let foreign = find("session.read");
    assert_eq!(
        (foreign["service"].as_str(), foreign["session"].as_str()),
        (Some("reports"), Some(fingerprint.as_str()))
    );
    assert_eq!(find("session.delete")["session"], fingerprint.as_str());
}

/// The curl walkthrough of README.md, run as printed against a real server (only the port
/// differs), so the README cannot rot.
#[test]
fn the_readme_curl_examples_work_as_printed() {
    let (_tmp, dir) = data_dir();
    let server = Server::start(&dir);
    let readme = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let section = readme.split("## Use the API").nth(1).expect("README has a `Use the API` section");
    let script = section.split("```sh").nth(1).and_then(|s| s.split("```").next()).expect("a sh block");
    let port = server.url.rsplit(':').next().unwrap();
    let script = script.replace("localhost:8090", &format!("localhost:{port}"));
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(dir.parent().unwrap())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "stdout: {out}\nstderr: {}", String::from_utf8_lossy(&output.stderr));
    assert!(!out.contains("\"error\""), "an example failed: {out}");
    assert!(out.contains("\"deleted\":2") || out.contains("\"deleted\":1"), "{out}");
    assert!(out.contains("\"active_sessions\":0"), "{out}");
    server.stop();
}

#[test]
fn a_startup_error_is_one_line_without_a_backtrace() {
    let (_tmp, dir) = data_dir();
    for store in ["bogus://somewhere", "postgres://nobody@127.0.0.1:1/none?connect_timeout=1"] {
        let output = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--store", store, "--data-dir"])
            .arg(&dir)
            .env_remove("SESSANGER_CONFIG")
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .env("RUST_LOG", "off")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{store}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{store}: {stderr}");
        assert!(stderr.starts_with("error: ") && !stderr.contains("backtrace"), "{store}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_come_in_bounded_pages() {
    listings_come_in_pages_on(&[]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_come_in_bounded_pages_on_redis() {
    let store = FreshStore::new(StoreKind::Redis);
    listings_come_in_pages_on(&store.flags()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_come_in_bounded_pages_on_postgres() {
    let store = FreshStore::new(StoreKind::Postgres);
    listings_come_in_pages_on(&store.flags()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn listings_come_in_bounded_pages_on_mariadb() {
    let store = FreshStore::new(StoreKind::MariaDb);
    listings_come_in_pages_on(&store.flags()).await;
}

/// Through the binary: a user's 250 sessions come in pages of 64 that hold each once, the
/// services in pages of 2, and a limit out of range is a 400 with its code.
async fn listings_come_in_pages_on(store: &[&str]) {
    let (_tmp, dir) = data_dir();
    let server = Server::start_with(&dir, store, &[]);
    let admin = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let mut created = std::collections::BTreeSet::new();
    for i in 0..250 {
        created.insert(admin.create_session(&new_session("paula", &format!("d{i}"))).await.unwrap().session_id);
    }
    let paula = "paula".parse().unwrap();
    let (mut listed, mut pages) = (std::collections::BTreeSet::new(), 0);
    let mut page = Page::first(std::num::NonZeroU32::new(64).unwrap());
    loop {
        let list = admin.list_user_sessions(&paula, &page).await.unwrap();
        assert!(list.sessions.len() <= 64);
        pages += 1;
        for session in list.sessions {
            assert!(listed.insert(session.session_id), "a session listed twice");
        }
        match list.next_cursor {
            Some(after) => page = Page { after: Some(after), ..page },
            None => break,
        }
    }
    assert_eq!((listed, pages), (created, 4));

    for id in ["svc-b", "svc-a"] {
        let body = CreateService { id: id.parse().unwrap(), name: None, permissions: vec![Permission::Read] };
        admin.create_service(&body).await.unwrap();
    }
    let (mut services, mut after) = (Vec::new(), None);
    loop {
        let list = admin.list_services(after.as_ref(), std::num::NonZeroU32::new(2).unwrap()).await.unwrap();
        services.extend(list.services.into_iter().map(|s| s.id.to_string()));
        match list.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(services, ["admin", "svc-a", "svc-b"]);

    let bearer = format!("Bearer {}", admin_token(&dir));
    let reply = sessanger_testkit::tls::http()
        .build()
        .unwrap()
        .get(format!("{}/v1/users/paula/sessions?limit=1001", server.url))
        .header("Authorization", bearer)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::BAD_REQUEST);
    assert_eq!(reply.json::<Value>().await.unwrap()["error"]["code"], "invalid_request");
    server.stop();
}

/// `serve --admin-console` serves the console on the API's port: an operator signs in with the
/// bootstrap token, finds a user's session and revokes it; without the flag there is none.
/// A form's body, as a browser encodes it (the values here need only `+` and `/` escaped).
fn form(pairs: &[(&str, &str)]) -> String {
    let pairs: Vec<String> =
        pairs.iter().map(|(k, v)| format!("{k}={}", v.replace('+', "%2B").replace('/', "%2F"))).collect();
    pairs.join("&")
}

/// Signs in to the console at `url` with `token`; the session cookie to send back.
async fn console_sign_in(browser: &reqwest::Client, url: &str, token: &str) -> String {
    let signed_in = browser
        .post(format!("{url}/admin/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("token", token)]))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let set_cookie = signed_in.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set_cookie.contains("Secure") && set_cookie.contains("HttpOnly"), "{set_cookie}");
    set_cookie.split(';').next().unwrap().to_owned()
}

/// Two nodes on one Redis, the console on both: node B's live stream carries a change made
/// through node A, and a node stopping ends its streams rather than waiting on them.
#[tokio::test(flavor = "multi_thread")]
async fn the_console_of_one_node_streams_the_changes_made_through_another() {
    let store = FreshStore::new(StoreKind::Redis);
    let (_a_tmp, a_dir) = data_dir();
    let (_b_tmp, b_dir) = data_dir();
    let a = Server::start_with(&a_dir, &store.flags(), &[]);
    let mut b_flags = store.flags();
    b_flags.push("--admin-console");
    let b = Server::start_with(&b_dir, &b_flags, &[]);
    let token = admin_token(&a_dir);
    let browser = sessanger_testkit::tls::http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let cookie = console_sign_in(&browser, &b.url, &token).await;
    let mut stream =
        browser.get(format!("{}/admin/live/events", b.url)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");

    let created = Client::new(&a.url, &token).unwrap().create_session(&new_session("olga", "phone")).await.unwrap();
    let seen = std::time::Instant::now();
    let mut text = String::new();
    while !text.contains(r#""user":"olga""#) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), stream.chunk()).await;
        text.push_str(std::str::from_utf8(&chunk.expect("node A's change within 5 s").unwrap().unwrap()).unwrap());
    }
    println!("node B's console streamed node A's change after {:?}", seen.elapsed());
    assert!(text.contains(&created.session_id.fingerprint()) && !text.contains(created.session_id.as_ref()));
    // Stopping with the stream open: `stop` fails if the node takes over 10 s.
    let stopping = std::time::Instant::now();
    b.stop();
    assert!(stopping.elapsed() < std::time::Duration::from_secs(5), "{:?}", stopping.elapsed());
    a.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_console_is_served_when_asked_for() {
    let (tmp, dir) = data_dir();
    let server = Server::start(&dir);
    let browser = sessanger_testkit::tls::http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(
        browser.get(format!("{}/admin/sign-in", server.url)).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    server.stop();

    let audit = tmp.path().join("audit.jsonl");
    let server = Server::start_with(&dir, &["--admin-console"], &[("SESSANGER_AUDIT_LOG", audit.to_str().unwrap())]);
    let token = admin_token(&dir);
    let client = Client::new(&server.url, &token).unwrap();
    let session = client.create_session(&new_session("erin", "phone")).await.unwrap();
    let cookie = console_sign_in(&browser, &server.url, &token).await;
    let page =
        browser.get(format!("{}/admin/users?user=erin", server.url)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let fingerprint = session.session_id.fingerprint();
    assert!(page.contains(&fingerprint) && page.contains("phone"), "{page}");
    let csrf = page.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let revoked = browser
        .post(format!("{}/admin/users/revoke", server.url))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("csrf", &csrf), ("user", "erin"), ("session", &fingerprint)]))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(client.get_session(&session.session_id).await.unwrap_err().code(), Some(ErrorCode::SessionNotFound));
    server.stop();
    // The revoke is audited under the operator's service.
    let trail = fs::read_to_string(&audit).unwrap();
    let deleted = trail
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|event| event["action"] == "session.delete" && event["session"] == fingerprint.as_str())
        .unwrap_or_else(|| panic!("the revoke in {trail}"));
    assert_eq!(deleted["service"], "admin");
}

/// `serve` on a TLS-only Redis (`scripts/redis-tls`), PostgreSQL and MariaDB
/// (`scripts/sql-tls`), trusting their CA through `store.tls`; and refusing to start on a Redis
/// whose certificate another CA signed, saying which and why.
#[tokio::test(flavor = "multi_thread")]
async fn the_service_runs_on_tls_only_stores_and_refuses_one_it_cannot_trust() {
    let (tmp, dir) = data_dir();
    let ca = sessanger_testkit::tls::test_ca_dir().join("ca.crt");
    let config = tmp.path().join("sessanger.yaml");
    let write_config = |port: u16| {
        let prefix = format!("tls-{}", &sessanger_core::SessionId::generate().as_ref()[..8]);
        let text = format!(
            "store:\n  url: rediss://127.0.0.1:{port}\n  key_prefix: '{prefix}'\n  tls:\n    ca_file: '{}'\n",
            ca.display()
        );
        fs::write(&config, text).unwrap();
    };
    write_config(6390);
    let server = Server::start_with(&dir, &["--config", config.to_str().unwrap()], &[]);
    let client = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let created = client.create_session(&new_session("tess", "phone")).await.unwrap();
    assert_eq!(client.get_session(&created.session_id).await.unwrap().user_id.as_ref(), "tess");
    server.stop();
    // The same `store.tls` serves the TLS-only PostgreSQL and MariaDB of `scripts/sql-tls`.
    // The databases outlive a run: the test registers a service of its own rather than rely on
    // the bootstrap token of a first start.
    for url in ["postgres://postgres@127.0.0.1:5433/test", "mysql://root@127.0.0.1:3307/test"] {
        let (_sql_tmp, sql_dir) = data_dir();
        let flags = ["--config", config.to_str().unwrap(), "--store", url];
        let id = format!("tls-{}", &sessanger_core::SessionId::generate().as_ref()[..8].to_ascii_lowercase());
        let add = [&flags[..], &["service", "add", &id, "--permissions", "read,write", "--json"]].concat();
        let added: Value = serde_json::from_str(&stdout(&sessanger(&sql_dir, &add))).unwrap();
        let server = Server::start_with(&sql_dir, &flags, &[]);
        let client = Client::new(&server.url, added["token"].as_str().unwrap()).unwrap();
        let created = client.create_session(&new_session("tess", "laptop")).await.unwrap();
        assert_eq!(client.get_session(&created.session_id).await.unwrap().device.device_id.as_deref(), Some("laptop"));
        server.stop();
    }

    write_config(6391);
    let refused = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config", config.to_str().unwrap(), "--data-dir"])
        .arg(&dir)
        .env_remove("SESSANGER_STORE")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("rediss://127.0.0.1:6391") && stderr.contains("UnknownIssuer"), "{stderr}");
}
