//! What the Redis tests share: where the servers are, and a store with a key prefix of its
//! own, so tests run in parallel on one server without seeing each other's keys.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::time::Duration;

use sessanger_core::{Session, SessionId, Timestamp, UserId};
use sessanger_store_redis::{ConnectOptions, KeyPrefix, RedisStore};

/// Standalone Redis for the tests.
pub fn redis_url() -> String {
    std::env::var("SESSANGER_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// The Redis Cluster for the tests.
pub fn cluster_url() -> String {
    std::env::var("SESSANGER_TEST_REDIS_CLUSTER_URL")
        .unwrap_or_else(|_| "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002".to_owned())
}

/// The TLS-only standalone Redis of `scripts/redis-tls`, its certificate from the test CA.
pub fn tls_url() -> String {
    "rediss://127.0.0.1:6390".to_owned()
}

/// The TLS-only Redis Cluster of `scripts/redis-tls`.
pub fn tls_cluster_url() -> String {
    "rediss+cluster://127.0.0.1:7100,127.0.0.1:7101,127.0.0.1:7102".to_owned()
}

/// A store on the TLS-only standalone Redis (or cluster, for `cluster`), trusting the test CA,
/// with its node cache if `cached`.
pub async fn tls_store(cluster: bool, cached: bool) -> RedisStore {
    let url = if cluster { tls_cluster_url() } else { tls_url() };
    let cache = if cached { Some(sessanger_store_redis::DEFAULT_CACHE_BYTES) } else { None };
    store_with(&url, ConnectOptions { prefix: unique_prefix(), cache, tls: sessanger_testkit::tls::trusting("ca.crt") })
        .await
}

/// A new session of `user`, created now: 10 minutes idle, an hour at most.
pub fn session(user: &UserId) -> Session {
    Session::new(
        SessionId::generate_for(user),
        user.clone(),
        Timestamp::now(),
        Duration::from_secs(600),
        Duration::from_secs(3600),
    )
}

/// A prefix no other test (or run) uses.
pub fn unique_prefix() -> KeyPrefix {
    format!("sessanger-test-{}", &SessionId::generate().as_ref()[..12]).parse().expect("a valid prefix")
}

/// A store on `url` under a fresh prefix, with its node cache; panics (the test fails) if
/// Redis is unreachable.
pub async fn store(url: String) -> RedisStore {
    store_on(&url, unique_prefix(), Some(sessanger_store_redis::DEFAULT_CACHE_BYTES)).await
}

/// A store on `url` under a fresh prefix without a node cache: every read goes to Redis.
pub async fn uncached_store(url: String) -> RedisStore {
    store_on(&url, unique_prefix(), None).await
}

/// A store on `url` under `prefix`, with a node cache of `cache` bytes or none.
pub async fn store_on(url: &str, prefix: KeyPrefix, cache: Option<std::num::NonZeroUsize>) -> RedisStore {
    store_with(url, ConnectOptions { prefix, cache, ..ConnectOptions::default() }).await
}

/// A store on `url` connected as `options` say.
pub async fn store_with(url: &str, options: ConnectOptions) -> RedisStore {
    match RedisStore::connect_with(url, options).await {
        Ok(store) => store,
        Err(error) => panic!("cannot reach Redis at {url} ({error:?}); start it (scripts/test does)"),
    }
}

/// A `redis-server` of the test's own on a free port, without persistence, killed when
/// dropped. Tests that count commands or stop the server use one so they disturb nobody.
pub struct PrivateRedis {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts a server on a free port and waits until it answers.
    pub fn start() -> PrivateRedis {
        // Port 0 makes the kernel pick a free port; release it for redis-server to take.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = std::env::temp_dir().join(format!("sessanger-redis-{port}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = PrivateRedis { port, dir, child: None };
        redis.restart();
        redis
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Sends the server `signal` (`STOP` freezes it as a hung server or a partition would,
    /// `CONT` lets it go on).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
        assert!(status.unwrap().success(), "kill -{signal} {pid}");
    }

    /// Starts the server again on the same port (empty: nothing is persisted).
    pub fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be installed");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
