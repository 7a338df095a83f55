//! The admin console in headless Chromium, as an operator uses it: sign in, find a user by the
//! start of the id, see their sessions on three devices, revoke one, sign the user out
//! everywhere, register a service and use its token; a read-only operator sees no buttons and
//! a forged post is refused; markup in a user id stays text. Screenshots of the overview, a
//! user and the services go to `target/screenshots/console-*.png`.

use std::sync::Arc;

use fantoccini::{Client, Locator};
use serde_json::json;
use sessanger_console::ConsoleOptions;
use sessanger_core::{Device, ManagerError, NewSession, Page, Permission, SessionManager, SessionPolicy, UserId};
use sessanger_server::{AppState, ServerOptions};
use sessanger_store_memory::MemoryStore;
use sessanger_testkit::browser::{Driver, screenshot};

/// `sessanger_server::serve` with the console on (plain HTTP: the cookie is not `Secure`);
/// its manager, URL, and the tokens of `root` (admin) and `auditor` (read).
async fn server() -> (SessionManager, String, String, String) {
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
    let (_, root) = manager.register_service("root".parse().unwrap(), "Root", vec![Permission::Admin]).await.unwrap();
    let (_, auditor) =
        manager.register_service("auditor".parse().unwrap(), "Auditor", vec![Permission::Read]).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let console = ConsoleOptions { secure_cookie: false, ..ConsoleOptions::default() };
    let state = AppState::new(manager.clone(), ServerOptions { console: Some(console), ..ServerOptions::default() });
    tokio::spawn(sessanger_server::serve(listener, state, std::future::pending()));
    (manager, url, root.expose(), auditor.expose())
}

async fn sign_in(browser: &Client, url: &str, token: &str) {
    browser.goto(&format!("{url}/admin")).await.unwrap();
    assert_eq!(browser.current_url().await.unwrap().path(), "/admin/sign-in");
    browser.find(Locator::Id("token")).await.unwrap().send_keys(token).await.unwrap();
    browser.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("active")).await.unwrap();
}

/// Types `user` (or its start) in the users page's search box and searches.
async fn find_user(browser: &Client, user: &str) {
    browser.find(Locator::LinkText("Users")).await.unwrap().click().await.unwrap();
    let field = browser.find(Locator::Id("user")).await.unwrap();
    field.clear().await.unwrap();
    field.send_keys(user).await.unwrap();
    browser.find(Locator::Css("form[method=get] button")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Css("h2")).await.unwrap();
}

async fn rows(browser: &Client) -> usize {
    browser.find_all(Locator::Css("#sessions tbody tr")).await.unwrap().len()
}

/// Submits the form of `button`, answering its "are you sure?" with yes.
async fn click_and_confirm(browser: &Client, button: Locator<'_>) {
    browser.find(button).await.unwrap().click().await.unwrap();
    browser.accept_alert().await.unwrap();
    browser.wait().for_element(Locator::Id("user")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_finds_a_user_revokes_signs_out_and_registers_a_service() {
    let (manager, url, root, auditor) = server().await;
    let frank: UserId = "frank".parse().unwrap();
    for (device, ip, agent) in [
        ("phone", "10.0.0.1", "Mobile Safari"),
        ("laptop", "10.0.0.2", "Firefox 140 on Linux"),
        ("tablet", "10.0.0.3", "Chrome on Android"),
    ] {
        let device = Device { device_id: Some(device.into()), ip: Some(ip.into()), user_agent: Some(agent.into()) };
        let attributes = [("theme", serde_json::json!("dark")), ("cart_items", serde_json::json!(3))];
        let attributes = attributes.into_iter().map(|(key, value)| (key.to_owned(), value)).collect();
        manager.create_session(&frank, NewSession { device, attributes, ..NewSession::default() }).await.unwrap();
    }
    let driver = Driver::start().await;
    let browser = driver.browser("root").await;
    browser.goto(&format!("{url}/admin")).await.unwrap();
    screenshot(&browser, "console-sign-in").await;
    sign_in(&browser, &url, &root).await;
    screenshot(&browser, "console-overview").await;

    // "fra" begins two users: pick frank from the list.
    manager.create_session(&"francine".parse().unwrap(), NewSession::default()).await.unwrap();
    find_user(&browser, "fra").await;
    assert_eq!(browser.find_all(Locator::Css("#found li")).await.unwrap().len(), 2);
    browser.find(Locator::LinkText("frank")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("sessions")).await.unwrap();
    assert_eq!(rows(&browser).await, 3);
    screenshot(&browser, "console-user").await;
    // One session's page, and back.
    browser.find(Locator::Css("#sessions tbody tr:first-child a")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("attributes")).await.unwrap();
    screenshot(&browser, "console-session").await;
    browser.back().await.unwrap();
    browser.wait().for_element(Locator::Id("sessions")).await.unwrap();

    click_and_confirm(&browser, Locator::Css("#sessions tbody tr:first-child button")).await;
    assert_eq!(rows(&browser).await, 2);
    let left = manager.list_user_sessions(&frank, &Page::DEFAULT).await.unwrap();
    assert_eq!(left.len(), 2, "revoked on the page, gone from the store (and so from /v1)");

    click_and_confirm(&browser, Locator::Id("sign-out-everywhere")).await;
    assert!(browser.source().await.unwrap().contains("No live sessions."));
    for session in left {
        assert!(matches!(manager.get_session(&session.id).await, Err(ManagerError::NotFound)));
    }

    browser.goto(&format!("{url}/admin/services")).await.unwrap();
    browser.find(Locator::Id("id")).await.unwrap().send_keys("billing").await.unwrap();
    browser.find(Locator::Id("name")).await.unwrap().send_keys("Billing").await.unwrap();
    browser.find(Locator::Css("fieldset button[type=submit]")).await.unwrap().click().await.unwrap();
    let field = browser.wait().for_element(Locator::Id("new-token")).await.unwrap();
    let token = field.prop("value").await.unwrap().unwrap();
    screenshot(&browser, "console-services").await;
    let answer = sessanger_testkit::tls::http()
        .build()
        .unwrap()
        .get(format!("{url}/v1/users/frank/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::OK, "the new service's token works against /v1");

    // A read-only operator: the same pages, no buttons; a post forged in the page is refused.
    manager.create_session(&frank, NewSession::default()).await.unwrap();
    let reader = driver.browser("auditor").await;
    sign_in(&reader, &url, &auditor).await;
    find_user(&reader, "frank").await;
    assert_eq!(rows(&reader).await, 1);
    assert!(reader.find_all(Locator::Css("#sessions button")).await.unwrap().is_empty());
    assert!(reader.find_all(Locator::Id("sign-out-everywhere")).await.unwrap().is_empty());
    let fingerprint = manager.list_user_sessions(&frank, &Page::DEFAULT).await.unwrap()[0].id.fingerprint();
    let forged = reader
        .execute_async(
            "const [fingerprint, done] = arguments;
             const csrf = document.querySelector('input[name=csrf]').value;
             fetch('/admin/users/revoke', {method: 'POST',
                 headers: {'content-type': 'application/x-www-form-urlencoded'},
                 body: 'csrf=' + csrf + '&user=frank&session=' + fingerprint}).then(r => done(r.status));",
            vec![json!(fingerprint)],
        )
        .await
        .unwrap();
    assert_eq!(forged, json!(403));
    assert_eq!(manager.list_user_sessions(&frank, &Page::DEFAULT).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn markup_in_a_user_id_is_shown_as_text() {
    let (manager, url, root, _) = server().await;
    let xss = "<script>alert('owned')</script>";
    manager.create_session(&xss.parse().unwrap(), NewSession::default()).await.unwrap();
    let driver = Driver::start().await;
    let browser = driver.browser("xss").await;
    sign_in(&browser, &url, &root).await;
    find_user(&browser, xss).await;
    assert!(browser.get_alert_text().await.is_err(), "no script ran");
    let heading = browser.find(Locator::Css("h2 code")).await.unwrap().text().await.unwrap();
    assert_eq!(heading, xss);
    assert_eq!(rows(&browser).await, 1);
}

/// The live page adds each new event on top as it is recorded, without reloading, its values as
/// text (a user id holding markup runs nothing).
#[tokio::test(flavor = "multi_thread")]
async fn the_live_page_shows_new_events_as_they_happen() {
    let (manager, url, root, _) = server().await;
    let driver = Driver::start().await;
    let browser = driver.browser("live").await;
    sign_in(&browser, &url, &root).await;
    browser.goto(&format!("{url}/admin/live")).await.unwrap();
    browser.wait().for_element(Locator::Css("table[data-stream]")).await.unwrap();
    // A mark on this very page: a reload would wipe it.
    browser.execute("window.sameDocument = true;", vec![]).await.unwrap();

    let xss = "<img src=x onerror=alert('owned')>";
    manager.create_session(&xss.parse().unwrap(), NewSession::default()).await.unwrap();
    let first_row = Locator::Css("#events tbody tr:first-child td:nth-child(4)");
    let mut user = String::new();
    for _ in 0..50 {
        user = browser.find(first_row).await.unwrap().text().await.unwrap();
        if user == xss {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(user, xss, "the new session's event is on top, as text");
    let kind = browser.find(Locator::Css("#events tbody tr:first-child td:nth-child(3)")).await.unwrap();
    assert_eq!(kind.text().await.unwrap(), "created");
    assert_eq!(browser.execute("return window.sameDocument === true;", vec![]).await.unwrap(), json!(true));
    assert!(browser.get_alert_text().await.is_err(), "no script ran");
    screenshot(&browser, "console-live").await;
}
