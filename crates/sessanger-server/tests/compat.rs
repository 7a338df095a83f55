//! Who may call the compat APIs, driven through `app(state).oneshot(..)`; their wire behaviour
//! against real clients is tested end to end in the binary's `tests/compat.rs`.

use std::sync::Arc;

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use serde_json::{Value, json};
use sessanger_core::{Permission, SessionManager, SessionPolicy};
use sessanger_server::{App, AppState, CompatAuth, ServerOptions, app};
use sessanger_store_memory::MemoryStore;
use tower::ServiceExt;

/// A router with both compat APIs enabled as `configure` says, and the tokens of an `admin`,
/// a `writer` and a `reader` service.
async fn api(configure: impl FnOnce(&mut ServerOptions)) -> (App, [String; 3]) {
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
    let mut tokens = Vec::new();
    for (id, permission) in [("admin", Permission::Admin), ("writer", Permission::Write), ("reader", Permission::Read)]
    {
        let permissions = if permission == Permission::Admin { Permission::ALL.to_vec() } else { vec![permission] };
        tokens.push(manager.register_service(id.parse().unwrap(), id, permissions).await.unwrap().1.expose());
    }
    let mut options = ServerOptions::default();
    options.compat.back_session.enabled = true;
    options.compat.sessman.enabled = true;
    configure(&mut options);
    (app(AppState::new(manager, options)), tokens.try_into().unwrap())
}

async fn call(app: &App, method: Method, uri: &str, token: Option<&str>, body: &str) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let response = app.clone().oneshot(request.body(Body::from(body.to_owned())).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() })
}

#[tokio::test]
async fn open_compat_apis_act_as_their_service_with_its_permissions_only() {
    let (app, [admin, ..]) = api(|options| {
        options.compat.sessman.permissions = vec![Permission::Read];
    })
    .await;
    let (status, created) = call(&app, Method::POST, "/a01/session", None, r#"{"user_id": "ann"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let id = created["session_id"].as_str().unwrap();
    let (_, session) = call(&app, Method::GET, &format!("/v1/sessions/{id}"), Some(&admin), "").await;
    assert_eq!(session["created_by"], "back-session", "the audit trail names the configured service");

    let (status, refused) = call(&app, Method::POST, "/sessman/new", None, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(refused, json!({ "error": "this service lacks the `write` permission" }));
    let (status, read) = call(&app, Method::GET, &format!("/sessman/get?session_id={id}"), None, "").await;
    assert_eq!((status, &read["session_id"]), (StatusCode::OK, &json!(id)));
}

#[tokio::test]
async fn token_auth_takes_the_callers_own_permissions() {
    let (app, [_, writer, reader]) = api(|options| {
        options.compat.back_session.auth = CompatAuth::Token;
        options.compat.sessman.auth = CompatAuth::Token;
    })
    .await;
    let (status, missing) = call(&app, Method::POST, "/sessman/new", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(missing["error"].is_string(), "sessman's own error shape: {missing}");
    let (status, _) = call(&app, Method::POST, "/sessman/new", Some(&reader), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, created) = call(&app, Method::POST, "/sessman/new", Some(&writer), "").await;
    assert_eq!(status, StatusCode::OK);
    let id = created["session_id"].as_str().unwrap();

    let (status, missing) = call(&app, Method::GET, &format!("/a01/session/{id}"), None, "").await;
    assert_eq!((status, &missing["error"]["code"]), (StatusCode::UNAUTHORIZED, &json!("unauthorized")));
    let (status, viewed) = call(&app, Method::GET, &format!("/a01/session/{id}"), Some(&reader), "").await;
    assert_eq!((status, &viewed["user_id"]), (StatusCode::OK, &json!("sessman")));
    let (status, _) = call(&app, Method::DELETE, &format!("/a01/session/{id}"), Some(&reader), "").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
