//! The HTTP API driven through `app(state).oneshot(..)`, plus one real server on a socket.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use async_trait::async_trait;
use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use serde_json::{Value, json};
use sessanger_core::{
    Change, Created, DeleteReason, Maintenance, Page, Patch, PatchOptions, Patched, Permission, Renamed, Replaced,
    Replacement, ServiceId, ServiceRecord, ServiceStore, Session, SessionId, SessionManager, SessionPolicy, SessionRef,
    SessionStore, Store, StoreError, Timestamp, UserId, UserLimit,
};
use sessanger_server::{App, AppState, ServerOptions, app, openapi, serve};
use sessanger_store_memory::MemoryStore;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::Notify,
};
use tower::ServiceExt;

// ---------------------------------------------------------------------------------------------
// Harness

/// A router over a fresh store, with three services: `admin`, `writer` (write) and `reader` (read).
struct Api {
    app: App,
    admin: String,
    writer: String,
    reader: String,
}

impl Api {
    async fn new() -> Api {
        Api::with(Arc::new(MemoryStore::new()), SessionPolicy::default(), ServerOptions::default()).await
    }

    async fn with(store: Arc<dyn Store>, policy: SessionPolicy, options: ServerOptions) -> Api {
        let manager = SessionManager::with_policy(store, policy);
        let mut tokens = Vec::new();
        for (id, permission) in
            [("admin", Permission::Admin), ("writer", Permission::Write), ("reader", Permission::Read)]
        {
            let (_, token) = manager.register_service(id.parse().unwrap(), id, vec![permission]).await.unwrap();
            tokens.push(token.expose());
        }
        let [admin, writer, reader] = <[String; 3]>::try_from(tokens).unwrap();
        Api { app: app(AppState::new(manager, options)), admin, writer, reader }
    }

    async fn call(&self, method: Method, uri: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        self.call_with(method, uri, token, body, &[]).await
    }

    async fn call_with(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = match body {
            Some(body) => request.header(header::CONTENT_TYPE, "application/json").body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, text, json }
    }

    async fn create(&self, body: Value) -> Value {
        let reply = self.call(Method::POST, "/v1/sessions", Some(&self.writer), Some(body)).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
        reply.json
    }

    async fn create_refused(&self, body: Value, status: u16, code: &str) {
        self.call(Method::POST, "/v1/sessions", Some(&self.writer), Some(body)).await.assert_error(status, code);
    }
}

#[derive(Debug)]
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    json: Value,
}

impl Reply {
    /// Asserts the status and the JSON error shape with `code`.
    #[track_caller]
    fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.json["error"]["code"], code, "{}", self.text);
        assert!(self.json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", self.text);
        assert_eq!(self.header(header::CONTENT_TYPE), "application/json");
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

fn id_of(session: &Value) -> String {
    session["session_id"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------------------------
// A store that misbehaves on every session operation, while services work normally (so
// authentication still succeeds and the failure is the store's).

#[derive(Debug, Clone, Copy)]
enum Mode {
    /// Fails with a store error carrying a detail clients must never see.
    Other,
    /// Fails as unreachable.
    Unavailable,
    /// Never answers.
    Hang,
    /// Answers correctly after a while, announcing that it was entered.
    Slow,
}

#[derive(Debug)]
struct FaultyStore {
    inner: MemoryStore,
    mode: Mode,
    entered: Arc<Notify>,
}

impl FaultyStore {
    fn new(mode: Mode) -> Self {
        FaultyStore { inner: MemoryStore::new(), mode, entered: Arc::default() }
    }

    async fn gate(&self) -> Result<(), StoreError> {
        match self.mode {
            Mode::Other => Err(StoreError::Other("secret detail".into())),
            Mode::Unavailable => Err(StoreError::Unavailable("connection refused".into())),
            Mode::Hang => std::future::pending().await,
            Mode::Slow => {
                self.entered.notify_one();
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(())
            }
        }
    }
}

#[async_trait]
impl SessionStore for FaultyStore {
    async fn create(&self, session: &Session, limit: UserLimit, now: Timestamp) -> Result<Created, StoreError> {
        self.gate().await?;
        self.inner.create(session, limit, now).await
    }
    async fn load(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.gate().await?;
        self.inner.load(id, now).await
    }
    async fn touch(&self, id: &SessionId, now: Timestamp) -> Result<Option<Session>, StoreError> {
        self.gate().await?;
        self.inner.touch(id, now).await
    }
    async fn refresh(&self, id: &SessionId, change: Change<'_>) -> Result<Option<Session>, StoreError> {
        self.gate().await?;
        self.inner.refresh(id, change).await
    }
    async fn patch(
        &self,
        id: &SessionId,
        patch: &Patch,
        options: PatchOptions<'_>,
        change: Change<'_>,
    ) -> Result<Patched, StoreError> {
        self.gate().await?;
        self.inner.patch(id, patch, options, change).await
    }
    async fn replace(&self, id: &SessionId, new: Replacement<'_>, change: Change<'_>) -> Result<Replaced, StoreError> {
        self.gate().await?;
        self.inner.replace(id, new, change).await
    }
    async fn rename(&self, old: &SessionId, new: &SessionId, change: Change<'_>) -> Result<Renamed, StoreError> {
        self.gate().await?;
        self.inner.rename(old, new, change).await
    }
    async fn delete(
        &self,
        id: &SessionId,
        reason: DeleteReason,
        change: Change<'_>,
    ) -> Result<Option<Session>, StoreError> {
        self.gate().await?;
        self.inner.delete(id, reason, change).await
    }
    async fn list_user(&self, user: &UserId, page: &Page, now: Timestamp) -> Result<Vec<Session>, StoreError> {
        self.gate().await?;
        self.inner.list_user(user, page, now).await
    }
    async fn delete_user(&self, user: &UserId, change: Change<'_>) -> Result<Vec<SessionId>, StoreError> {
        self.gate().await?;
        self.inner.delete_user(user, change).await
    }
    async fn find_users(&self, prefix: &str, limit: NonZeroU32, now: Timestamp) -> Result<Vec<UserId>, StoreError> {
        self.gate().await?;
        self.inner.find_users(prefix, limit, now).await
    }
    async fn scan(
        &self,
        after: Option<&SessionId>,
        limit: NonZeroU32,
        now: Timestamp,
    ) -> Result<Vec<Session>, StoreError> {
        self.gate().await?;
        self.inner.scan(after, limit, now).await
    }
}

#[async_trait]
impl Maintenance for FaultyStore {
    async fn count_active(&self, now: Timestamp) -> Result<u64, StoreError> {
        self.gate().await?;
        self.inner.count_active(now).await
    }
    async fn delete_expired(&self, now: Timestamp, limit: usize) -> Result<Vec<SessionRef>, StoreError> {
        self.gate().await?;
        self.inner.delete_expired(now, limit).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.gate().await
    }
}

#[async_trait]
impl ServiceStore for FaultyStore {
    async fn create_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        self.inner.create_service(service).await
    }
    async fn load_service(&self, id: &ServiceId) -> Result<Option<ServiceRecord>, StoreError> {
        self.inner.load_service(id).await
    }
    async fn list_services(
        &self,
        after: Option<&ServiceId>,
        limit: NonZeroU32,
    ) -> Result<Vec<ServiceRecord>, StoreError> {
        self.inner.list_services(after, limit).await
    }
    async fn update_service(&self, service: &ServiceRecord) -> Result<bool, StoreError> {
        self.inner.update_service(service).await
    }
    async fn delete_service(&self, id: &ServiceId) -> Result<bool, StoreError> {
        self.inner.delete_service(id).await
    }
}

// ---------------------------------------------------------------------------------------------
// The native flow

#[tokio::test]
async fn a_session_lives_through_the_whole_native_flow() {
    native_flow(Api::new().await).await;
}

/// The same flow writing every answer anew: nothing may depend on answers kept as written.
#[tokio::test]
async fn a_session_lives_through_the_whole_native_flow_with_no_answers_kept() {
    let options = ServerOptions { json_cache_size: 0, ..ServerOptions::default() };
    native_flow(Api::with(Arc::new(MemoryStore::new()), SessionPolicy::default(), options).await).await;
}

async fn native_flow(api: Api) {
    let (w, r) = (Some(api.writer.as_str()), Some(api.reader.as_str()));

    // Create two sessions for one user.
    let first = api
        .create(json!({
            "user_id": "alice", "device_id": "phone-1", "ip": "203.0.113.7", "user_agent": "Firefox",
            "attributes": {"theme": "dark"}, "ttl_secs": 600
        }))
        .await;
    assert_eq!(first["user_id"], "alice");
    assert_eq!(first["device"], json!({"device_id": "phone-1", "ip": "203.0.113.7", "user_agent": "Firefox"}));
    assert_eq!(first["attributes"], json!({"theme": "dark"}));
    assert_eq!(first["version"], 1);
    assert_eq!(first["idle_ttl_secs"], 600);
    assert_eq!(first["created_by"], "writer");
    let created = api.call(Method::POST, "/v1/sessions", w, Some(json!({"user_id": "alice"}))).await;
    assert_eq!(created.header(header::ETAG), "\"1\"");
    assert_eq!(created.header(header::LOCATION), format!("/v1/sessions/{}", id_of(&created.json)));
    api.call(Method::DELETE, &format!("/v1/sessions/{}", id_of(&created.json)), w, None).await;
    assert_eq!(id_of(&first).len(), sessanger_core::SessionId::LEN);
    for field in ["created_at", "last_access_at", "expires_at", "absolute_expires_at"] {
        assert!(first[field].as_str().is_some_and(|t| t.ends_with('Z')), "{field}: {}", first[field]);
    }
    let second = api.create(json!({"user_id": "alice"})).await;
    assert_eq!(second["device"], json!({}));
    let (one, two) = (id_of(&first), id_of(&second));

    // Set, remove and increment in one patch.
    let patched = api
        .call(
            Method::PATCH,
            &format!("/v1/sessions/{one}/attributes"),
            w,
            Some(json!({"set": {"cart": [1, 2]}, "remove": ["theme"], "incr": {"visits": 2}})),
        )
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.text);
    assert_eq!(patched.json["attributes"], json!({"cart": [1, 2], "visits": 2}));
    assert_eq!(patched.json["version"], 2);
    assert_eq!(patched.header(header::ETAG), "\"2\"");

    // If-Match at the current version applies; at a stale one it is refused.
    let attributes = format!("/v1/sessions/{one}/attributes");
    let incr = json!({"incr": {"visits": 1}});
    let matched = api.call_with(Method::PATCH, &attributes, w, Some(incr.clone()), &[("if-match", "\"2\"")]).await;
    assert_eq!(matched.status, StatusCode::OK, "{}", matched.text);
    assert_eq!(matched.json["attributes"]["visits"], 3);
    assert_eq!(matched.header(header::ETAG), "\"3\"");
    let stale = api.call_with(Method::PATCH, &attributes, w, Some(incr), &[("if-match", "\"2\"")]).await;
    stale.assert_error(412, "version_mismatch");

    // Read it back, with its ETag.
    let read = api.call(Method::GET, &format!("/v1/sessions/{one}"), r, None).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.header(header::ETAG), "\"3\"");
    assert_eq!(read.json["attributes"]["visits"], 3);

    // List the user's sessions (both were likely created in the same millisecond, so their
    // order is not asserted).
    let listed = api.call(Method::GET, "/v1/users/alice/sessions", r, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let mut ids: Vec<String> = listed.json["sessions"].as_array().unwrap().iter().map(id_of).collect();
    ids.sort();
    let mut expected = [one.clone(), two.clone()];
    expected.sort();
    assert_eq!(ids, expected);

    // Regenerate: the old id is gone, the data moved.
    let regenerated = api.call(Method::POST, &format!("/v1/sessions/{one}/regenerate"), w, None).await;
    assert_eq!(regenerated.status, StatusCode::OK, "{}", regenerated.text);
    let moved = regenerated.json["session_id"].as_str().unwrap().to_owned();
    assert_ne!(moved, one);
    assert_eq!(regenerated.json["session"]["session_id"], moved.as_str());
    assert_eq!(regenerated.json["session"]["attributes"]["visits"], 3);
    api.call(Method::GET, &format!("/v1/sessions/{one}"), r, None).await.assert_error(404, "session_not_found");
    assert_eq!(api.call(Method::GET, &format!("/v1/sessions/{moved}"), r, None).await.status, StatusCode::OK);

    // Refresh.
    let refreshed = api.call(Method::POST, &format!("/v1/sessions/{moved}/refresh"), w, None).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.text);
    assert_eq!(refreshed.json["session_id"], moved.as_str());

    // PUT replaces attributes and device at the version in If-Match, and only then.
    let version = refreshed.header(header::ETAG).to_owned();
    let session_uri = format!("/v1/sessions/{moved}");
    let replacement = json!({"attributes": {"a": 1}, "device": {"device_id": "laptop"}});
    let replaced =
        api.call_with(Method::PUT, &session_uri, w, Some(replacement.clone()), &[("if-match", &version)]).await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    assert_eq!(replaced.json["attributes"], json!({"a": 1}));
    assert_eq!(replaced.json["device"], json!({"device_id": "laptop"}));
    assert_ne!(replaced.header(header::ETAG), version);
    api.call_with(Method::PUT, &session_uri, w, Some(replacement.clone()), &[("if-match", &version)])
        .await
        .assert_error(412, "version_mismatch");
    api.call(Method::PUT, &session_uri, w, Some(replacement)).await.assert_error(428, "precondition_required");

    // Stats, delete, revoke all.
    let stats = api.call(Method::GET, "/v1/stats", r, None).await;
    assert_eq!(stats.json, json!({"active_sessions": 2}));
    let deleted = api.call(Method::DELETE, &format!("/v1/sessions/{two}"), w, None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.text.is_empty());
    api.call(Method::DELETE, &format!("/v1/sessions/{two}"), w, None).await.assert_error(404, "session_not_found");
    let revoked = api.call(Method::DELETE, "/v1/users/alice/sessions", w, None).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert_eq!(revoked.json, json!({"deleted": 1}));
    assert_eq!(api.call(Method::GET, "/v1/stats", r, None).await.json, json!({"active_sessions": 0}));
    assert_eq!(api.call(Method::GET, "/v1/users/alice/sessions", r, None).await.json, json!({"sessions": []}));
}

#[tokio::test]
async fn if_match_applies_to_listed_strong_tags_and_any_other_tag_is_412() {
    let api = Api::new().await;
    let id = id_of(&api.create(json!({"user_id": "bob"})).await);
    let uri = format!("/v1/sessions/{id}/attributes");
    let w = Some(api.writer.as_str());
    let incr = || Some(json!({"incr": {"n": 1}}));
    for (tag, after) in [("\"1\"", 2), ("2", 3), ("\"7\", \"3\"", 4), ("*", 5)] {
        let reply = api.call_with(Method::PATCH, &uri, w, incr(), &[("if-match", tag)]).await;
        assert_eq!(reply.status, StatusCode::OK, "{tag}: {}", reply.text);
        assert_eq!(reply.json["version"], after);
    }
    // RFC 9110: a weak tag never matches for If-Match, and a tag no version carries matches
    // nothing; both are 412, and nothing changes.
    for tag in ["W/\"5\"", "\"anything-not-current\"", "abc", "\"4\", \"6\""] {
        api.call_with(Method::PATCH, &uri, w, incr(), &[("if-match", tag)]).await.assert_error(412, "version_mismatch");
    }
    let r = Some(api.reader.as_str());
    assert_eq!(api.call(Method::GET, &format!("/v1/sessions/{id}"), r, None).await.json["version"], 5);
    // PUT takes `*` to mean "whatever the version", but still needs the header.
    let put = json!({"attributes": {"a": 1}, "device": {}});
    let replaced =
        api.call_with(Method::PUT, &format!("/v1/sessions/{id}"), w, Some(put.clone()), &[("if-match", "*")]).await;
    assert_eq!(replaced.json["version"], 6, "{}", replaced.text);
    api.call(Method::PUT, &format!("/v1/sessions/{id}"), w, Some(put)).await.assert_error(428, "precondition_required");
}

#[tokio::test]
async fn if_none_match_with_the_current_etag_is_304_without_a_body() {
    let api = Api::new().await;
    let id = id_of(&api.create(json!({"user_id": "bob"})).await);
    let (uri, r) = (format!("/v1/sessions/{id}"), Some(api.reader.as_str()));
    for tag in ["\"1\"", "W/\"1\"", "\"0\", \"1\"", "*"] {
        let reply = api.call_with(Method::GET, &uri, r, None, &[("if-none-match", tag)]).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{tag}");
        assert_eq!(reply.headers[header::ETAG], "\"1\"");
        assert!(reply.text.is_empty());
    }
    let changed = api.call_with(Method::GET, &uri, r, None, &[("if-none-match", "\"0\"")]).await;
    assert_eq!(changed.status, StatusCode::OK);
    assert_eq!(changed.json["version"], 1);
}

#[tokio::test]
async fn prefer_return_minimal_answers_a_write_with_its_etag_and_no_body() {
    let api = Api::new().await;
    let id = id_of(&api.create(json!({"user_id": "bob", "attributes": {"n": 1}})).await);
    let w = Some(api.writer.as_str());
    let minimal = [("prefer", "return=minimal")];
    let uri = format!("/v1/sessions/{id}/attributes");
    let reply = api.call_with(Method::PATCH, &uri, w, Some(json!({"incr": {"n": 1}})), &minimal).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);
    assert_eq!((reply.header(header::ETAG), reply.text.as_str()), ("\"2\"", ""));
    assert_eq!(reply.headers["preference-applied"], "return=minimal");
    let put = json!({"attributes": {"n": 7}, "device": {}});
    let reply = api
        .call_with(Method::PUT, &format!("/v1/sessions/{id}"), w, Some(put), &[minimal[0], ("if-match", "\"2\"")])
        .await;
    assert_eq!((reply.status, reply.header(header::ETAG)), (StatusCode::NO_CONTENT, "\"3\""), "{}", reply.text);
    // The writes were applied; without the preference (or with another) the session comes back.
    let reply = api
        .call_with(Method::PATCH, &uri, w, Some(json!({"incr": {"n": 1}})), &[("prefer", "return=representation")])
        .await;
    assert_eq!(
        (reply.status, &reply.json["attributes"]["n"], &reply.json["version"]),
        (StatusCode::OK, &json!(8), &json!(4))
    );
    // A failure is still the JSON error, whatever the preference.
    api.call_with(Method::PATCH, &uri, w, Some(json!({"incr": {"n": 1}})), &[minimal[0], ("if-match", "\"1\"")])
        .await
        .assert_error(412, "version_mismatch");
}

#[tokio::test]
async fn an_absolute_deadline_is_set_at_creation_and_moved_by_a_put_but_never_into_the_past() {
    let api = Api::new().await;
    let at = |secs: i64| {
        let now = sessanger_core::Timestamp::now().as_millis();
        serde_json::to_value(sessanger_core::Timestamp::from_millis(now / 1000 * 1000 + secs * 1000)).unwrap()
    };
    let (hour, two_hours) = (at(3600), at(7200));
    let created = api.create(json!({"user_id": "bob", "absolute_expires_at": hour})).await;
    assert_eq!(created["absolute_expires_at"], hour);
    assert!(created["expires_at"].as_str() < hour.as_str(), "the idle deadline (30 min) comes first");
    let id = id_of(&created);
    let (w, uri) = (Some(api.writer.as_str()), format!("/v1/sessions/{id}"));
    let put = json!({"attributes": {"k": 1}, "absolute_expires_at": two_hours});
    let moved = api.call_with(Method::PUT, &uri, w, Some(put), &[("if-match", "\"1\"")]).await;
    assert_eq!((moved.status, &moved.json["absolute_expires_at"]), (StatusCode::OK, &two_hours), "{}", moved.text);
    // A deadline not in the future is refused with its own code, and changes nothing.
    let past = json!({"attributes": {"k": 2}, "absolute_expires_at": at(-1)});
    api.call_with(Method::PUT, &uri, w, Some(past), &[("if-match", "*")]).await.assert_error(422, "deadline_passed");
    api.create_refused(json!({"user_id": "bob", "absolute_expires_at": at(-1)}), 422, "deadline_passed").await;
    let unchanged = api.call(Method::GET, &uri, Some(&api.reader), None).await;
    assert_eq!((&unchanged.json["version"], &unchanged.json["attributes"]), (&json!(2), &json!({"k": 1})));
}

#[tokio::test]
async fn a_users_sessions_come_in_bounded_pages_that_cover_each_once() {
    let api = Api::new().await;
    for _ in 0..250 {
        api.create(json!({"user_id": "erin"})).await;
    }
    let r = Some(api.reader.as_str());
    let first = api.call(Method::GET, "/v1/users/erin/sessions", r, None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json["sessions"].as_array().unwrap().len(), 100, "the default page is 100");
    let mut seen = std::collections::HashSet::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let uri = match &cursor {
            None => "/v1/users/erin/sessions?limit=64".to_owned(),
            Some(c) => format!("/v1/users/erin/sessions?limit=64&cursor={c}"),
        };
        let page = api.call(Method::GET, &uri, r, None).await;
        let sessions = page.json["sessions"].as_array().unwrap();
        assert!(sessions.len() <= 64);
        seen.extend(sessions.iter().map(id_of));
        pages += 1;
        match page.json["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen.len(), pages), (250, 4), "every session once, in ceil(250 / 64) pages");
    for bad in ["limit=0", "limit=1001", "limit=ten", "cursor=nope", "cursor=12.not-an-id"] {
        api.call(Method::GET, &format!("/v1/users/erin/sessions?{bad}"), r, None)
            .await
            .assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn every_session_or_one_creators_come_in_pages_that_cover_each_once() {
    let api = Api::new().await;
    for i in 0..150 {
        api.create(json!({"user_id": format!("user-{}", i % 7)})).await;
    }
    let a = Some(api.admin.as_str());
    for i in 0..30 {
        let reply = api.call(Method::POST, "/v1/sessions", a, Some(json!({"user_id": format!("admin-{i}")}))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    let pages = |filter: &'static str, limit: usize| {
        let api = &api;
        async move {
            let (mut seen, mut cursor, mut pages) = (std::collections::HashSet::new(), None::<String>, 0);
            loop {
                let uri = match &cursor {
                    None => format!("/v1/sessions?limit={limit}{filter}"),
                    Some(c) => format!("/v1/sessions?limit={limit}{filter}&cursor={c}"),
                };
                let page = api.call(Method::GET, &uri, Some(&api.reader), None).await;
                assert_eq!(page.status, StatusCode::OK, "{}", page.text);
                let sessions = page.json["sessions"].as_array().unwrap();
                assert!(sessions.len() <= limit);
                for session in sessions {
                    assert!(seen.insert(id_of(session)), "a session listed twice");
                }
                pages += 1;
                match page.json["next_cursor"].as_str() {
                    Some(next) => cursor = Some(next.to_owned()),
                    None => return (seen, pages),
                }
            }
        }
    };
    let (all, _) = pages("", 64).await;
    assert_eq!(all.len(), 180);
    let (written, _) = pages("&created_by=writer", 64).await;
    assert_eq!(written.len(), 150, "only the writer's");
    // Pages of a filter may hold fewer than asked (a request reads a bounded part of the store).
    let (by_admin, _) = pages("&created_by=admin", 10).await;
    assert_eq!(by_admin.len(), 30);
    assert!(by_admin.is_disjoint(&written));
    let (none, _) = pages("&created_by=nobody", 100).await;
    assert!(none.is_empty());
    for bad in ["limit=0", "limit=1001", "cursor=nope", "created_by=Not%20A%20Service"] {
        api.call(Method::GET, &format!("/v1/sessions?{bad}"), Some(&api.reader), None)
            .await
            .assert_error(400, "invalid_request");
    }
}

#[tokio::test]
async fn services_come_in_pages_ordered_by_id() {
    let api = Api::new().await;
    let a = Some(api.admin.as_str());
    for id in ["svc-c", "svc-a", "svc-b"] {
        let reply = api.call(Method::POST, "/v1/services", a, Some(json!({"id": id, "permissions": ["read"]}))).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text);
    }
    // admin, reader, svc-a, svc-b, svc-c, writer: three pages of two.
    let mut ids = Vec::new();
    let mut uri = "/v1/services?limit=2".to_owned();
    loop {
        let page = api.call(Method::GET, &uri, a, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        ids.extend(page.json["services"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        match page.json["next_cursor"].as_str() {
            Some(next) => uri = format!("/v1/services?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(ids, ["admin", "reader", "svc-a", "svc-b", "svc-c", "writer"]);
    api.call(Method::GET, "/v1/services?cursor=Not.An.Id", a, None).await.assert_error(400, "invalid_request");
}

#[tokio::test]
async fn create_never_takes_the_device_from_the_calling_request() {
    let api = Api::new().await;
    let reply = api
        .call_with(
            Method::POST,
            "/v1/sessions",
            Some(&api.writer),
            Some(json!({"user_id": "carol"})),
            &[("user-agent", "curl/8"), ("x-forwarded-for", "198.51.100.1")],
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(reply.json["device"], json!({}));
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn requests_without_a_valid_bearer_token_are_unauthorized() {
    let api = Api::new().await;
    let forged = format!("{}x", api.reader);
    let cases: [(&str, Option<String>); 5] = [
        ("no token", None),
        ("wrong secret", Some(format!("Bearer {forged}"))),
        ("unknown service", Some("Bearer ghost.c2VjcmV0".into())),
        ("malformed token", Some("Bearer garbage".into())),
        ("wrong scheme", Some(format!("Basic {}", api.reader))),
    ];
    for (case, authorization) in cases {
        let mut request = Request::get("/v1/stats");
        if let Some(value) = authorization {
            request = request.header(header::AUTHORIZATION, value);
        }
        let reply = api.send(request.body(Body::empty()).unwrap()).await;
        reply.assert_error(401, "unauthorized");
        assert_eq!(reply.header(header::WWW_AUTHENTICATE), "Bearer", "{case}");
    }
    // Authentication comes before the body: no token, no parsing.
    api.call(Method::POST, "/v1/sessions", None, Some(json!({"nonsense": true})))
        .await
        .assert_error(401, "unauthorized");
}

#[tokio::test]
async fn services_without_the_needed_permission_are_forbidden() {
    let api = Api::new().await;
    let (r, w) = (Some(api.reader.as_str()), Some(api.writer.as_str()));
    api.call(Method::POST, "/v1/sessions", r, Some(json!({"user_id": "dave"}))).await.assert_error(403, "forbidden");
    api.call(Method::DELETE, "/v1/users/dave/sessions", r, None).await.assert_error(403, "forbidden");
    api.call(Method::GET, "/v1/services", w, None).await.assert_error(403, "forbidden");
    api.call(Method::POST, "/v1/services", w, Some(json!({"id": "x", "permissions": ["admin"]})))
        .await
        .assert_error(403, "forbidden");
    // Admin implies read and write.
    assert_eq!(api.call(Method::GET, "/v1/stats", Some(&api.admin), None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn unknown_sessions_malformed_ids_and_unknown_routes_are_not_found() {
    let api = Api::new().await;
    let r = Some(api.reader.as_str());
    let unknown = SessionId::generate();
    api.call(Method::GET, &format!("/v1/sessions/{unknown}"), r, None).await.assert_error(404, "session_not_found");
    api.call(Method::GET, "/v1/sessions/not-a-session-id", r, None).await.assert_error(404, "invalid_session_id");
    api.call(Method::POST, "/v1/sessions/short/refresh", Some(&api.writer), None)
        .await
        .assert_error(404, "invalid_session_id");
    api.call(Method::GET, "/v1/nothing-here", r, None).await.assert_error(404, "not_found");
    api.call(Method::GET, "/nothing-here", None, None).await.assert_error(404, "not_found");
}

/// `GET /v1/sessions/{id}` with the id as written is answered ahead of the router; the same
/// read with a percent-escape in its id, or as `HEAD`, goes through the router. Both ways
/// must give the same answers, be counted under the same route and be cut off alike.
#[tokio::test]
async fn a_session_read_answers_the_same_ahead_of_the_router_and_through_it() {
    let api = Api::new().await;
    let id = id_of(&api.create(json!({"user_id": "quinn", "attributes": {"theme": "dark"}})).await);
    let direct = format!("/v1/sessions/{id}");
    // `%41` is `A`: the router decodes it into the same id.
    let routed = format!("/v1/sessions/%{:02X}{}", id.as_bytes()[0], &id[1..]);
    async fn read(api: &Api, uri: &str, token: Option<&str>, headers: &[(&str, &str)]) -> Reply {
        api.call_with(Method::GET, uri, token, None, headers).await
    }
    let (a, b) = (read(&api, &direct, Some(&api.reader), &[]).await, read(&api, &routed, Some(&api.reader), &[]).await);
    assert_eq!((a.status, b.status), (StatusCode::OK, StatusCode::OK), "{} / {}", a.text, b.text);
    assert_eq!(a.text, b.text);
    assert_eq!(a.json["attributes"]["theme"], "dark");
    for name in [header::ETAG, header::CACHE_CONTROL, header::CONTENT_TYPE] {
        assert_eq!(a.header(name.clone()), b.header(name), "{a:?}");
    }
    let current = [("if-none-match", "\"1\"")];
    for uri in [&direct, &routed] {
        let reply = read(&api, uri, Some(&api.reader), &current).await;
        assert_eq!(reply.status, StatusCode::NOT_MODIFIED, "{uri}: {}", reply.text);
        assert_eq!((reply.header(header::ETAG), reply.text.as_str()), ("\"1\"", ""));
        read(&api, uri, None, &[]).await.assert_error(401, "unauthorized");
        read(&api, uri, Some("garbage"), &[]).await.assert_error(401, "unauthorized");
        read(&api, uri, Some(&api.writer), &[]).await.assert_error(403, "forbidden");
    }
    let unknown = SessionId::generate().to_string();
    read(&api, &format!("/v1/sessions/{unknown}"), Some(&api.reader), &[]).await.assert_error(404, "session_not_found");
    read(&api, &format!("{direct}/"), Some(&api.reader), &[]).await.assert_error(404, "not_found");
    assert_eq!(read(&api, &format!("{direct}?x=1"), Some(&api.reader), &[]).await.status, StatusCode::OK);
    let head = api.call(Method::HEAD, &direct, Some(&api.reader), None).await;
    assert_eq!((head.status, head.text.as_str(), head.header(header::ETAG)), (StatusCode::OK, "", "\"1\""));
    // Counted together, under the route's template, whichever way they went.
    let metrics = api.call(Method::GET, "/metrics", None, None).await.text;
    let series = r#"sessanger_http_requests_total{route="/v1/sessions/{id}",method="GET",status="200"}"#;
    assert!(metrics.lines().any(|line| line == format!("{series} 3")), "{metrics}");
    let series = r#"sessanger_http_requests_total{route="/v1/sessions/{id}",method="GET",status="304"}"#;
    assert!(metrics.lines().any(|line| line == format!("{series} 2")), "{metrics}");
}

#[tokio::test]
async fn a_read_that_outlives_the_timeout_is_cut_off_ahead_of_the_router_too() {
    let options = ServerOptions { request_timeout: Duration::from_millis(50), ..ServerOptions::default() };
    let api = Api::with(Arc::new(FaultyStore::new(Mode::Hang)), SessionPolicy::default(), options).await;
    let uri = format!("/v1/sessions/{}", SessionId::generate());
    api.call(Method::GET, &uri, Some(&api.reader), None).await.assert_error(503, "request_timeout");
    let metrics = api.call(Method::GET, "/metrics", None, None).await.text;
    let series = r#"sessanger_http_requests_total{route="/v1/sessions/{id}",method="GET",status="503"} 1"#;
    assert!(metrics.lines().any(|line| line == series), "{metrics}");
}

#[tokio::test]
async fn a_method_the_route_does_not_serve_is_not_allowed() {
    let api = Api::new().await;
    let reply = api.call(Method::DELETE, "/v1/stats", Some(&api.admin), None).await;
    reply.assert_error(405, "method_not_allowed");
    assert!(reply.header(header::ALLOW).contains("GET"), "{:?}", reply.headers);
}

#[tokio::test]
async fn bodies_over_the_limit_are_payload_too_large() {
    let options = ServerOptions { body_limit: 256, ..ServerOptions::default() };
    let api = Api::with(Arc::new(MemoryStore::new()), SessionPolicy::default(), options).await;
    let big = json!({"user_id": "erin", "attributes": {"blob": "x".repeat(1024)}});
    api.call(Method::POST, "/v1/sessions", Some(&api.writer), Some(big)).await.assert_error(413, "payload_too_large");
    // Under the limit is fine.
    api.create(json!({"user_id": "erin"})).await;
}

#[tokio::test]
async fn malformed_bodies_and_ids_are_invalid_requests() {
    let api = Api::new().await;
    let w = Some(api.writer.as_str());
    let raw = |body: &'static str, content_type: Option<&'static str>| {
        let mut request = Request::post("/v1/sessions").header(header::AUTHORIZATION, format!("Bearer {}", api.writer));
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        request.body(Body::from(body)).unwrap()
    };
    api.send(raw("{\"user_id\":", Some("application/json"))).await.assert_error(400, "invalid_request");
    api.send(raw("{\"user_id\":\"frank\"}", None)).await.assert_error(415, "unsupported_media_type");
    api.send(raw("{\"user_id\":\"frank\"}", Some("text/plain"))).await.assert_error(415, "unsupported_media_type");
    for body in [
        json!({"user_id": 5}),
        json!({"user_id": ""}),
        json!({"user_id": "frank", "colour": "blue"}),
        json!({"user_id": "frank", "ttl_secs": -1}),
        json!({"user_id": "frank", "ttl_secs": 0}),
        json!({"user_id": "frank", "attributes": []}),
    ] {
        let reply = api.call(Method::POST, "/v1/sessions", w, Some(body.clone())).await;
        reply.assert_error(400, "invalid_request");
    }
    api.call(Method::GET, "/v1/users/a%0Ab/sessions", Some(&api.reader), None)
        .await
        .assert_error(400, "invalid_request");
    // A parameter that is not UTF-8 once decoded.
    api.call(Method::GET, "/v1/users/a%FFb/sessions", Some(&api.reader), None)
        .await
        .assert_error(400, "invalid_request");
    api.call(Method::GET, "/v1/sessions/%FF", Some(&api.reader), None).await.assert_error(400, "invalid_request");
    let unknown_field = api.call(Method::POST, "/v1/sessions", w, Some(json!({"user_id": "f", "colour": 1}))).await;
    assert!(unknown_field.json["error"]["message"].as_str().unwrap().contains("colour"), "{}", unknown_field.text);
}

#[tokio::test]
async fn patches_that_cannot_apply_are_unprocessable() {
    let api = Api::new().await;
    let session = api.create(json!({"user_id": "gina", "attributes": {"name": "Gina"}})).await;
    let uri = format!("/v1/sessions/{}/attributes", id_of(&session));
    let w = Some(api.writer.as_str());
    api.call(Method::PATCH, &uri, w, Some(json!({"set": {"a": 1}, "remove": ["a"]})))
        .await
        .assert_error(422, "invalid_patch");
    api.call(Method::PATCH, &uri, w, Some(json!({"set": {"": 1}}))).await.assert_error(422, "invalid_patch");
    api.call(Method::PATCH, &uri, w, Some(json!({"incr": {"name": 1}}))).await.assert_error(422, "not_an_integer");
    api.call(Method::PATCH, &uri, w, Some(json!({"incr": {"n": 1.5}}))).await.assert_error(422, "not_an_integer");
    api.call(Method::PATCH, &uri, w, Some(json!({"rename": {}}))).await.assert_error(400, "invalid_request");
    // Nothing was applied.
    let read = api.call(Method::GET, &format!("/v1/sessions/{}", id_of(&session)), Some(&api.reader), None).await;
    assert_eq!(read.json["version"], 1, "{}", read.text);
}

#[tokio::test]
async fn a_user_at_the_session_limit_gets_too_many_sessions() {
    let policy =
        SessionPolicy { max_per_user: UserLimit::Refuse(NonZeroU32::new(1).unwrap()), ..SessionPolicy::default() };
    let api = Api::with(Arc::new(MemoryStore::new()), policy, ServerOptions::default()).await;
    api.create(json!({"user_id": "hank"})).await;
    api.call(Method::POST, "/v1/sessions", Some(&api.writer), Some(json!({"user_id": "hank"})))
        .await
        .assert_error(409, "too_many_sessions");
}

#[tokio::test]
async fn every_v1_response_says_no_store() {
    let api = Api::new().await;
    let session = api.create(json!({"user_id": "ivy"})).await;
    let replies = [
        api.call(Method::GET, &format!("/v1/sessions/{}", id_of(&session)), Some(&api.reader), None).await,
        api.call(Method::GET, "/v1/stats", None, None).await,
        api.call(Method::GET, "/v1/missing", Some(&api.reader), None).await,
        api.call(Method::DELETE, "/v1/stats", Some(&api.reader), None).await,
    ];
    for reply in replies {
        assert_eq!(reply.header(header::CACHE_CONTROL), "no-store", "{} {}", reply.status, reply.text);
    }
}

// ---------------------------------------------------------------------------------------------
// The service registry

#[tokio::test]
async fn admins_list_register_change_and_remove_services() {
    let api = Api::new().await;
    let a = Some(api.admin.as_str());

    let listed = api.call(Method::GET, "/v1/services", a, None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let ids: Vec<&str> =
        listed.json["services"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["admin", "reader", "writer"]);
    assert_eq!(listed.json["services"][1]["permissions"], json!(["read"]));
    assert!(!listed.text.contains("sha256") && !listed.text.contains("secret"), "{}", listed.text);

    let registered =
        api.call(Method::POST, "/v1/services", a, Some(json!({"id": "billing", "permissions": ["read"]}))).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.text);
    assert_eq!(registered.json["service"]["id"], "billing");
    assert_eq!(registered.json["service"]["name"], "billing");
    let token = registered.json["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("billing."));
    assert_eq!(api.call(Method::GET, "/v1/stats", Some(&token), None).await.status, StatusCode::OK);

    api.call(Method::POST, "/v1/services", a, Some(json!({"id": "billing", "name": "Again", "permissions": []})))
        .await
        .assert_error(409, "service_exists");
    api.call(Method::POST, "/v1/services", a, Some(json!({"id": "Bad.Id", "permissions": []})))
        .await
        .assert_error(400, "invalid_request");
    api.call(Method::POST, "/v1/services", a, Some(json!({"id": "x", "permissions": ["root"]})))
        .await
        .assert_error(400, "invalid_request");

    // Given write, it may create sessions; its permissions come back each once, in order.
    let user = json!({"user_id": "u1"});
    api.call(Method::POST, "/v1/sessions", Some(&token), Some(user.clone())).await.assert_error(403, "forbidden");
    let changed = json!({"permissions": ["write", "read", "write"]});
    let updated = api.call(Method::PATCH, "/v1/services/billing", a, Some(changed.clone())).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.text);
    assert_eq!(updated.json["permissions"], json!(["read", "write"]));
    assert_eq!(
        api.call(Method::POST, "/v1/sessions", Some(&token), Some(user.clone())).await.status,
        StatusCode::CREATED
    );
    // Taken back, at once on this node.
    let read_only = Some(json!({"permissions": ["read"]}));
    assert_eq!(api.call(Method::PATCH, "/v1/services/billing", a, read_only.clone()).await.status, StatusCode::OK);
    api.call(Method::POST, "/v1/sessions", Some(&token), Some(user)).await.assert_error(403, "forbidden");
    // Only admins change services; bad bodies and unknown services change nothing.
    api.call(Method::PATCH, "/v1/services/billing", Some(&token), Some(changed.clone()))
        .await
        .assert_error(403, "forbidden");
    for body in
        [json!({"permissions": ["root"]}), json!({"permissions": "read"}), json!({"name": "x", "permissions": []})]
    {
        api.call(Method::PATCH, "/v1/services/billing", a, Some(body)).await.assert_error(400, "invalid_request");
    }
    api.call(Method::PATCH, "/v1/services/nobody", a, Some(changed.clone()))
        .await
        .assert_error(404, "service_not_found");
    let listed = api.call(Method::GET, "/v1/services", a, None).await;
    let billing = listed.json["services"].as_array().unwrap().iter().find(|s| s["id"] == "billing").unwrap().clone();
    assert_eq!(billing["permissions"], json!(["read"]));
    assert!(!listed.text.contains("nobody"));

    let removed = api.call(Method::DELETE, "/v1/services/billing", a, None).await;
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    api.call(Method::PATCH, "/v1/services/billing", a, read_only).await.assert_error(404, "service_not_found");
    api.call(Method::GET, "/v1/stats", Some(&token), None).await.assert_error(401, "unauthorized");
    api.call(Method::DELETE, "/v1/services/billing", a, None).await.assert_error(404, "service_not_found");
    api.call(Method::DELETE, "/v1/services/Bad.Id", a, None).await.assert_error(404, "service_not_found");
}

// ---------------------------------------------------------------------------------------------
// Operations

#[tokio::test]
async fn health_and_readiness_answer_without_a_token() {
    let api = Api::new().await;
    let health = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((health.status, &health.json), (StatusCode::OK, &json!({"status": "ok"})));
    // Answered ahead of the router (`app.rs`) as the router answers it: `HEAD` goes through the
    // routed handler, `?query` and a token change nothing, a longer path is no probe.
    let head = api.call(Method::HEAD, "/healthz", None, None).await;
    assert_eq!((head.status, head.text.as_str()), (StatusCode::OK, ""));
    for name in [header::CACHE_CONTROL, header::CONTENT_TYPE] {
        assert_eq!(health.header(name.clone()), head.header(name), "{health:?}");
    }
    assert_eq!(health.header(header::CACHE_CONTROL), "no-store");
    for (uri, token) in [("/healthz?verbose=1", None), ("/healthz", Some("garbage"))] {
        let reply = api.call(Method::GET, uri, token, None).await;
        assert_eq!((reply.status, &reply.text), (StatusCode::OK, &health.text), "{uri}");
    }
    api.call(Method::GET, "/healthz/", None, None).await.assert_error(404, "not_found");
    let metrics = api.call(Method::GET, "/metrics", None, None).await.text;
    for (method, count) in [("GET", 3), ("HEAD", 1)] {
        let series =
            format!(r#"sessanger_http_requests_total{{route="/healthz",method="{method}",status="200"}} {count}"#);
        assert!(metrics.lines().any(|line| line == series), "{series} in {metrics}");
    }
    let ready = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((ready.status, ready.json), (StatusCode::OK, json!({"status": "ready"})));
}

#[tokio::test]
async fn the_openapi_document_describes_the_native_and_compat_routes_and_bearer_auth() {
    let api = Api::new().await;
    let reply = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/v1/sessions", "/v1/sessions/{id}", "/v1/sessions/{id}/attributes", "/v1/services", "/healthz"] {
        assert!(doc["paths"][path].is_object(), "missing {path}");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    assert!(doc["paths"]["/v1/sessions"]["post"]["responses"]["401"].is_object());
    assert!(doc["paths"]["/healthz"]["get"]["responses"]["401"].is_null());
    assert!(doc["components"]["schemas"]["ErrorCode"]["enum"].as_array().unwrap().contains(&json!("version_mismatch")));
    assert!(!doc["components"]["schemas"]["ErrorCode"]["enum"].as_array().unwrap().contains(&json!("unknown")));
    // The compat APIs too, each route with every method it answers.
    for (path, methods) in [
        ("/a01/session", &["post", "patch", "get", "delete"][..]),
        ("/a01/session/{id}", &["get", "patch", "delete"]),
        ("/a01/session/user/{user_id}", &["get", "delete"]),
        ("/sessman/new", &["get", "post"]),
        ("/sessman/update", &["get", "post"]),
        ("/sessman/get", &["get", "post"]),
    ] {
        for method in methods {
            assert!(doc["paths"][path][method].is_object(), "missing {method} {path}");
        }
    }
    assert_eq!(doc, serde_json::to_value(openapi()).unwrap());
}

#[tokio::test]
async fn metrics_count_requests_by_route_template() {
    let api = Api::new().await;
    let session = api.create(json!({"user_id": "jack"})).await;
    api.call(Method::GET, &format!("/v1/sessions/{}", id_of(&session)), Some(&api.reader), None).await;
    api.call(Method::GET, "/healthz", None, None).await;
    let reply = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.header(header::CONTENT_TYPE).starts_with("text/plain"));
    let text = reply.text;
    assert!(text.contains("# TYPE sessanger_http_requests_total counter"), "{text}");
    for series in [
        r#"route="/healthz""#,
        r#"route="/v1/sessions/{id}""#,
        r#"status="201""#,
        "sessanger_http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(series), "missing {series} in\n{text}");
    }
    assert!(!text.contains(&id_of(&session)), "a session id leaked into a label");
}

#[tokio::test]
async fn store_failures_are_opaque_internal_errors() {
    let store = Arc::new(FaultyStore::new(Mode::Other));
    let api = Api::with(store, SessionPolicy::default(), ServerOptions::default()).await;
    let reply = api.call(Method::POST, "/v1/sessions", Some(&api.writer), Some(json!({"user_id": "kim"}))).await;
    reply.assert_error(500, "internal");
    assert!(!reply.text.contains("secret detail"), "{}", reply.text);
    assert!(!reply.text.contains("backend"), "{}", reply.text);
    let metrics = api.call(Method::GET, "/metrics", None, None).await.text;
    assert!(metrics.contains(r#"sessanger_store_errors_total{kind="backend"} 1"#), "{metrics}");
}

#[tokio::test]
async fn an_unreachable_store_is_service_unavailable() {
    let store = Arc::new(FaultyStore::new(Mode::Unavailable));
    let api = Api::with(store, SessionPolicy::default(), ServerOptions::default()).await;
    let reply = api.call(Method::GET, "/v1/stats", Some(&api.reader), None).await;
    reply.assert_error(503, "store_unavailable");
    assert!(!reply.text.contains("connection refused"), "{}", reply.text);
    api.call(Method::GET, "/readyz", None, None).await.assert_error(503, "store_unavailable");
    assert_eq!(api.call(Method::GET, "/healthz", None, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_that_outlives_the_timeout_is_cut_off() {
    let options = ServerOptions { request_timeout: Duration::from_millis(50), ..ServerOptions::default() };
    let api = Api::with(Arc::new(FaultyStore::new(Mode::Hang)), SessionPolicy::default(), options).await;
    api.call(Method::GET, "/v1/stats", Some(&api.reader), None).await.assert_error(503, "request_timeout");
}

// ---------------------------------------------------------------------------------------------
// A real server

#[tokio::test]
async fn serve_answers_over_tcp_finishes_in_flight_requests_and_stops_on_shutdown() {
    let store = Arc::new(FaultyStore::new(Mode::Slow));
    let entered = Arc::clone(&store.entered);
    let manager = SessionManager::with_policy(store, SessionPolicy::default());
    let (_, token) = manager.register_service("writer".parse().unwrap(), "W", vec![Permission::Write]).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, AppState::new(manager, ServerOptions::default()), async {
        let _ = stopped.await;
    }));

    // A plain request.
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.to_ascii_lowercase().contains("cache-control: no-store"), "{response}");
    assert!(response.ends_with(r#"{"status":"ok"}"#), "{response}");

    // A slow request in flight when shutdown is asked for still gets its answer.
    let body = r#"{"user_id":"lena"}"#;
    let request = format!(
        "POST /v1/sessions HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        token.expose(),
        body.len()
    );
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    entered.notified().await;
    stop.send(()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 201 Created\r\n"), "{response}");

    let served = tokio::time::timeout(Duration::from_secs(5), server).await.expect("the server stops").unwrap();
    served.unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "the listener is closed");
}

#[tokio::test]
async fn a_caller_may_choose_the_session_id_once_and_only_with_the_users_shard_tag() {
    let api = Api::new().await;
    let id = SessionId::generate_for(&"ivy".parse().unwrap());
    let created = api.create(json!({"user_id": "ivy", "session_id": id.as_ref()})).await;
    assert_eq!(created["session_id"], id.as_ref());
    api.call(
        Method::POST,
        "/v1/sessions",
        Some(&api.writer),
        Some(json!({"user_id": "ivy", "session_id": id.as_ref()})),
    )
    .await
    .assert_error(409, "session_id_taken");
    let foreign = SessionId::generate_for(&"jack".parse().unwrap());
    api.call(
        Method::POST,
        "/v1/sessions",
        Some(&api.writer),
        Some(json!({"user_id": "ivy", "session_id": foreign.as_ref()})),
    )
    .await
    .assert_error(400, "invalid_request");
    api.call(Method::POST, "/v1/sessions", Some(&api.writer), Some(json!({"user_id": "ivy", "session_id": "short"})))
        .await
        .assert_error(400, "invalid_request");
}

// ---------------------------------------------------------------------------------------------
// Events

/// One Server-Sent Events message.
#[derive(Debug)]
struct Message {
    id: Option<String>,
    event: String,
    data: Value,
}

/// The body of a `GET /v1/events` answer, read message by message.
struct EventReader {
    body: axum::body::BodyDataStream,
    buffer: String,
}

impl EventReader {
    /// The next message (heartbeat comments skipped), or `None` if none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Message> {
        use futures::StreamExt;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, "message".to_owned(), String::new());
                for line in block.lines() {
                    match line.split_once(':') {
                        Some(("id", value)) => id = Some(value.trim().to_owned()),
                        Some(("event", value)) => event = value.trim().to_owned(),
                        Some(("data", value)) => data.push_str(value.trim()),
                        _ => {}
                    }
                }
                if !data.is_empty() {
                    return Some(Message { id, event, data: serde_json::from_str(&data).unwrap() });
                }
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await.ok()??.unwrap();
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

impl Api {
    /// Opens `GET uri` as the reader service; the answer must be a stream.
    async fn events(&self, uri: &str, headers: &[(&str, &str)]) -> EventReader {
        let mut request = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {}", self.reader));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self.app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
        EventReader { body: response.into_body().into_data_stream(), buffer: String::new() }
    }
}

const NO_MORE: Duration = Duration::from_millis(300);
const SOON: Duration = Duration::from_secs(5);

#[tokio::test]
async fn events_stream_every_change_and_resume_after_the_last_id_seen() {
    let api = Api::new().await;
    let mut live = api.events("/v1/events", &[]).await;
    let session = api.create(json!({"user_id": "alice", "attributes": {"cart": 1}})).await;
    let id = id_of(&session);
    let patch = json!({"set": {"theme": "dark"}});
    let reply = api.call(Method::PATCH, &format!("/v1/sessions/{id}/attributes"), Some(&api.writer), Some(patch)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    let reply = api.call(Method::DELETE, &format!("/v1/sessions/{id}"), Some(&api.writer), None).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text);

    let mut seen = Vec::new();
    for kind in ["created", "attributes_changed", "deleted"] {
        let message = live.next(SOON).await.unwrap_or_else(|| panic!("no `{kind}` event"));
        assert_eq!((message.event.as_str(), &message.data["type"]), (kind, &json!(kind)));
        assert_eq!(message.id.as_deref(), message.data["id"].as_str());
        assert_eq!(message.data["user_id"], "alice");
        assert_eq!(message.data["service"], "writer");
        assert_eq!(message.data["session_id"], id.as_str());
        assert!(message.data["fingerprint"].as_str().is_some_and(|f| !f.is_empty() && !id.contains(f)));
        seen.push(message);
    }
    assert_eq!(seen[1].data["keys"], json!(["theme"]));
    assert_eq!(seen[2].data["reason"], "logout");
    assert!(live.next(NO_MORE).await.is_none(), "each change once");

    // A consumer that saw the first resumes after it and gets the two others, once.
    let first = seen[0].id.clone().unwrap();
    let mut resumed = api.events("/v1/events", &[("last-event-id", &first)]).await;
    for kind in ["attributes_changed", "deleted"] {
        assert_eq!(resumed.next(SOON).await.unwrap().event, kind);
    }
    assert!(resumed.next(NO_MORE).await.is_none());
    // `after=0` starts from the oldest kept; filters keep types and a user.
    let mut deleted = api.events("/v1/events?after=0&types=deleted,expired", &[]).await;
    assert_eq!(deleted.next(SOON).await.unwrap().event, "deleted");
    assert!(deleted.next(NO_MORE).await.is_none());
    let mut bob = api.events("/v1/events?after=0&user_id=bob", &[]).await;
    assert!(bob.next(NO_MORE).await.is_none());
    api.create(json!({"user_id": "bob"})).await;
    assert_eq!(bob.next(SOON).await.unwrap().data["user_id"], "bob");
}

#[tokio::test]
async fn events_refuse_bad_filters_and_stores_without_a_log() {
    let api = Api::new().await;
    for (uri, headers) in [
        ("/v1/events?types=created,exploded", vec![]),
        ("/v1/events?user_id=", vec![]),
        ("/v1/events?after=-1", vec![]),
        ("/v1/events?since=1", vec![]),
        ("/v1/events", vec![("last-event-id", "abc")]),
    ] {
        api.call_with(Method::GET, uri, Some(&api.reader), None, &headers).await.assert_error(400, "invalid_request");
    }
    api.call(Method::GET, "/v1/events", None, None).await.assert_error(401, "unauthorized");
    // A store that keeps no event log (this one only slows every call down).
    let slow = Arc::new(FaultyStore::new(Mode::Slow));
    let without_log = Api::with(slow, SessionPolicy::default(), ServerOptions::default()).await;
    let reply = without_log.call(Method::GET, "/v1/events", Some(&without_log.reader), None).await;
    reply.assert_error(501, "events_unavailable");
}

#[tokio::test]
async fn events_trimmed_before_delivery_are_announced_as_lost() {
    let store = Arc::new(MemoryStore::new());
    let api = Api::with(store.clone(), SessionPolicy::default(), ServerOptions::default()).await;
    for user in ["a", "b", "c"] {
        api.create(json!({"user_id": user})).await;
    }
    let keep_one =
        sessanger_core::Retention { max_events: std::num::NonZeroU64::new(1).unwrap(), ..Default::default() };
    use sessanger_core::EventLog;
    store.trim_events(&keep_one, Timestamp::now()).await.unwrap();
    let mut stream = api.events("/v1/events?after=1", &[]).await;
    let lost = stream.next(SOON).await.unwrap();
    assert_eq!((lost.event.as_str(), &lost.data), ("lost", &json!({"after": "1", "trimmed_through": "2"})));
    assert_eq!(stream.next(SOON).await.unwrap().data["user_id"], "c");
}

#[tokio::test]
async fn events_carry_only_fingerprints_where_session_ids_are_off() {
    let mut options = ServerOptions::default();
    options.events.session_ids = false;
    let api = Api::with(Arc::new(MemoryStore::new()), SessionPolicy::default(), options).await;
    let session = api.create(json!({"user_id": "alice"})).await;
    let id = id_of(&session);
    api.call(Method::POST, &format!("/v1/sessions/{id}/regenerate"), Some(&api.writer), None).await;
    let mut stream = api.events("/v1/events?after=0", &[]).await;
    for _ in 0..2 {
        let message = stream.next(SOON).await.unwrap();
        let text = message.data.to_string();
        assert!(!text.contains(&id) && message.data.get("session_id").is_none(), "{text}");
        assert!(message.data["fingerprint"].is_string());
    }
}
