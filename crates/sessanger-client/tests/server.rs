//! The client against a real server on a local port: typed errors, timeouts, round trips.

use std::{sync::Arc, time::Duration};

use sessanger_client::{Client, ClientError, ErrorCode};
use sessanger_core::{Page, Patch, Permission, SessionId, SessionManager, SessionPolicy, wire::CreateSession};
use sessanger_server::{AppState, ServerOptions};
use sessanger_store_memory::MemoryStore;
use tokio::net::TcpListener;

/// A server on a free port and a client of it with read and write permissions. The server
/// stops when the test's runtime does.
async fn client() -> Client {
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
    let permissions = vec![Permission::Read, Permission::Write];
    let (_, token) = manager.register_service("web".parse().unwrap(), "web", permissions).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(manager, ServerOptions::default());
    tokio::spawn(sessanger_server::serve(listener, state, std::future::pending()));
    Client::new(&url, &token.expose()).unwrap()
}

fn new_session(user: &str) -> CreateSession {
    CreateSession {
        session_id: None,
        user_id: user.parse().unwrap(),
        device_id: Some("phone".into()),
        ip: None,
        user_agent: None,
        attributes: Default::default(),
        ttl_secs: None,
        absolute_expires_at: None,
    }
}

#[tokio::test]
async fn a_created_session_is_read_changed_and_listed_under_its_user() {
    let client = client().await;
    let created = client.create_session(&new_session("alice")).await.unwrap();
    let patched = client.patch_session(&created.session_id, &Patch::default().incr("visits", 2), None).await.unwrap();
    assert_eq!(patched.attributes["visits"], 2);
    let alice = "alice".parse().unwrap();
    let listed = client.list_user_sessions(&alice, &Page::DEFAULT).await.unwrap();
    assert_eq!((listed.sessions.len(), listed.next_cursor), (1, None));
    // Pages: two of three, then the last one, in creation order.
    let more = [
        client.create_session(&new_session("alice")).await.unwrap(),
        client.create_session(&new_session("alice")).await.unwrap(),
    ];
    let two = Page::first(std::num::NonZeroU32::new(2).unwrap());
    let first = client.list_user_sessions(&alice, &two).await.unwrap();
    let after = first.next_cursor.clone().expect("a full page has a next one");
    let last = client.list_user_sessions(&alice, &Page { after: Some(after), ..two }).await.unwrap();
    assert_eq!(last.next_cursor, None);
    let listed: Vec<_> =
        first.sessions.iter().chain(&last.sessions).map(|s| (s.created_at, s.session_id.clone())).collect();
    assert!(listed.is_sorted(), "oldest first, ties by id: {listed:?}");
    let mut expected = vec![created.session_id, more[0].session_id.clone(), more[1].session_id.clone()];
    let mut ids: Vec<_> = listed.into_iter().map(|(_, id)| id).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected, "every session once");
    assert_eq!(client.delete_user_sessions(&alice).await.unwrap(), 3);
}

#[tokio::test]
async fn every_session_or_one_creators_is_paged_through() {
    let client = client().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(client.create_session(&new_session(&format!("user-{i}"))).await.unwrap().session_id);
    }
    let (two, web) = (std::num::NonZeroU32::new(2).unwrap(), "web".parse().unwrap());
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = client.scan_sessions(after.as_ref(), two, Some(&web)).await.unwrap();
        assert!(page.sessions.len() <= 2);
        listed.extend(page.sessions.into_iter().map(|s| s.session_id));
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    listed.sort();
    created.sort();
    assert_eq!(listed, created, "every session once");
    let nobody = client.scan_sessions(None, two, Some(&"nobody".parse().unwrap())).await.unwrap();
    assert!(nobody.sessions.is_empty() && nobody.next_cursor.is_none());
}

#[tokio::test]
async fn an_unknown_session_is_a_typed_not_found() {
    let error = client().await.get_session(&SessionId::generate()).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::SessionNotFound));
    assert!(error.is_not_found());
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_stale_if_match_is_a_typed_version_mismatch() {
    let client = client().await;
    let created = client.create_session(&new_session("bob")).await.unwrap();
    let bump = Patch::default().incr("n", 1);
    client.patch_session(&created.session_id, &bump, None).await.unwrap();
    let stale = client.patch_session(&created.session_id, &bump, Some(created.version)).await;
    assert_eq!(stale.unwrap_err().code(), Some(ErrorCode::VersionMismatch));
}

#[tokio::test]
async fn creating_under_a_taken_id_is_a_typed_session_id_taken() {
    let client = client().await;
    let id = SessionId::generate_for(&"carol".parse().unwrap());
    let chosen = CreateSession { session_id: Some(id.clone()), ..new_session("carol") };
    assert_eq!(client.create_session(&chosen).await.unwrap().session_id, id);
    let error = client.create_session(&chosen).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::SessionIdTaken));
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_wrong_token_is_a_typed_unauthorized() {
    let client = client().await;
    let url = client.base_url().to_owned();
    let intruder = Client::new(&url, "web.not-the-secret").unwrap();
    let error = intruder.stats().await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::Unauthorized));
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_as_a_retryable_error() {
    // Accepts connections and never reads them: the request can only time out.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let client = Client::builder(&url, "web.secret").timeout(Duration::from_millis(200)).build().unwrap();
    let error = client.stats().await.unwrap_err();
    assert!(matches!(&error, ClientError::Transport(e) if e.is_timeout()), "{error:?}");
    assert!(error.is_retryable());
    drop(listener);
}
