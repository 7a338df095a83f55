//! Every parser a client reaches through HTTP, fed arbitrary input through the real router:
//! `If-Match` and `If-None-Match`, ids in paths, and the bodies of the native and compat
//! APIs (valid JSON of any shape, and text that is not JSON). Nothing panics, nothing answers
//! 500, and every error is the API's JSON shape.

use std::sync::{Arc, OnceLock};

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use proptest::prelude::*;
use serde_json::Value;
use sessanger_core::{Permission, SessionManager, SessionPolicy};
use sessanger_server::{App, AppState, ServerOptions, app};
use sessanger_store_memory::MemoryStore;
use sessanger_testkit::arbitrary::json;
use tower::ServiceExt;

/// One router for every case (with both compat APIs open), a reader-and-writer token and a session id.
struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: App,
    token: String,
    session: String,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (app, token, session) = runtime.block_on(async {
            let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
            let id = "writer".parse().unwrap();
            let (_, token) =
                manager.register_service(id, "writer", vec![Permission::Read, Permission::Write]).await.unwrap();
            let session = manager.create_session(&"ann".parse().unwrap(), Default::default()).await.unwrap();
            let mut options = ServerOptions::default();
            options.compat.back_session.enabled = true;
            options.compat.sessman.enabled = true;
            (app(AppState::new(manager, options)), token.expose(), session.id.to_string())
        });
        Fixture { runtime, app, token, session }
    })
}

/// Sends one request; checks the answer is no server error and, if an error, JSON.
fn answer(method: Method, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<StatusCode, TestCaseError> {
    let fixture = fixture();
    let mut request =
        Request::builder().method(method).header(header::AUTHORIZATION, format!("Bearer {}", fixture.token));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let Ok(request) = request.uri(uri).body(Body::from(body.to_vec())) else {
        return Ok(StatusCode::BAD_REQUEST); // not a request at all: nothing reaches the server
    };
    let (status, bytes) = fixture.runtime.block_on(async {
        let response = fixture.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        (status, axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap())
    });
    prop_assert!(!status.is_server_error(), "{uri}: {status} {}", String::from_utf8_lossy(&bytes));
    if status.is_client_error() && !bytes.is_empty() {
        prop_assert!(serde_json::from_slice::<Value>(&bytes).is_ok(), "{uri}: {status} is not JSON");
    }
    Ok(status)
}

/// The keys the native and compat bodies read, among random ones.
const KEYS: &str =
    "(set|remove|incr|user_id|device_id|session_id|session_attributes|data|attributes|ttl_secs|[a-z_]{1,6})";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn condition_headers_never_fail_the_server(tag in "[ -~]{0,40}") {
        let session = &fixture().session;
        let uri = format!("/v1/sessions/{session}/attributes");
        let headers = [("if-match", tag.as_str()), ("content-type", "application/json")];
        let status = answer(Method::PATCH, &uri, &headers, br#"{"set": {"k": 1}}"#)?;
        prop_assert!([StatusCode::OK, StatusCode::PRECONDITION_FAILED].contains(&status), "{tag:?}: {status}");
        let read = answer(Method::GET, &format!("/v1/sessions/{session}"), &[("if-none-match", &tag)], b"")?;
        prop_assert!([StatusCode::OK, StatusCode::NOT_MODIFIED].contains(&read), "{tag:?}: {read}");
    }

    #[test]
    fn path_ids_never_fail_the_server(id in "[ -~&&[^/?#]]{0,80}") {
        let id: String = id.chars().map(|c| if c == ' ' || c == '%' { '_' } else { c }).collect();
        answer(Method::GET, &format!("/v1/sessions/{id}"), &[], b"")?;
        answer(Method::GET, &format!("/v1/users/{id}/sessions"), &[], b"")?;
        answer(Method::GET, &format!("/a01/session/{id}"), &[], b"")?;
    }

    #[test]
    fn listing_queries_never_fail_the_server(
        limit in "[ -~&&[^#&%]]{0,12}",
        cursor in "([0-9-]{0,15}\\.[A-Za-z0-9_-]{0,45})|[ -~&&[^#&%]]{0,50}",
    ) {
        let query = format!("limit={limit}&cursor={cursor}").replace(' ', "+");
        let status = answer(Method::GET, &format!("/v1/users/ann/sessions?{query}"), &[], b"")?;
        prop_assert!([StatusCode::OK, StatusCode::BAD_REQUEST].contains(&status), "{query}: {status}");
        answer(Method::GET, &format!("/v1/users/ann/sessions?cursor={cursor}").replace(' ', "+"), &[], b"")?;
    }

    #[test]
    fn json_bodies_of_any_shape_never_fail_the_server(body in json(KEYS)) {
        let session = &fixture().session;
        let body = body.to_string();
        for (method, uri) in [
            (Method::POST, "/v1/sessions".to_owned()),
            (Method::PATCH, format!("/v1/sessions/{session}/attributes")),
            (Method::POST, "/v1/services".to_owned()),
            (Method::POST, "/a01/session".to_owned()),
            (Method::PATCH, "/a01/session".to_owned()),
            (Method::PATCH, format!("/a01/session/{session}")),
            (Method::POST, "/sessman/new".to_owned()),
            (Method::POST, format!("/sessman/update?session_id={session}")),
        ] {
            let headers = [("content-type", "application/json")];
            answer(method, &uri, &headers, body.as_bytes())?;
        }
    }

    #[test]
    fn bodies_that_are_not_json_never_fail_the_server(body in prop::collection::vec(any::<u8>(), 0..64)) {
        let session = &fixture().session;
        answer(Method::PATCH, &format!("/v1/sessions/{session}/attributes"), &[("content-type", "application/json")], &body)?;
        answer(Method::POST, "/a01/session", &[], &body)?;
        answer(Method::POST, "/sessman/new", &[], &body)?;
    }
}
