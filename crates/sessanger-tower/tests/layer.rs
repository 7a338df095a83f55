//! `SessangerStore` behind tower-sessions' layer, driven as a browser would: by cookies.

use std::sync::Arc;

use axum::{
    Router,
    body::Body,
    extract::{Path, State},
    http::{Request, StatusCode, header},
    routing::{get, post},
};
use sessanger_client::Client;
use sessanger_core::{Device, Page, Permission, SessionManager, SessionPolicy, UserId, wire::SessionList};
use sessanger_server::{AppState, ServerOptions};
use sessanger_store_memory::MemoryStore;
use sessanger_tower::{SessangerStore, SessionOptions, Upstream, session_id_of};
use time::OffsetDateTime;
use tower::ServiceExt;
use tower_sessions::{Expiry, Session};

fn web_app<U: Upstream>(store: SessangerStore<U>) -> Router {
    async fn count(session: Session) -> String {
        let n: u64 = session.get("n").await.unwrap().unwrap_or(0) + 1;
        session.insert("n", n).await.unwrap();
        n.to_string()
    }
    async fn login<U: Upstream>(State(store): State<SessangerStore<U>>, Path(user): Path<String>, session: Session) {
        let device = Device { user_agent: Some("test".into()), ..Device::default() };
        store.log_in(&session, &user.parse().unwrap(), device).await.unwrap();
    }
    async fn sign_out<U: Upstream>(State(store): State<SessangerStore<U>>, session: Session) -> String {
        store.sign_out_everywhere(&session).await.unwrap().to_string()
    }
    async fn peek(session: Session) -> String {
        session.get::<u64>("n").await.unwrap().map_or_else(|| "none".to_owned(), |n| n.to_string())
    }
    async fn expire_in(session: Session, Path(millis): Path<i64>) {
        let at = OffsetDateTime::now_utc() + time::Duration::milliseconds(millis);
        session.set_expiry(Some(Expiry::AtDateTime(at)));
    }
    Router::new()
        .route("/count", get(count))
        .route("/peek", get(peek))
        .route("/expire-in/{millis}", post(expire_in))
        .route("/login/{user}", post(login::<U>))
        .route("/sign-out-everywhere", post(sign_out::<U>))
        .with_state(store.clone())
        .layer(SessionOptions::new().layer(store))
}

fn store() -> SessangerStore {
    SessangerStore::new(SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default()))
}

/// A sessanger server on a free port (stopped with the test's runtime), and a client of it
/// authenticated as a `web` service that may read and write.
async fn sessanger() -> Client {
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
    let permissions = vec![Permission::Read, Permission::Write];
    let (_, token) = manager.register_service("web".parse().unwrap(), "web", permissions).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(sessanger_server::serve(
        listener,
        AppState::new(manager, ServerOptions::default()),
        std::future::pending(),
    ));
    Client::new(&url, &token.expose()).unwrap()
}

/// Sends a request with the cookie `sid` (if any); returns the status, the body and the new
/// `sid` cookie value (if one was set).
async fn send(app: &Router, method: &str, path: &str, sid: Option<&str>) -> (StatusCode, String, Option<String>) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(sid) = sid {
        request = request.header(header::COOKIE, format!("sid={sid}"));
    }
    let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    let cookie = response.headers().get_all(header::SET_COOKIE).iter().find_map(|v| {
        let v = v.to_str().ok()?;
        Some(v.strip_prefix("sid=")?.split(';').next()?.to_owned())
    });
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap(), cookie)
}

#[tokio::test]
async fn the_cookie_is_secure_http_only_and_same_site_lax_by_default() {
    let app = web_app(store());
    let response = app.oneshot(Request::builder().uri("/count").body(Body::empty()).unwrap()).await.unwrap();
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
    for part in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(part), "{part} missing from {cookie}");
    }
    assert!(!cookie.contains("Max-Age"), "a browser-session cookie has no Max-Age: {cookie}");
}

#[tokio::test]
async fn logging_in_changes_the_cookie_and_kills_the_pre_login_id() {
    let store = store();
    let app = web_app(store.clone());
    let (_, _, before) = send(&app, "GET", "/count", None).await;
    let before = before.expect("the first visit sets a cookie");
    let (_, _, after) = send(&app, "POST", "/login/alice", Some(&before)).await;
    let after = after.expect("login sets a new cookie");
    assert_ne!(after, before);
    assert_eq!(send(&app, "GET", "/count", Some(&after)).await.1, "2", "data from before login is kept");
    assert_eq!(send(&app, "GET", "/count", Some(&before)).await.1, "1", "the old id starts afresh");
    let alice = store.list_user_sessions(&"alice".parse().unwrap(), &Page::DEFAULT).await.unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].id, session_id_of(&after.parse().unwrap()));
    assert_eq!(alice[0].device.user_agent.as_deref(), Some("test"));
}

#[tokio::test]
async fn logging_in_as_another_user_leaves_the_previous_users_data_behind() {
    let store = store();
    let app = web_app(store.clone());
    let (_, _, alice) = send(&app, "POST", "/login/alice", None).await;
    assert_eq!(send(&app, "GET", "/count", alice.as_deref()).await.1, "1");
    let (_, _, bob) = send(&app, "POST", "/login/bob", alice.as_deref()).await;
    assert_eq!(send(&app, "GET", "/count", bob.as_deref()).await.1, "1", "bob must not inherit alice's count");
    assert!(store.list_user_sessions(&"alice".parse().unwrap(), &Page::DEFAULT).await.unwrap().is_empty());
    assert_eq!(store.list_user_sessions(&"bob".parse().unwrap(), &Page::DEFAULT).await.unwrap().len(), 1);
}

#[tokio::test]
async fn signing_out_everywhere_ends_the_users_other_sessions() {
    let app = web_app(store());
    let (_, _, phone) = send(&app, "POST", "/login/alice", None).await;
    let (_, _, laptop) = send(&app, "POST", "/login/alice", None).await;
    let (phone, laptop) = (phone.unwrap(), laptop.unwrap());
    assert_eq!(send(&app, "GET", "/count", Some(&phone)).await.1, "1");
    assert_eq!(send(&app, "POST", "/sign-out-everywhere", Some(&laptop)).await.1, "2");
    assert_eq!(send(&app, "GET", "/count", Some(&phone)).await.1, "1", "the phone starts a new session");
}

#[tokio::test]
async fn a_session_logged_in_through_the_web_app_is_listed_by_the_v1_api() {
    let store = store();
    let app = web_app(store.clone());
    let (_, _, sid) = send(&app, "POST", "/login/alice", None).await;
    let manager = store.manager().clone();
    let (_, token) = manager.register_service("ops".parse().unwrap(), "ops", vec![Permission::Read]).await.unwrap();
    let api = sessanger_server::app(AppState::new(manager, ServerOptions::default()));
    let request = Request::builder()
        .uri("/v1/users/alice/sessions")
        .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()))
        .body(Body::empty())
        .unwrap();
    let response = api.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let list: SessionList = serde_json::from_slice(&body).unwrap();
    assert_eq!(list.sessions.len(), 1);
    assert_eq!(list.sessions[0].session_id, session_id_of(&sid.unwrap().parse().unwrap()));
}

#[tokio::test]
async fn in_remote_mode_logins_counters_and_signing_out_everywhere_go_through_the_server() {
    let client = sessanger().await;
    let app = web_app(SessangerStore::remote(client.clone()));
    let alice: UserId = "alice".parse().unwrap();
    let (_, _, before) = send(&app, "GET", "/count", None).await;
    let (_, _, phone) = send(&app, "POST", "/login/alice", before.as_deref()).await;
    let (_, _, laptop) = send(&app, "POST", "/login/alice", None).await;
    let (phone, laptop) = (phone.unwrap(), laptop.unwrap());
    assert_eq!(send(&app, "GET", "/count", Some(&phone)).await.1, "2", "data from before login is kept");
    assert_eq!(send(&app, "GET", "/count", Some(&before.unwrap())).await.1, "1", "the pre-login id is dead");

    let listed = client.list_user_sessions(&alice, &Page::DEFAULT).await.unwrap().sessions;
    let ids: Vec<_> = listed.iter().map(|s| s.session_id.clone()).collect();
    assert_eq!(ids.len(), 2, "both logins are sessions of the server's: {ids:?}");
    assert!(ids.contains(&session_id_of(&phone.parse().unwrap())));
    assert!(listed.iter().all(|s| s.device.user_agent.as_deref() == Some("test")));

    assert_eq!(send(&app, "POST", "/sign-out-everywhere", Some(&laptop)).await.1, "2");
    assert_eq!(send(&app, "GET", "/count", Some(&phone)).await.1, "1", "the phone starts a new session");
    assert!(client.list_user_sessions(&alice, &Page::DEFAULT).await.unwrap().sessions.is_empty());
}

#[tokio::test]
async fn set_expiry_moves_the_servers_deadline_either_way_and_loads_keep_it_fixed() {
    let store = store();
    let manager = store.manager().clone();
    let app = web_app(store);
    let (_, _, sid) = send(&app, "GET", "/count", None).await;
    let sid = sid.expect("a session cookie");
    let deadline = async || {
        let id = session_id_of(&sid.parse().unwrap());
        let session = manager.get_session(&id).await.unwrap();
        let left = session.absolute_expires_at.as_millis() - sessanger_core::Timestamp::now().as_millis();
        (left, session.expires_at == session.absolute_expires_at)
    };

    send(&app, "POST", "/expire-in/7200000", Some(&sid)).await;
    let (left, _) = deadline().await;
    assert!((7_100_000..=7_200_000).contains(&left), "lengthened to two hours, {left} ms left");

    send(&app, "POST", "/expire-in/900", Some(&sid)).await;
    let (left, fixed) = deadline().await;
    assert!((0..=900).contains(&left) && fixed, "shortened to 0.9 s, {left} ms left");
    // A request that only reads loads the session without saving it (tower-sessions keeps
    // no expiry between requests: the app sets it again on the requests that save).
    let (_, n, _) = send(&app, "GET", "/peek", Some(&sid)).await;
    assert_eq!(n, "1", "alive before the deadline");
    let (left_after_load, _) = deadline().await;
    assert!(left_after_load <= left, "a load moved a fixed deadline");
    tokio::time::sleep(std::time::Duration::from_millis(1_000)).await;
    let (_, n, _) = send(&app, "GET", "/peek", Some(&sid)).await;
    assert_eq!(n, "none", "the session ended at its deadline");
}
