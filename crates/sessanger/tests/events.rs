//! Events leaving the process through the real binary: `GET /v1/events` consumed over real
//! HTTP by a client that goes away and comes back, and `sessanger events tail`.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use sessanger_client::{Client, Received};
use sessanger_core::{
    EventFilter, EventId,
    wire::{CreateSession, EventBody},
};

// Shared by several test binaries: this one reads no server output.
#[allow(dead_code)]
mod common;

use common::{BIN, FreshStore, Server, StoreKind, admin_token, data_dir};

fn new_session(user: &str) -> CreateSession {
    CreateSession {
        session_id: None,
        user_id: user.parse().unwrap(),
        device_id: None,
        ip: None,
        user_agent: None,
        attributes: Default::default(),
        ttl_secs: None,
        absolute_expires_at: None,
    }
}

async fn next_event(events: &mut sessanger_client::EventStream) -> EventBody {
    match tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("an event within 10 s") {
        Ok(Received::Event(event)) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// A consumer reads some events, goes away for 10 s while sessions come and go, and comes back
/// with the id of the last event it saw: it gets every event of those 10 s, each once, in
/// order, and then the live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_back_after_ten_seconds_gets_every_event_it_missed_exactly_once() {
    let (_tmp, dir) = data_dir();
    let server = Server::start(&dir);
    let client = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let mut events = client.events(EventFilter::default(), None);
    // The stream opens with the first `next`; the first session happens once it is open.
    let opened = tokio::spawn(async move {
        let first = next_event(&mut events).await;
        (first, events)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    client.create_session(&new_session("before")).await.unwrap();
    let (first, events) = opened.await.unwrap();
    assert_eq!((first.kind.as_str(), first.user_id.as_ref()), ("created", "before"));
    let resume_after = events.last_event_id().expect("an event was received");
    drop(events);

    // Ten seconds of changes nobody listens to.
    let mut expected = Vec::new();
    let started = Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(10) {
        let user = format!("away{n}");
        let session = client.create_session(&new_session(&user)).await.unwrap();
        expected.push(("created", user.clone()));
        if n % 3 == 0 {
            client.delete_session(&session.session_id).await.unwrap();
            expected.push(("deleted", user));
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }

    let mut back = client.events(EventFilter::default(), Some(resume_after));
    let mut got = Vec::new();
    let mut ids = BTreeSet::new();
    while got.len() < expected.len() {
        let event = next_event(&mut back).await;
        assert!(ids.insert(event.id), "event {} delivered twice", event.id);
        got.push((event.kind.clone(), event.user_id.to_string()));
    }
    let expected: Vec<(String, String)> = expected.into_iter().map(|(k, u)| (k.to_owned(), u)).collect();
    assert_eq!(got, expected, "every missed event, once, in order");
    assert!(ids.iter().all(|id| *id > resume_after));
    // And the stream goes on live.
    client.create_session(&new_session("after")).await.unwrap();
    assert_eq!(next_event(&mut back).await.user_id.as_ref(), "after");
    server.stop();
}

/// `sessanger events tail` through the running server: one JSON object per line, filtered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tail_prints_each_event_as_a_json_line() {
    let (_tmp, dir) = data_dir();
    let server = Server::start(&dir);
    let client = Client::new(&server.url, &admin_token(&dir)).unwrap();
    let kept = client.create_session(&new_session("carol")).await.unwrap();
    client.create_session(&new_session("dave")).await.unwrap();

    let mut tail = Command::new(BIN)
        .args(["events", "tail", "--after", "0", "--user", "carol", "--data-dir"])
        .arg(&dir)
        .env_remove("SESSANGER_CONFIG")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(tail.stdout.take().unwrap()).lines();
    let line = lines.next().expect("a line").unwrap();
    let event: EventBody = serde_json::from_str(&line).unwrap();
    assert_eq!((event.kind.as_str(), event.session_id.as_ref()), ("created", Some(&kept.session_id)));
    assert!(event.id > EventId(0));
    client.delete_session(&kept.session_id).await.unwrap();
    let line = lines.next().expect("a line").unwrap();
    let event: EventBody = serde_json::from_str(&line).unwrap();
    assert_eq!((event.kind.as_str(), event.user_id.as_ref()), ("deleted", "carol"), "dave's events are filtered out");
    let _ = tail.kill();
    let _ = tail.wait();
    server.stop();
}

/// Two nodes on one PostgreSQL: each change, whichever node makes it, is in the one log, and
/// a consumer of either node gets it once, in the order of the changes to a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_stream_one_log_whichever_node_changes_a_session() {
    two_nodes_stream_one_log(StoreKind::Postgres).await;
}

/// The same on one MariaDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_mariadb_stream_one_log_whichever_node_changes_a_session() {
    two_nodes_stream_one_log(StoreKind::MariaDb).await;
}

/// The same on one Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_redis_stream_one_log_whichever_node_changes_a_session() {
    two_nodes_stream_one_log(StoreKind::Redis).await;
}

async fn two_nodes_stream_one_log(kind: StoreKind) {
    let store = FreshStore::new(kind);
    let (_a_tmp, a_dir) = data_dir();
    let (_b_tmp, b_dir) = data_dir();
    let a = Server::start_with(&a_dir, &store.flags(), &[]);
    let b = Server::start_with(&b_dir, &store.flags(), &[]);
    let on_a = Client::new(&a.url, &admin_token(&a_dir)).unwrap();
    let on_b = Client::new(&b.url, &admin_token(&a_dir)).unwrap();
    let mut from_b = on_b.events(EventFilter::default().with_types("created,deleted").unwrap(), Some(EventId(0)));

    let mut expected = Vec::new();
    for i in 0..20 {
        let (maker, other) = if i % 2 == 0 { (&on_a, &on_b) } else { (&on_b, &on_a) };
        let session = maker.create_session(&new_session(&format!("node{i}"))).await.unwrap();
        other.delete_session(&session.session_id).await.unwrap();
        expected.push(("created".to_owned(), session.session_id.clone()));
        expected.push(("deleted".to_owned(), session.session_id));
    }
    let mut got = Vec::new();
    while got.len() < expected.len() {
        let event = next_event(&mut from_b).await;
        got.push((event.kind.clone(), event.session_id.expect("session ids are on by default")));
    }
    for (kind, id) in &expected {
        assert_eq!(got.iter().filter(|(k, i)| k == kind && i == id).count(), 1, "{kind} of {id:?} once");
    }
    for pair in expected.chunks(2) {
        let position = |wanted: &(String, _)| got.iter().position(|e| e == wanted).unwrap();
        assert!(position(&pair[0]) < position(&pair[1]), "a session's events keep their order");
    }
    a.stop();
    b.stop();
}
