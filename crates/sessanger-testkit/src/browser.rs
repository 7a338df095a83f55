//! Headless Chromium for browser tests (feature `browser`): the web app's and the admin
//! console's.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/browser-setup` installs them).
//! Without them these tests fail: a browser test that skips itself proves nothing.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// Flags that keep Chromium headless, quiet and off the network except for the app.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// How long a process may take to start listening.
const STARTUP: Duration = Duration::from_secs(30);

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something listens on `port`; panics naming `what` after 30 s.
pub async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + STARTUP;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on port {port} within {STARTUP:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One `chromedriver`, killed when dropped; every browser of a test is a session of it.
#[derive(Debug)]
pub struct Driver {
    _process: Child,
    url: String,
    profiles: TempDir,
}

impl Driver {
    /// Starts `chromedriver` on a free port.
    pub async fn start() -> Driver {
        let port = free_port();
        let process = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start chromedriver ({e}): run scripts/browser-setup to install chromium and chromium-driver"
                )
            });
        wait_for_port(port, "chromedriver").await;
        Driver { _process: process, url: format!("http://127.0.0.1:{port}"), profiles: TempDir::new().unwrap() }
    }

    /// A new browser with a fresh profile: no cookie is shared with any other browser.
    pub async fn browser(&self, name: &str) -> Client {
        let profile = self.profiles.path().join(name);
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut options = json!({ "args": args });
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let capabilities = json!({ "browserName": "chrome", "goog:chromeOptions": options });
        let serde_json::Value::Object(capabilities) = capabilities else { unreachable!() };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start chromium: {e}"))
    }
}

/// `target/screenshots/`, where browser tests leave their pictures.
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("screenshots")
}

/// Saves what `browser` shows as `target/screenshots/<name>.png` and prints its path.
pub async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, browser.screenshot().await.unwrap()).unwrap();
    // Straight to stderr: the harness captures `println!` of passing tests, and this line
    // must reach the test output (CI logs) every time.
    let line = format!("screenshot: {}\n", path.canonicalize().unwrap().display());
    std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes()).unwrap();
    path
}
