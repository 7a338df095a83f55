//! The compat APIs over real HTTP, driven by the clients they exist for: back-session's README
//! curl commands and sessman's JavaScript `Session` class, against the real binary.

use std::{path::Path, process::Command};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sessanger_core::Timestamp;

#[allow(dead_code)] // each test binary uses its own part of the harness
mod common;

use common::{FreshStore, Server, StoreKind, admin_token, data_dir};

/// A request to `server`; returns the status and the body as JSON (`Null` when empty).
async fn call(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut request = sessanger_testkit::tls::http().build().unwrap().request(method, format!("{}{path}", server.url));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if let Some(body) = body {
        request = request.body(body.to_owned());
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect(&text) };
    (status, value)
}

/// A `/v1` request as the bootstrap admin.
async fn v1(server: &Server, dir: &Path, method: Method, path: &str) -> (StatusCode, Value) {
    let bearer = format!("Bearer {}", admin_token(dir));
    call(server, method, path, None, &[("Authorization", &bearer)]).await
}

/// Runs `command` with bash; returns its stdout and stderr.
fn bash(command: &str) -> (String, String) {
    let output = Command::new("bash").arg("-c").arg(command).output().unwrap();
    (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

/// The status line curl `-v` prints (`< HTTP/1.1 200 OK`), as a number. curl's progress meter
/// shares standard error and may end a line right before it without a newline.
fn curl_status(verbose: &str) -> u16 {
    let line = verbose.lines().find_map(|line| line.find("< HTTP/").map(|at| &line[at..])).expect(verbose);
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}

/// back-session's "Testing commands", exactly as its README prints them.
const README_CREATE: &str = r#"curl http://localhost:8090/a01/session -H "Content-Type: application/json" -X POST -d '{"user_id":"user007"}' -v"#;
const README_VIEW: &str = "curl http://localhost:8090/a01/session/FBC9W2wccBywDCzmXaOG-CxJczzfe5Kyf9KoNgNgN343bf1RO7xQNkT1z44BbMg=  -X GET -v";
const README_DELETE: &str = "curl http://localhost:8090/a01/session/FBC9W2wccBywDCzmXaOG-CxJczzfe5Kyf9KoNgNgN343bf1RO7xQNkT1z44BbMg=  -X DELETE -v";
const README_SESSION_ID: &str = "FBC9W2wccBywDCzmXaOG-CxJczzfe5Kyf9KoNgNgN343bf1RO7xQNkT1z44BbMg=";

#[test]
fn the_back_session_readme_curl_commands_work_as_printed() {
    let (_tmp, dir) = data_dir();
    let server = Server::start_with(&dir, &["--compat", "back-session"], &[]);
    let port = server.url.rsplit(':').next().unwrap();
    let here = |command: &str| command.replace("localhost:8090", &format!("localhost:{port}"));

    let (body, verbose) = bash(&here(README_CREATE));
    assert_eq!(curl_status(&verbose), 200, "{verbose}");
    assert!(verbose.to_ascii_lowercase().contains("< cache-control: no-store"), "{verbose}");
    let created: Value = serde_json::from_str(&body).unwrap();
    let id = created["session_id"].as_str().unwrap().to_owned();
    assert_eq!(created, json!({ "session_id": id }));

    let with_id = |command: &str| here(command).replace(README_SESSION_ID, &id);
    let (body, verbose) = bash(&with_id(README_VIEW));
    assert_eq!(curl_status(&verbose), 200, "{verbose}");
    let viewed: Value = serde_json::from_str(&body).unwrap();
    let empty = "";
    assert_eq!(
        viewed,
        json!({
            "user_id": "user007", "device_id": empty, "auth_code": empty, "access_token": empty,
            "refresh_token": empty, "user_email": empty,
        })
    );

    let (_, verbose) = bash(&with_id(README_DELETE));
    assert_eq!(curl_status(&verbose), 200, "{verbose}");
    let (body, verbose) = bash(&with_id(README_VIEW));
    assert_eq!(curl_status(&verbose), 404, "{verbose}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["code"], "session_not_found");
    let (_, verbose) = bash(&with_id(README_DELETE));
    assert_eq!(curl_status(&verbose), 404, "{verbose}");
    // The README's own id is not one sessanger could have issued: unknown, not a crash.
    let (_, verbose) = bash(&here(README_VIEW));
    assert_eq!(curl_status(&verbose), 404, "{verbose}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seed_sessman_javascript_client_round_trips_its_data() {
    js_client_round_trip(&[]).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn the_seed_sessman_javascript_client_round_trips_its_data_on_redis() {
    let store = FreshStore::new(StoreKind::Redis);
    js_client_round_trip(&store.flags()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn the_seed_sessman_javascript_client_round_trips_its_data_on_postgres() {
    let store = FreshStore::new(StoreKind::Postgres);
    js_client_round_trip(&store.flags()).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn the_seed_sessman_javascript_client_round_trips_its_data_on_mariadb() {
    let store = FreshStore::new(StoreKind::MariaDb);
    js_client_round_trip(&store.flags()).await;
}

/// sessman's own JavaScript client, unchanged, under Node against sessman's API.
async fn js_client_round_trip(store: &[&str]) {
    let (_tmp, dir) = data_dir();
    let args = [&["--compat", "sessman"], store].concat();
    let server = Server::start_with(&dir, &args, &[]);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/session.mjs");
    let output = Command::new("node").arg(script).arg(format!("{}/sessman", server.url)).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stderr.contains("Error"), "the client reported an error: {stderr}");
    let result = stdout.lines().find_map(|line| line.strip_prefix("RESULT ")).expect(&stdout);
    let result: Value = serde_json::from_str(result).unwrap();

    let id = result["created"]["session_id"].as_str().unwrap();
    assert_eq!(result["created"]["data"], json!({ "theme": "dark", "visits": 1 }));
    let updated = json!({ "theme": "dark", "visits": 2, "cart": ["book"] });
    assert_eq!(result["updated"], updated);
    assert_eq!(result["via_class"], json!({ "session_id": id, "data": updated }));
    assert_eq!(result["via_get"], json!({ "session_id": id, "data": updated }));

    // The same session through /v1: user `alice`, created by the `sessman` service.
    let (status, session) = v1(&server, &dir, Method::GET, &format!("/v1/sessions/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&session["user_id"], &session["attributes"]), (&json!("alice"), &updated));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_one_session_through_every_api() {
    one_session_through_every_api(&[]).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_one_session_through_every_api_on_redis() {
    let store = FreshStore::new(StoreKind::Redis);
    one_session_through_every_api(&store.flags()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_one_session_through_every_api_on_postgres() {
    let store = FreshStore::new(StoreKind::Postgres);
    one_session_through_every_api(&store.flags()).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_one_session_through_every_api_on_mariadb() {
    let store = FreshStore::new(StoreKind::MariaDb);
    one_session_through_every_api(&store.flags()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_back_session_updates_of_one_session_all_apply() {
    concurrent_back_session_updates(&[]).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_back_session_updates_of_one_session_all_apply_on_redis() {
    let store = FreshStore::new(StoreKind::Redis);
    concurrent_back_session_updates(&store.flags()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_back_session_updates_of_one_session_all_apply_on_postgres() {
    let store = FreshStore::new(StoreKind::Postgres);
    concurrent_back_session_updates(&store.flags()).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_back_session_updates_of_one_session_all_apply_on_mariadb() {
    let store = FreshStore::new(StoreKind::MariaDb);
    concurrent_back_session_updates(&store.flags()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_session_cap_holds_on_every_api() {
    session_cap_on_every_api(&[]).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn the_session_cap_holds_on_every_api_on_redis() {
    let store = FreshStore::new(StoreKind::Redis);
    session_cap_on_every_api(&store.flags()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn the_session_cap_holds_on_every_api_on_postgres() {
    let store = FreshStore::new(StoreKind::Postgres);
    session_cap_on_every_api(&store.flags()).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn the_session_cap_holds_on_every_api_on_mariadb() {
    let store = FreshStore::new(StoreKind::MariaDb);
    session_cap_on_every_api(&store.flags()).await;
}

/// A session grown through every API stops at the configured cap (8 attributes, 1 KiB): each
/// write past it is 413 `session_too_large` and changes nothing, whichever API sent it.
async fn session_cap_on_every_api(store: &[&str]) {
    let (tmp, dir) = data_dir();
    let config = tmp.path().join("cap.yaml");
    std::fs::write(&config, "session:\n  max_attributes: 8\n  max_bytes: 1024\n").unwrap();
    let args = [&["--compat", "back-session,sessman", "--config", config.to_str().unwrap()], store].concat();
    let server = Server::start_with(&dir, &args, &[]);
    let bearer = format!("Bearer {}", admin_token(&dir));
    let v1 = |method: Method, path: String, body: Value| {
        let (server, bearer) = (&server, &bearer);
        async move {
            let headers = [("Authorization", bearer.as_str()), ("Content-Type", "application/json"), ("If-Match", "*")];
            call(server, method, &path, Some(&body.to_string()), &headers).await
        }
    };
    let (_, created) = call(&server, Method::POST, "/a01/session", Some(r#"{"user_id": "dave"}"#), &[]).await;
    let id = created["session_id"].as_str().unwrap().to_owned();
    let attributes = format!("/v1/sessions/{id}/attributes");
    let (status, _) = v1(Method::PATCH, attributes.clone(), json!({"set": {"big": "x".repeat(900)}})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, before) = v1(Method::GET, format!("/v1/sessions/{id}"), Value::Null).await;

    let many: serde_json::Map<String, Value> = (0..9).map(|i| (format!("k{i}"), json!(i))).collect();
    let more = "y".repeat(200);
    let refused = [
        v1(Method::PATCH, attributes.clone(), json!({"set": {"more": more}})).await,
        v1(Method::PATCH, attributes.clone(), json!({"incr": {"n": 1}, "set": {"m": "z".repeat(120)}})).await,
        v1(Method::PUT, format!("/v1/sessions/{id}"), json!({"attributes": many})).await,
        v1(Method::POST, "/v1/sessions".into(), json!({"user_id": "dave", "attributes": many})).await,
        call(
            &server,
            Method::PATCH,
            "/a01/session",
            Some(&json!({"session_id": id, "session_attributes": {"more": more}}).to_string()),
            &[],
        )
        .await,
        call(
            &server,
            Method::POST,
            "/a01/session",
            Some(&json!({"user_id": "dave", "access_token": "b".repeat(1100)}).to_string()),
            &[],
        )
        .await,
        call(
            &server,
            Method::POST,
            &format!("/sessman/update?session_id={id}"),
            Some(&json!({"data": many}).to_string()),
            &[],
        )
        .await,
        call(
            &server,
            Method::POST,
            "/sessman/new",
            Some(&json!({"data": {"blob": "b".repeat(1100)}}).to_string()),
            &[],
        )
        .await,
    ];
    for (i, (status, answer)) in refused.iter().enumerate() {
        assert_eq!(status.as_u16(), 413, "write {i}: {answer}");
        let code = answer["error"]["code"].as_str().or(answer["error"].as_str());
        assert!(code.is_some_and(|c| c == "session_too_large" || c.contains("at most")), "write {i}: {answer}");
    }
    let (_, after) = v1(Method::GET, format!("/v1/sessions/{id}"), Value::Null).await;
    assert_eq!((&after["version"], &after["attributes"]), (&before["version"], &before["attributes"]));
    let (_, listed) = v1(Method::GET, "/v1/users/dave/sessions".into(), Value::Null).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "no refused create stored a session");
    // Removing always works, and makes room again.
    let (status, _) = v1(Method::PATCH, attributes, json!({"remove": ["big"], "set": {"more": more}})).await;
    assert_eq!(status, StatusCode::OK);
    server.stop();
}

/// 200 `PATCH /a01/session` at once on one session, each setting its own key (one the
/// original never named), every other one also the `device_id`: each answers 200 with what
/// it wrote read back, none is lost, `GET` shows them all, and the write moved
/// `update_date`. Then 50 sessman `update`s at once, each replacing the data: all answer 200.
async fn concurrent_back_session_updates(store: &[&str]) {
    let (_tmp, dir) = data_dir();
    let args = [&["--compat", "back-session,sessman"], store].concat();
    let server = Server::start_with(&dir, &args, &[]);
    let (_, created) = call(&server, Method::POST, "/a01/session", Some(r#"{"user_id": "carol"}"#), &[]).await;
    let id = created["session_id"].as_str().unwrap().to_owned();
    let (_, before) = call(&server, Method::GET, "/a01/session/user/carol", None, &[]).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let writers = (0..200).map(|i| {
        let (server, id) = (&server, &id);
        async move {
            let mut attributes = json!({format!("key_{i}"): format!("value {i}")});
            if i % 2 == 0 {
                attributes["device_id"] = json!(format!("device {i}"));
            }
            let body = json!({"session_id": id, "session_attributes": attributes});
            let (status, answer) = call(server, Method::PATCH, "/a01/session", Some(&body.to_string()), &[]).await;
            (i, status, answer, attributes)
        }
    });
    for (i, status, answer, attributes) in futures::future::join_all(writers).await {
        assert_eq!(status, StatusCode::OK, "writer {i}: {answer}");
        assert_eq!(answer, attributes, "writer {i}");
    }
    let (status, read) = call(&server, Method::GET, &format!("/a01/session/{id}"), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    for i in 0..200 {
        assert_eq!(read[format!("key_{i}")], format!("value {i}"), "key_{i} kept: {read}");
    }
    assert!(read["device_id"].as_str().is_some_and(|d| d.starts_with("device ")), "{read}");
    let (_, after) = call(&server, Method::GET, "/a01/session/user/carol", None, &[]).await;
    assert_ne!(after[&id]["update_date"], before[&id]["update_date"], "a PATCH moves update_date");
    assert_eq!(after[&id]["create_date"], before[&id]["create_date"]);

    let updates = (0..50).map(|i| {
        let (server, id) = (&server, &id);
        async move {
            let body = json!({"data": {"writer": i}}).to_string();
            call(server, Method::POST, &format!("/sessman/update?session_id={id}"), Some(&body), &[]).await
        }
    });
    for (status, answer) in futures::future::join_all(updates).await {
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (_, read) = call(&server, Method::GET, &format!("/sessman/get?session_id={id}"), None, &[]).await;
    assert!(read["data"]["writer"].is_u64() && read["data"].as_object().unwrap().len() == 1, "{read}");
    server.stop();
}

/// Created through /a01, listed and revoked through /v1, read through /sessman: one session.
async fn one_session_through_every_api(store: &[&str]) {
    let (_tmp, dir) = data_dir();
    let args = [&["--compat", "back-session,sessman"], store].concat();
    let server = Server::start_with(&dir, &args, &[]);
    let create = r#"{"user_id": "bob", "device_id": "phone", "auth_code": "c0de", "access_token": "at",
        "refresh_token": "rt", "exiration_time": 3600, "user_email": "bob@example.com", "ignored": true}"#;
    let (status, created) = call(&server, Method::POST, "/a01/session", Some(create), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let id = created["session_id"].as_str().unwrap().to_owned();

    // /v1 lists it, device and attributes in place.
    let (status, listed) = v1(&server, &dir, Method::GET, "/v1/users/bob/sessions").await;
    assert_eq!(status, StatusCode::OK);
    let sessions = listed["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["session_id"], id.as_str());
    assert_eq!(sessions[0]["device"]["device_id"], "phone");
    assert_eq!(sessions[0]["attributes"]["access_token"], "at");
    assert_eq!(sessions[0]["attributes"]["exiration_time"], 3600);

    // An update sets only what it names, by the original's route and by the README's.
    let patch = json!({ "session_id": id, "session_attributes": { "access_token": "at2", "user_id": "bob" } });
    let (status, changed) = call(&server, Method::PATCH, "/a01/session", Some(&patch.to_string()), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(changed, json!({ "access_token": "at2", "user_id": "bob" }));
    let patch = json!({ "session_attributes": { "device_id": "tablet" } }).to_string();
    let (status, changed) = call(&server, Method::PATCH, &format!("/a01/session/{id}"), Some(&patch), &[]).await;
    assert_eq!((status, changed), (StatusCode::OK, json!({ "device_id": "tablet" })));
    let (status, viewed) = call(&server, Method::GET, &format!("/a01/session/{id}"), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        viewed,
        json!({
            "user_id": "bob", "device_id": "tablet", "auth_code": "c0de", "access_token": "at2",
            "refresh_token": "rt", "user_email": "bob@example.com", "exiration_time": 3600,
        })
    );

    // sessman reads it too, and a sessman session of bob's shows in back-session's listing.
    let (status, got) = call(&server, Method::GET, &format!("/sessman/get?session_id={id}"), None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["data"]["auth_code"], "c0de");
    let (status, other) =
        call(&server, Method::POST, "/sessman/new?userid=bob", Some(r#"{"data": {"k": 1}}"#), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let other = other["session_id"].as_str().unwrap().to_owned();
    let (status, listing) = call(&server, Method::GET, "/a01/session/user/bob", None, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let listing = listing.as_object().unwrap();
    assert_eq!(listing.len(), 2);
    assert_eq!(listing[&id]["device_id"], "tablet");
    assert_eq!(listing[&other]["device_id"], "");
    let date = listing[&id]["create_date"].as_str().unwrap();
    assert!(date.ends_with(" +0000 UTC") && date.as_bytes()[10] == b' ', "Go's time format: {date}");
    assert!(listing[&id]["update_date"].as_str().unwrap().ends_with(" +0000 UTC"));
    let (_, by_query) = call(&server, Method::GET, "/a01/session?user_id=bob", None, &[]).await;
    assert_eq!(&by_query, &Value::Object(listing.clone()));

    // Revoked through /v1: gone from /a01 and /sessman.
    let (status, _) = v1(&server, &dir, Method::DELETE, &format!("/v1/sessions/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, gone) = call(&server, Method::GET, &format!("/a01/session/{id}"), None, &[]).await;
    assert_eq!((status, &gone["error"]["code"]), (StatusCode::NOT_FOUND, &json!("session_not_found")));
    let (status, gone) = call(&server, Method::GET, &format!("/sessman/get?session_id={id}"), None, &[]).await;
    assert_eq!((status, gone), (StatusCode::NOT_FOUND, json!({ "error": "session not found" })));
    let (_, listing) = call(&server, Method::GET, "/a01/session/user/bob", None, &[]).await;
    assert_eq!(listing.as_object().unwrap().keys().collect::<Vec<_>>(), [&other]);

    // The README's "delete all sessions for a user", which the original never served.
    let (status, deleted) = call(&server, Method::DELETE, "/a01/session?user_id=bob", None, &[]).await;
    assert_eq!((status, deleted), (StatusCode::OK, json!({ "deleted": 1 })));
    let (_, deleted) = call(&server, Method::DELETE, "/a01/session/user/bob", None, &[]).await;
    assert_eq!(deleted, json!({ "deleted": 0 }));
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_gets_a_json_error_and_changes_nothing() {
    malformed_input_changes_nothing(&[]).await;
}

#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_gets_a_json_error_and_changes_nothing_on_redis() {
    let store = FreshStore::new(StoreKind::Redis);
    malformed_input_changes_nothing(&store.flags()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_gets_a_json_error_and_changes_nothing_on_postgres() {
    let store = FreshStore::new(StoreKind::Postgres);
    malformed_input_changes_nothing(&store.flags()).await;
}

#[cfg(feature = "mysql")]
#[tokio::test(flavor = "multi_thread")]
async fn malformed_input_gets_a_json_error_and_changes_nothing_on_mariadb() {
    let store = FreshStore::new(StoreKind::MariaDb);
    malformed_input_changes_nothing(&store.flags()).await;
}

/// Every malformed request gets a JSON error and leaves the stored session as it was.
async fn malformed_input_changes_nothing(store: &[&str]) {
    let (_tmp, dir) = data_dir();
    let args = [&["--compat", "back-session,sessman"], store].concat();
    let server = Server::start_with(&dir, &args, &[]);
    let (_, created) = call(&server, Method::POST, "/a01/session", Some(r#"{"user_id": "carol"}"#), &[]).await;
    let id = created["session_id"].as_str().unwrap().to_owned();
    let (_, before) = v1(&server, &dir, Method::GET, &format!("/v1/sessions/{id}")).await;
    let unknown = "A".repeat(43);
    let huge = format!(r#"{{"data": {{"blob": "{}"}}}}"#, "x".repeat(2 << 20));

    let update = |attributes: Value| json!({ "session_id": id, "session_attributes": attributes }).to_string();
    let a01 = [
        (Method::POST, "/a01/session".to_owned(), "not json".to_owned(), 400),
        (Method::POST, "/a01/session".into(), r#"{"user_id": 7}"#.into(), 400),
        (Method::POST, "/a01/session".into(), "{}".into(), 400),
        (Method::POST, "/a01/session".into(), "[]".into(), 400),
        (Method::POST, "/a01/session".into(), r#"{"user_id": "a\u0001b"}"#.into(), 400),
        (Method::POST, "/a01/session".into(), r#"{"user_id": "x", "exiration_time": {}}"#.into(), 400),
        (Method::POST, "/a01/session".into(), huge.clone(), 413),
        (Method::PATCH, "/a01/session".into(), "nope".into(), 422),
        (Method::PATCH, "/a01/session".into(), update(json!({ "a": 1 })), 422),
        (Method::PATCH, "/a01/session".into(), r#"{"session_attributes": {"a": "b"}}"#.into(), 400),
        (Method::PATCH, "/a01/session".into(), update(json!({})), 400),
        (Method::PATCH, "/a01/session".into(), update(json!({ "user_id": "mallory", "a": "b" })), 400),
        (Method::PATCH, "/a01/session".into(), update(json!({ "a": "x".repeat(70_000) })), 400),
        (
            Method::PATCH,
            "/a01/session".into(),
            json!({ "session_id": unknown, "session_attributes": { "a": "b" } }).to_string(),
            400,
        ),
        (
            Method::PATCH,
            "/a01/session".into(),
            json!({ "session_id": "bad!id", "session_attributes": { "a": "b" } }).to_string(),
            400,
        ),
        (Method::PATCH, format!("/a01/session/{id}"), huge.clone(), 413),
        (Method::GET, "/a01/session/bad!id".into(), String::new(), 404),
        (Method::GET, format!("/a01/session/{unknown}"), String::new(), 404),
        (Method::DELETE, format!("/a01/session/{unknown}"), String::new(), 404),
        (Method::DELETE, "/a01/session/bad!id".into(), String::new(), 404),
        (Method::GET, "/a01/session".into(), String::new(), 400),
        (Method::DELETE, "/a01/session?user_id=".into(), String::new(), 400),
        (Method::PUT, "/a01/session".into(), String::new(), 405),
    ];
    for (method, path, body, expected) in a01 {
        let (status, answer) = call(&server, method.clone(), &path, Some(&body), &[]).await;
        assert_eq!(status.as_u16(), expected, "{method} {path}: {answer}");
        assert!(answer["error"]["code"].is_string() && answer["error"]["message"].is_string(), "{answer}");
    }

    let sessman = [
        (Method::POST, "/sessman/new".to_owned(), "not json".to_owned(), 400),
        (Method::POST, "/sessman/new".into(), r#"{"data": [1, 2]}"#.into(), 400),
        (Method::POST, "/sessman/new".into(), r#"{"user": {"name": "x"}}"#.into(), 400),
        (Method::POST, "/sessman/new?data=nope".into(), String::new(), 400),
        (Method::POST, "/sessman/new".into(), huge.clone(), 413),
        (Method::POST, format!("/sessman/update?session_id={id}"), r#"{"data": "x"}"#.into(), 400),
        (Method::POST, format!("/sessman/update?session_id={id}"), "[1]".into(), 400),
        (Method::POST, format!("/sessman/update?session_id={id}"), huge.clone(), 413),
        (Method::POST, "/sessman/update".into(), r#"{"data": {}}"#.into(), 400),
        (Method::POST, format!("/sessman/update?session_id={unknown}"), r#"{"data": {}}"#.into(), 404),
        (Method::GET, format!("/sessman/get?session_id={unknown}"), String::new(), 404),
        (Method::GET, "/sessman/get?session_id=bad!id".into(), String::new(), 404),
        (Method::GET, "/sessman/get".into(), String::new(), 400),
        (Method::GET, "/sessman/nope".into(), String::new(), 400),
    ];
    for (method, path, body, expected) in sessman {
        let (status, answer) = call(&server, method.clone(), &path, Some(&body), &[]).await;
        assert_eq!(status.as_u16(), expected, "{method} {path}: {answer}");
        assert!(answer["error"].is_string(), "{method} {path}: {answer}");
    }
    let (_, answer) = call(&server, Method::GET, "/sessman/nope", None, &[]).await;
    assert_eq!(answer, json!({ "error": "nope is not a valid endpoint" }));

    let (_, after) = v1(&server, &dir, Method::GET, &format!("/v1/sessions/{id}")).await;
    assert_eq!(after["version"], before["version"], "{after}");
    assert_eq!(after["attributes"], before["attributes"]);
    let (_, stats) = v1(&server, &dir, Method::GET, "/v1/stats").await;
    assert_eq!(stats["active_sessions"], 1, "no malformed request created a session");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn compat_apis_are_off_unless_enabled() {
    let (_tmp, dir) = data_dir();
    let server = Server::start(&dir);
    let (status, answer) = call(&server, Method::POST, "/a01/session", Some(r#"{"user_id": "x"}"#), &[]).await;
    assert_eq!((status, &answer["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
    let (status, _) = call(&server, Method::POST, "/sessman/new", None, &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn configured_keys_and_tokens_are_required() {
    let (tmp, dir) = data_dir();
    // sessman's own example sessman.json, trailing comma and all, with a key and a short lifetime.
    std::fs::write(
        tmp.path().join("sessman.json"),
        "{\n  \"database\": \"sessman\",\n  \"session_ttl\": 120,\n  \"auth_type\": \"plugin\",\n  \"apikey\": \"s3cret\",\n}\n",
    )
    .unwrap();
    let config = tmp.path().join("sessanger.yaml");
    std::fs::write(
        &config,
        "compat:\n  back_session: {enabled: true, auth: token}\n  sessman: {enabled: true, config: sessman.json}\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let server = Server::start_with(&dir, &["--config", config], &[]);

    for headers in [vec![], vec![("Authorization", "Bearer wrong")], vec![("X-Custom-Auth", "nope")]] {
        let (status, answer) = call(&server, Method::POST, "/sessman/new", None, &headers).await;
        assert_eq!((status, answer), (StatusCode::FORBIDDEN, json!({ "error": "unauthorized" })));
    }
    let mut ids = Vec::new();
    for (path, headers) in [
        ("/sessman/new", vec![("Authorization", "Bearer s3cret")]),
        ("/sessman/new", vec![("X-Custom-Auth", "s3cret")]),
        ("/sessman/new?apikey=s3cret", vec![]),
    ] {
        let (status, answer) = call(&server, Method::POST, path, None, &headers).await;
        assert_eq!(status, StatusCode::OK, "{path} {headers:?}: {answer}");
        ids.push(answer["session_id"].as_str().unwrap().to_owned());
    }
    // session_ttl came from sessman.json.
    let (_, session) = v1(&server, &dir, Method::GET, &format!("/v1/sessions/{}", ids[0])).await;
    let millis = |key: &str| serde_json::from_value::<Timestamp>(session[key].clone()).unwrap().as_millis();
    assert_eq!(millis("expires_at") - millis("last_access_at"), 120_000);

    // auth: token: back-session wants a sessanger service token, as /v1 does.
    let body = Some(r#"{"user_id": "dave"}"#);
    let (status, answer) = call(&server, Method::POST, "/a01/session", body, &[]).await;
    assert_eq!((status, &answer["error"]["code"]), (StatusCode::UNAUTHORIZED, &json!("unauthorized")));
    let bearer = format!("Bearer {}", admin_token(&dir));
    let (status, _) = call(&server, Method::POST, "/a01/session", body, &[("Authorization", &bearer)]).await;
    assert_eq!(status, StatusCode::OK);
    server.stop();
}

/// The compat walkthrough of README.md, run as printed against a server started as it says
/// (only the port differs), so the README cannot rot.
#[test]
fn the_readme_compat_examples_work_as_printed() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md")).unwrap();
    let section = readme.split("## Replace back-session or sessman").nth(1).expect("README has the compat section");
    let mut blocks = section.split("```sh").skip(1).map(|block| block.split("```").next().unwrap());
    let serve = blocks.next().expect("the serve command");
    assert!(serve.contains("serve --compat back-session,sessman"), "{serve}");
    let script = blocks.next().expect("the curl walkthrough");

    let (_tmp, dir) = data_dir();
    let server = Server::start_with(&dir, &["--compat", "back-session,sessman"], &[]);
    let port = server.url.rsplit(':').next().unwrap();
    let script = script.replace("localhost:8090", &format!("localhost:{port}"));
    let (out, err) = bash(&format!("set -euo pipefail\n{script}"));
    assert!(!out.contains("\"error\""), "an example failed: {out}\n{err}");
    assert!(out.contains(r#""access_token":"t2""#), "{out}\n{err}");
    assert!(out.contains(r#""data":{"theme":"light"}"#), "{out}\n{err}");
    assert!(out.contains(r#""deleted":2"#), "{out}\n{err}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn sessman_sets_its_cookie_and_reads_the_session_from_it() {
    let (_tmp, dir) = data_dir();
    let server = Server::start_with(&dir, &["--compat", "sessman"], &[]);
    let http = sessanger_testkit::tls::http().build().unwrap();
    let created = http
        .post(format!("{}/sessman/new?userid=erin", server.url))
        .header("Content-Type", "text/javascript")
        .body(r#"{"data": {"step": 1}}"#)
        .send()
        .await
        .unwrap();
    let cookie = created.headers()["set-cookie"].to_str().unwrap().to_owned();
    let body: Value = created.json().await.unwrap();
    let id = body["session_id"].as_str().unwrap();
    assert!(cookie.starts_with(&format!("PS_SESSID={id};")) && cookie.contains("HttpOnly"), "{cookie}");
    // The cookie lives as long as the session: sessman's default lifetime of a day.
    assert!(cookie.contains("; Max-Age=86400;"), "{cookie}");

    let cookie_header = format!("theme=x; PS_SESSID={id}");
    let (status, updated) =
        call(&server, Method::POST, "/sessman/update", Some(r#"{"data": {"step": 2}}"#), &[("Cookie", &cookie_header)])
            .await;
    assert_eq!((status, updated), (StatusCode::OK, json!({ "session_id": id, "data": { "step": 2 } })));
    let (status, got) = call(&server, Method::GET, "/sessman/get", None, &[("Cookie", &cookie_header)]).await;
    assert_eq!((status, got), (StatusCode::OK, json!({ "session_id": id, "data": { "step": 2 } })));
    // Named with its owner it reads; named with another user it is nobody's session.
    let own = call(&server, Method::GET, &format!("/sessman/get?userid=erin&session_id={id}"), None, &[]).await;
    assert_eq!(own.0, StatusCode::OK);
    let (status, other) =
        call(&server, Method::GET, &format!("/sessman/get?userid=mallory&session_id={id}"), None, &[]).await;
    assert_eq!((status, &other["error"]), (StatusCode::NOT_FOUND, &json!("session not found")), "{other}");
    server.stop();
}
