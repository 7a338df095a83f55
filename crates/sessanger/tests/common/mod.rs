//! What the binary's end-to-end tests share: a real `sessanger serve` on a free port.

use std::{
    fs,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_sessanger");

/// A `sessanger serve` process on a free port; stopped with SIGTERM when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) url: String,
    pub(crate) stdout: Vec<String>,
}

impl Server {
    pub(crate) fn start(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[], &[])
    }

    /// `sessanger serve` with extra `args` and environment variables.
    pub(crate) fn start_with(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let _ = fs::remove_file(data_dir.join("server.url"));
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .envs(env.iter().copied())
            .env_remove("SESSANGER_CONFIG")
            .env_remove("SESSANGER_STORE")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sessanger starts");
        let url_file = data_dir.join("server.url");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !url_file.exists() {
            assert!(Instant::now() < deadline, "sessanger did not announce its URL");
            assert!(child.try_wait().unwrap().is_none(), "sessanger exited early");
            thread::sleep(Duration::from_millis(20));
        }
        let url = fs::read_to_string(url_file).unwrap().trim().to_owned();
        // The token line, if any, is printed before the URL file is written.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            lines.push(line);
        }
        Server { child, url, stdout: lines }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub(crate) fn stop(mut self) {
        terminate(&mut self.child);
    }

    /// Sends SIGKILL, as a crash would, and reaps the process.
    #[allow(dead_code)] // only the binaries that test a crash use it
    pub(crate) fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn terminate(child: &mut Child) {
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "sessanger exited with {status} on SIGTERM");
            return;
        }
        assert!(Instant::now() < deadline, "sessanger did not stop on SIGTERM");
        thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub(crate) fn admin_token(dir: &Path) -> String {
    fs::read_to_string(dir.join("admin.token")).unwrap().trim().to_owned()
}

pub(crate) fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    // Named like the default data dir, so the README's commands find the token as printed.
    let dir = tmp.path().join("sessanger-data");
    (tmp, dir)
}

/// A networked store the binary can serve from, emptied for one test: Redis under a key
/// prefix of its own, a PostgreSQL schema or a MariaDB database of its own (dropped on drop).
pub(crate) struct FreshStore {
    /// The flags that point `sessanger` at it.
    pub(crate) args: Vec<String>,
    cleanup: Option<Command>,
}

#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // each test binary uses the kinds it tests
pub(crate) enum StoreKind {
    Redis,
    Postgres,
    MariaDb,
}

impl FreshStore {
    pub(crate) fn new(kind: StoreKind) -> FreshStore {
        let name = format!(
            "e2e_{}",
            sessanger_core::SessionId::generate().as_ref()[..12].to_ascii_lowercase().replace('-', "_")
        );
        match kind {
            StoreKind::Redis => {
                let url = std::env::var("SESSANGER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
                FreshStore { args: vec!["--store".into(), url, "--key-prefix".into(), name], cleanup: None }
            }
            StoreKind::Postgres => {
                let base = std::env::var("SESSANGER_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let psql = |sql: String| {
                    let mut c = Command::new("psql");
                    c.arg(&base).args(["-qc", &sql]).env("PGOPTIONS", "--client-min-messages=warning");
                    c
                };
                let status = psql(format!("CREATE SCHEMA {name}")).status().unwrap();
                assert!(status.success(), "PostgreSQL must be reachable at {base}");
                let separator = if base.contains('?') { '&' } else { '?' };
                let url = format!("{base}{separator}options=-csearch_path%3D{name}");
                FreshStore {
                    args: vec!["--store".into(), url],
                    cleanup: Some(psql(format!("DROP SCHEMA {name} CASCADE"))),
                }
            }
            StoreKind::MariaDb => {
                let mysql = |sql: String| {
                    let mut c = Command::new("mysql");
                    c.args(["-uroot", "-h127.0.0.1", "-e", &sql]);
                    c
                };
                let status = mysql(format!("CREATE DATABASE {name}")).status().unwrap();
                assert!(status.success(), "MariaDB must be reachable at 127.0.0.1:3306");
                let url = format!("mysql://root@127.0.0.1:3306/{name}");
                FreshStore { args: vec!["--store".into(), url], cleanup: Some(mysql(format!("DROP DATABASE {name}"))) }
            }
        }
    }

    /// The flags as `&str`s, for `Server::start_with`.
    pub(crate) fn flags(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }
}

impl Drop for FreshStore {
    fn drop(&mut self) {
        if let Some(cleanup) = &mut self.cleanup {
            let _ = cleanup.output();
        }
    }
}
