//! The web app in headless Chromium, as its users see it (`sessanger_testkit::browser`: needs
//! Debian's `chromium` and `chromium-driver`, which `scripts/browser-setup` installs).

use std::{ffi::OsString, net::SocketAddr, process::Stdio, sync::Arc};

use fantoccini::{Client, Locator};
use sessanger_core::{Page, Permission, SessionManager, SessionPolicy};
use sessanger_server::{AppState, ServerOptions};
use sessanger_store_memory::MemoryStore;
use sessanger_testkit::browser::{Driver, free_port, screenshot, wait_for_port};
use sessanger_tower::session_id_of;
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// The example app as a process, so a restart is a real one: on the embedded store, or in
/// remote mode against a sessanger server.
struct App {
    process: Child,
    addr: SocketAddr,
    /// How its sessions are kept: `--data-dir …` or `--remote … --token …`.
    args: Vec<OsString>,
    _data: Option<TempDir>,
}

impl App {
    /// The app on a fresh embedded store.
    async fn start() -> App {
        let data = TempDir::new().unwrap();
        let args = vec!["--data-dir".into(), data.path().into()];
        App::start_with(args, Some(data)).await
    }

    /// The app keeping its sessions in the sessanger at `url`, as the service of `token`.
    async fn start_remote(url: &str, token: &str) -> App {
        App::start_with(vec!["--remote".into(), url.into(), "--token".into(), token.into()], None).await
    }

    async fn start_with(args: Vec<OsString>, data: Option<TempDir>) -> App {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let process = App::spawn(addr, &args).await;
        App { process, addr, args, _data: data }
    }

    async fn spawn(addr: SocketAddr, args: &[OsString]) -> Child {
        let process = Command::new(env!("CARGO_BIN_EXE_example-web-app"))
            .arg("--listen")
            .arg(addr.to_string())
            .args(args)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        wait_for_port(addr.port(), "the web app").await;
        process
    }

    /// Kills the app without warning, as a crash would, and starts it again on the same store.
    async fn restart(&mut self) {
        self.process.kill().await.unwrap();
        self.process = App::spawn(self.addr, &self.args).await;
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A sessanger server (`sessanger_server::serve`, what `sessanger serve` runs) on a free
/// port, on a memory store, stopped with the test's runtime; its manager, its URL, and the
/// token of a `web` service that may read and write.
async fn sessanger() -> (SessionManager, String, String) {
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
    let permissions = vec![Permission::Read, Permission::Write];
    let (_, token) = manager.register_service("web".parse().unwrap(), "web", permissions).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = AppState::new(manager.clone(), ServerOptions::default());
    tokio::spawn(sessanger_server::serve(listener, state, std::future::pending()));
    (manager, url, token.expose())
}

async fn log_in(browser: &Client, app: &App) {
    browser.goto(&app.url("/login")).await.unwrap();
    browser.find(Locator::Id("user")).await.unwrap().send_keys("alice").await.unwrap();
    browser.find(Locator::Id("password")).await.unwrap().send_keys("wonderland").await.unwrap();
    browser.find(Locator::Id("login")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("counter")).await.unwrap();
}

async fn counter(browser: &Client) -> u64 {
    let element = browser.wait().for_element(Locator::Id("counter")).await.unwrap();
    element.text().await.unwrap().parse().unwrap()
}

async fn session_cookie(browser: &Client) -> String {
    browser.get_named_cookie("sid").await.expect("the app sets a `sid` cookie").value().to_owned()
}

async fn is_on_login_page(browser: &Client) -> bool {
    browser.current_url().await.unwrap().path() == "/login"
}

#[tokio::test]
async fn login_sets_a_new_http_only_cookie_and_the_counter_survives_a_restart() {
    let driver = Driver::start().await;
    let mut app = App::start().await;
    let browser = driver.browser("restart").await;

    browser.goto(&app.url("/login")).await.unwrap();
    let before = session_cookie(&browser).await;
    log_in(&browser, &app).await;
    let cookie = browser.get_named_cookie("sid").await.unwrap();
    assert_eq!(cookie.http_only(), Some(true), "page scripts must not read the session cookie");
    assert_ne!(cookie.value(), before, "login must give the session a new id");
    let visible = browser.execute("return document.cookie", vec![]).await.unwrap();
    assert!(!visible.as_str().unwrap_or_default().contains("sid="), "document.cookie shows {visible}");

    assert_eq!(counter(&browser).await, 1);
    browser.refresh().await.unwrap();
    assert_eq!(counter(&browser).await, 2);
    app.restart().await;
    browser.refresh().await.unwrap();
    assert_eq!(counter(&browser).await, 3, "the session must survive a restart of the app");

    browser.close().await.unwrap();
}

#[tokio::test]
async fn signing_out_all_devices_in_one_browser_ends_the_other_browsers_session() {
    let driver = Driver::start().await;
    let app = App::start().await;
    let (laptop, phone) = (driver.browser("laptop").await, driver.browser("phone").await);
    log_in(&laptop, &app).await;
    log_in(&phone, &app).await;
    assert_ne!(session_cookie(&laptop).await, session_cookie(&phone).await);

    laptop.refresh().await.unwrap();
    let rows = laptop.find_all(Locator::Css("#sessions tr")).await.unwrap();
    assert_eq!(rows.len(), 3, "a header and both devices");
    screenshot(&laptop, "web-app-session-list").await;

    laptop.find(Locator::Id("sign-out-everywhere")).await.unwrap().click().await.unwrap();
    laptop.wait().for_element(Locator::Id("login")).await.unwrap();
    phone.goto(&app.url("/")).await.unwrap();
    assert!(is_on_login_page(&phone).await, "the phone must be signed out on its next request");

    laptop.close().await.unwrap();
    phone.close().await.unwrap();
}

#[tokio::test]
async fn logout_invalidates_the_session_on_the_server() {
    let driver = Driver::start().await;
    let app = App::start().await;
    let browser = driver.browser("logout").await;
    log_in(&browser, &app).await;
    let old = session_cookie(&browser).await;

    browser.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("login")).await.unwrap();

    // Replay the old cookie outside the browser, as a thief who copied it would.
    let http = sessanger_testkit::tls::http().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let replay = http.get(app.url("/")).header("cookie", format!("sid={old}")).send().await.unwrap();
    assert!(replay.status().is_redirection(), "replaying a logged-out cookie gave {}", replay.status());
    assert_eq!(replay.headers()["location"], "/login");

    browser.close().await.unwrap();
}

#[tokio::test]
async fn in_remote_mode_sessions_live_in_sessanger_across_restarts_of_the_app() {
    let (manager, url, token) = sessanger().await;
    let driver = Driver::start().await;
    let mut app = App::start_remote(&url, &token).await;
    let browser = driver.browser("remote").await;
    let alice = "alice".parse().unwrap();

    log_in(&browser, &app).await;
    assert_eq!(counter(&browser).await, 1);
    let sessions = manager.list_user_sessions(&alice, &Page::DEFAULT).await.unwrap();
    assert_eq!(sessions.len(), 1, "the login is a session of sessanger's, under its user");
    let cookie = session_cookie(&browser).await;
    assert_eq!(sessions[0].id, session_id_of(&cookie.parse().unwrap()));
    assert_eq!(sessions[0].created_by.as_ref().map(AsRef::as_ref), Some("web"));
    let agent = sessions[0].device.user_agent.as_deref().unwrap_or_default();
    assert!(agent.contains("Chrome"), "the browser's user agent is the device: {agent:?}");

    app.restart().await;
    browser.refresh().await.unwrap();
    assert_eq!(counter(&browser).await, 2, "the session lives in sessanger, not in the app");

    browser.find(Locator::Id("logout")).await.unwrap().click().await.unwrap();
    browser.wait().for_element(Locator::Id("login")).await.unwrap();
    assert!(
        manager.list_user_sessions(&alice, &Page::DEFAULT).await.unwrap().is_empty(),
        "logout deletes it in sessanger"
    );

    browser.close().await.unwrap();
}
